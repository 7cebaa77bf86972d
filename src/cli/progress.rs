//! Following jobs on stderr: a bar on a terminal; elsewhere a line every few seconds, so a log
//! shows the work moving (or not). `submit --wait` shows one job with it, `sweep` all of its jobs.

use std::time::{Duration, Instant};

/// How often progress is printed when stderr is not a terminal (CI logs).
pub const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(5);

pub enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { last: Option<Instant> },
}

impl Progress {
    pub fn new(records: u64) -> Self {
        Self::with_template(records, "{bar:40} {pos}/{len} records {msg} eta {eta}")
    }

    /// A bar of `len` steps drawn with indicatif's `template`, or lines off a terminal.
    pub fn with_template(len: u64, template: &str) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Self::Lines { last: None };
        }
        Self::Bar(
            indicatif::ProgressBar::new(len).with_style(
                indicatif::ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
        )
    }

    /// Lines repeat the last status when nothing changes for a while.
    pub fn heartbeat(&self) -> Option<Duration> {
        matches!(self, Self::Lines { .. }).then_some(PROGRESS_LINE_EVERY)
    }

    /// `done` records so far, `message` beside the bar; `lines` (made only when due) is what a
    /// log gets, and always once `last` is set.
    pub fn update(&mut self, done: u64, message: String, lines: impl FnOnce() -> Vec<String>, last: bool) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(message);
            }
            Self::Lines { last: printed } => {
                if last || printed.is_none_or(|t| t.elapsed() >= PROGRESS_LINE_EVERY) {
                    for line in lines() {
                        crate::errln!("{line}");
                    }
                    *printed = Some(Instant::now());
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
