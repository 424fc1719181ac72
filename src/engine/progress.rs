//! Events the scheduler emits, and the reporters that show them. The engine never prints:
//! a terminal gets indicatif bars, CI and pipes get plain lines, tests record the events.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Something that happened during a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    RunStarted {
        stages: usize,
    },
    StageStarted {
        stage: String,
    },
    StageCached {
        stage: String,
    },
    StageFinished {
        stage: String,
        seconds: f64,
        rows: u64,
    },
    StageFailed {
        stage: String,
        message: String,
    },
    StageSkipped {
        stage: String,
        reason: String,
    },
    Warning {
        stage: String,
        message: String,
    },
    /// A running stage has done `done` of `total` steps of its longest part (`unit`: `tiles`,
    /// `years`, …). `milestone` marks the first event of each tenth, for plain-line output.
    StageProgress {
        stage: String,
        done: u64,
        total: u64,
        unit: String,
        milestone: bool,
    },
    /// A stage's batch jobs (its shards and itself), as their counts change.
    Jobs {
        stage: String,
        pending: usize,
        running: usize,
        done: usize,
    },
    RunFinished,
}

/// Receives events; called from worker threads.
pub trait Reporter: Sync {
    fn event(&self, event: &Event);
}

/// Plain lines on stderr: for CI logs and pipes. A milestone of a stage's progress shows
/// the time since the stage started and the time left at the rate so far.
#[derive(Debug, Default)]
pub struct PlainReporter {
    started: Mutex<std::collections::BTreeMap<String, std::time::Instant>>,
}

impl PlainReporter {
    /// `, 4.1 s, ETA 12 s` for a stage started 4.1 s ago that has done `done` of `total`.
    fn timing(&self, stage: &str, done: u64, total: u64) -> String {
        let started = self.started.lock().expect("no reporter call panics");
        let Some(elapsed) = started.get(stage).map(std::time::Instant::elapsed) else {
            return String::new();
        };
        let seconds = elapsed.as_secs_f64();
        if done == 0 || done >= total {
            return format!(", {seconds:.1} s");
        }
        let left = seconds * (total - done) as f64 / done as f64;
        format!(", {seconds:.1} s, ETA {left:.0} s")
    }
}

impl Reporter for PlainReporter {
    fn event(&self, event: &Event) {
        let line = match event {
            Event::StageStarted { stage } => {
                let mut started = self.started.lock().expect("no reporter call panics");
                started.insert(stage.clone(), std::time::Instant::now());
                format!("run     {stage}")
            }
            Event::StageCached { stage } => format!("cached  {stage}"),
            Event::StageFinished {
                stage,
                seconds,
                rows,
            } => format!("done    {stage} ({rows} rows, {seconds:.2}s)"),
            Event::StageFailed { stage, message } => format!("FAILED  {stage}: {message}"),
            Event::StageSkipped { stage, reason } => format!("skipped {stage}: {reason}"),
            Event::Warning { stage, message } => format!("warning {stage}: {message}"),
            Event::StageProgress {
                stage,
                done,
                total,
                unit,
                milestone: true,
            } => format!(
                "        {stage}: {done}/{total} {unit}{}",
                self.timing(stage, *done, *total)
            ),
            Event::Jobs {
                stage,
                pending,
                running,
                done,
            } => format!("jobs    {stage}: {pending} pending, {running} running, {done} done"),
            Event::RunStarted { .. } | Event::RunFinished | Event::StageProgress { .. } => return,
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// Only warnings.
#[derive(Debug, Default)]
pub struct QuietReporter;

impl Reporter for QuietReporter {
    fn event(&self, event: &Event) {
        // Failures are rendered in full at the end of the run, so only warnings show here.
        if matches!(event, Event::Warning { .. }) {
            PlainReporter::default().event(event);
        }
    }
}

/// An overall bar plus one spinner per running stage, on a terminal.
pub struct TerminalReporter {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<Vec<(String, ProgressBar)>>,
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalReporter {
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} stages {msg}")
                .expect("template is valid"),
        );
        Self {
            multi,
            overall,
            running: Mutex::new(Vec::new()),
        }
    }

    fn finish_stage(&self, stage: &str, line: String) {
        let mut running = self
            .running
            .lock()
            .expect("reporter lock is never poisoned");
        if let Some(pos) = running.iter().position(|(s, _)| s == stage) {
            let (_, bar) = running.remove(pos);
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.println(line);
        self.overall.inc(1);
    }
}

impl TerminalReporter {
    /// Turns the stage's spinner into a bar with an ETA.
    fn show_progress(&self, stage: &str, done: u64, total: u64, unit: &str) {
        let running = self
            .running
            .lock()
            .expect("reporter lock is never poisoned");
        if let Some((_, bar)) = running.iter().find(|(s, _)| s == stage) {
            if bar.length() != Some(total) {
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "  {{msg}} {{bar:24}} {{pos}}/{{len}} {unit} ({{elapsed}}, ETA {{eta}})"
                    ))
                    .expect("template is valid"),
                );
                bar.set_length(total);
            }
            bar.set_position(done);
        }
    }
}

