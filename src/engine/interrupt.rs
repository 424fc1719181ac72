//! SIGINT and SIGTERM. The handler only records which signal came (an atomic store, one of the
//! few things a signal handler may do); the run then winds down in ordinary code: running
//! stages see it through [`crate::engine::stage::StageContext::is_cancelled`] (external
//! programs are stopped and their scratch folders removed), the scheduler starts nothing new
//! and records nothing for unfinished stages, nothing is published, and `pipeline` exits
//! 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells do.
//!
//! The handler is installed once and resets itself, so a second Ctrl-C stops `pipeline` at once.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn record(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM for the rest of the process.
pub fn install() {
    #[cfg(unix)]
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `record` is async-signal-safe (one atomic store). The `sigaction` struct is
        // fully initialised (zeroed, then the handler, an empty mask and the flags set), and
        // replacing the default disposition of these two signals affects nothing else.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = record as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(signal, &raw const action, std::ptr::null_mut());
        }
    }
}

/// The signal that asked the run to stop, if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The exit status a shell reports for a process ended by `signal`: 128 + its number.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// The signal's name for messages.
pub fn name(signal: i32) -> String {
    #[cfg(unix)]
    match signal {
        libc::SIGINT => return "SIGINT".to_owned(),
        libc::SIGTERM => return "SIGTERM".to_owned(),
        _ => {}
    }
    format!("signal {signal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal_as_shells_report_them() {
        // POSIX numbers: SIGINT 2, SIGTERM 15; bash reports 130 and 143.
        assert_eq!(exit_code(2), 130);
        assert_eq!(exit_code(15), 143);
        assert_eq!(name(2), "SIGINT");
        assert_eq!(name(15), "SIGTERM");
    }
}
