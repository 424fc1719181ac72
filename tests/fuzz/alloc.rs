//! A global allocator that counts: it remembers, per thread, the largest single allocation
//! since [`arm`], so a test can assert that a reader's memory is bounded by its input and not
//! by the sizes the input declares. Requests above [`HARD_LIMIT`] fail (the process aborts
//! with "memory allocation failed") instead of exhausting the machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// No input in the corpus or from the fuzzer justifies one allocation of 1 GiB.
pub const HARD_LIMIT: usize = 1 << 30;

pub struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) -> bool {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    size <= HARD_LIMIT
}

// SAFETY: every call is forwarded to the system allocator unchanged, or refused with null.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if note(layout.size()) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc(layout) }
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if note(layout.size()) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if note(new_size) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            std::ptr::null_mut()
        }
    }
}

/// Starts measuring on this thread.
pub fn arm() {
    LARGEST.with(|l| l.set(0));
}

/// The largest single allocation on this thread since [`arm`].
pub fn largest() -> usize {
    LARGEST.with(Cell::get)
}

/// The bound on one allocation for an input of `input_len` bytes (with its companion files):
/// a fixed allowance for buffers and tables of a few MiB, plus 1024 bytes per input byte (a
/// DEFLATE stream expands at most 1032-fold; a declared size may not buy more than that).
pub fn bound(input_len: usize) -> usize {
    (8 << 20) + 1024 * input_len
}