impl Reporter for TerminalReporter {
    fn event(&self, event: &Event) {
        match event {
            Event::RunStarted { stages } => self.overall.set_length(*stages as u64),
            Event::StageStarted { stage } => {
                let bar = self
                    .multi
                    .insert_before(&self.overall, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                        .expect("template is valid"),
                );
                bar.set_message(stage.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.running
                    .lock()
                    .expect("reporter lock is never poisoned")
                    .push((stage.clone(), bar));
            }
            Event::StageCached { stage } => self.finish_stage(stage, format!("cached  {stage}")),
            Event::StageFinished {
                stage,
                seconds,
                rows,
            } => self.finish_stage(
                stage,
                format!("done    {stage} ({rows} rows, {seconds:.2}s)"),
            ),
            Event::StageFailed { stage, message } => {
                self.finish_stage(stage, format!("FAILED  {stage}: {message}"))
            }
            Event::StageSkipped { stage, reason } => {
                self.finish_stage(stage, format!("skipped {stage}: {reason}"))
            }
            Event::Warning { stage, message } => {
                let _ = self.multi.println(format!("warning {stage}: {message}"));
            }
            Event::StageProgress {
                stage,
                done,
                total,
                unit,
                ..
            } => self.show_progress(stage, *done, *total, unit),
            Event::Jobs {
                stage,
                pending,
                running,
                done,
            } => {
                let running_bars = self
                    .running
                    .lock()
                    .expect("reporter lock is never poisoned");
                if let Some((_, bar)) = running_bars.iter().find(|(s, _)| s == stage) {
                    bar.set_message(format!(
                        "{stage}: jobs {pending} pending, {running} running, {done} done"
                    ));
                }
            }
            Event::RunFinished => {
                self.overall.finish_and_clear();
            }
        }
    }
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct RecordingReporter {
    pub events: Mutex<Vec<Event>>,
}

impl Reporter for RecordingReporter {
    fn event(&self, event: &Event) {
        self.events
            .lock()
            .expect("reporter lock is never poisoned")
            .push(event.clone());
    }
}

/// Progress of one long piece of work with a known size: an indicatif bar with an ETA on a
/// terminal, a plain line at every tenth otherwise, nothing when quiet.
pub struct WorkBar {
    bar: Option<ProgressBar>,
    label: String,
    unit: String,
    quiet: bool,
    /// The last tenth printed as a plain line.
    tenth: std::sync::atomic::AtomicU64,
}

/// A [`WorkBar`] for `label`, counting `unit`s; a bar only if stderr is a terminal.
pub fn work_bar(label: &str, unit: &str) -> WorkBar {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{msg}} {{bar:30}} {{pos}}/{{len}} {unit} ({{elapsed}}, ETA {{eta}})"
            ))
            .expect("template is valid"),
        );
        bar.set_message(label.to_owned());
        bar
    });
    WorkBar {
        bar,
        label: label.to_owned(),
        unit: unit.to_owned(),
        quiet: false,
        tenth: std::sync::atomic::AtomicU64::new(0),
    }
}

impl WorkBar {
    /// A bar that shows nothing (`--quiet`).
    pub fn quiet() -> Self {
        WorkBar {
            bar: None,
            label: String::new(),
            unit: String::new(),
            quiet: true,
            tenth: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `done` of `total` units are finished.
    pub fn update(&self, done: u64, total: u64) {
        if self.quiet {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let tenth = (done * 10).checked_div(total).unwrap_or(10);
        let before = self
            .tenth
            .fetch_max(tenth, std::sync::atomic::Ordering::Relaxed);
        if tenth > before {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{} {done}/{total} {}",
                self.label,
                self.unit
            );
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
