//! `lorabeam run`'s progress and its Ctrl-C. Progress counts item steps: every item is
//! `eval_len` steps, and one that ends early (at <|endoftext|>) has the rest counted when it
//! ends, so the bar moves with every decode step and its ETA is that of the work left. Off a
//! terminal a line every few seconds says the same. Ctrl-C says what was decoded, what is lost
//! and what was written, before the process ends.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::progress::Progress;
use super::submit::INTERRUPTED_EXIT_CODE;

const LOADING: u8 = 0;
const DECODING: u8 = 1;
const WRITING: u8 = 2;

/// The shape of the decoding, known once the model and data are read.
#[derive(Debug, Clone, Copy)]
pub struct Work {
    /// Items to decode: distinct (context, first step) pairs times variants.
    pub items: u64,
    pub beam: u64,
    pub eval_len: u64,
}

/// What a run has done so far, shared by the engine's callbacks and the Ctrl-C thread.
pub struct RunProgress {
    phase: AtomicU8,
    work: Mutex<Option<(Work, Instant)>>,
    shown: Mutex<Option<Progress>>,
    steps: AtomicU64,
    items_done: AtomicU64,
    tokens: AtomicU64,
}

impl RunProgress {
    /// Nothing shown or counted yet, in the loading phase.
    fn loading() -> Self {
        Self {
            phase: AtomicU8::new(LOADING),
            work: Mutex::new(None),
            shown: Mutex::new(None),
            steps: AtomicU64::new(0),
            items_done: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        }
    }

    /// Starts in the loading phase, Ctrl-C handled from now on.
    pub fn start() -> Arc<Self> {
        let progress = Arc::new(Self::loading());
        let watched = Arc::clone(&progress);
        // The handler is in place before this returns (a Ctrl-C right after start gets its
        // message); the thread only waits for it.
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return progress;
        };
        let interrupt = {
            let _entered = runtime.enter();
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        };
        let Ok(mut interrupt) = interrupt else {
            return progress;
        };
        std::thread::spawn(move || {
            if runtime.block_on(interrupt.recv()).is_some() {
                watched.finish_shown();
                crate::errln!("{}", watched.interrupted_message());
                std::process::exit(INTERRUPTED_EXIT_CODE);
            }
        });
        progress
    }

    /// Decoding begins: the bar (or the lines) appear.
    pub fn decoding(&self, work: Work) {
        let total = work.items * work.eval_len;
        *self.shown.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Progress::with_template(total, "{bar:40} {msg} eta {eta}"));
        *self.work.lock().unwrap_or_else(PoisonError::into_inner) = Some((work, Instant::now()));
        self.phase.store(DECODING, Ordering::SeqCst);
        self.refresh(false);
    }

    /// After a decode step of `rows` beam rows: every running item moved one step.
    pub fn stepped(&self, rows: usize) {
        let beam = self.work().map_or(1, |(w, _)| w.beam.max(1));
        self.steps.fetch_add(rows as u64 / beam, Ordering::Relaxed);
        self.refresh(false);
    }

    /// An item is final after `generated` tokens (over its beams): the steps it did not need
    /// are counted as done.
    pub fn item_done(&self, generated: usize) {
        if let Some((work, _)) = self.work() {
            // Its first step (the prefill's) is not a decode step the observer saw.
            let observed = (generated as u64 / work.beam.max(1)).saturating_sub(1);
            self.steps.fetch_add(work.eval_len.saturating_sub(observed), Ordering::Relaxed);
        }
        self.items_done.fetch_add(1, Ordering::Relaxed);
        self.tokens.fetch_add(generated as u64, Ordering::Relaxed);
        self.refresh(false);
    }

    /// Decoding ended: the last line, then the outputs are written.
    pub fn writing(&self) {
        self.refresh(true);
        self.finish_shown();
        self.phase.store(WRITING, Ordering::SeqCst);
    }

    fn work(&self) -> Option<(Work, Instant)> {
        *self.work.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish_shown(&self) {
        if let Some(shown) = self.shown.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            shown.finish();
        }
    }

    fn refresh(&self, last: bool) {
        let Some((work, started)) = self.work() else { return };
        let steps = self.steps.load(Ordering::Relaxed);
        let line = status_line(work, steps, self.items_done.load(Ordering::Relaxed), self.tokens(started));
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shown) = shown.as_mut() {
            let eta = eta(started.elapsed(), steps, work.items * work.eval_len);
            let lines =
                || vec![format!("{line}, eta {}", eta.map_or("-".into(), |e| format!("{:.0} s", e.as_secs_f64())))];
            shown.update(steps, line.clone(), lines, last);
        }
    }

    fn tokens(&self, started: Instant) -> f64 {
        self.tokens.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(1e-3)
    }

    /// What Ctrl-C says: what was decoded, what is lost, what was written.
    pub fn interrupted_message(&self) -> String {
        match self.phase.load(Ordering::SeqCst) {
            LOADING => "interrupted while loading: nothing was decoded, nothing was written".into(),
            DECODING => {
                let (done, items, secs) = match self.work() {
                    Some((work, started)) => {
                        (self.items_done.load(Ordering::Relaxed), work.items, started.elapsed().as_secs_f64())
                    }
                    None => (0, 0, 0.0),
                };
                format!(
                    "interrupted after {secs:.0} s of decoding: {done} of {items} contexts were decoded and are \
                     lost; nothing was written (run writes its predictions once every context is decoded)"
                )
            }
            _ => "interrupted while writing the outputs: each file is written whole or not at all (a \
                  temporary file, then renamed); files the summary would have listed may be missing"
                .into(),
        }
    }
}

/// The progress message: contexts done, tokens/s.
fn status_line(work: Work, steps: u64, items_done: u64, tokens_per_s: f64) -> String {
    let total = (work.items * work.eval_len).max(1);
    format!(
        "decoding: {items_done}/{} contexts, {:.0}% of the steps, {tokens_per_s:.0} tokens/s",
        work.items,
        100.0 * steps.min(total) as f64 / total as f64
    )
}

/// Time left at the rate so far; none before the first step.
fn eta(elapsed: Duration, steps: u64, total: u64) -> Option<Duration> {
    (steps > 0).then(|| elapsed.mul_f64(total.saturating_sub(steps) as f64 / steps as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_of_items_that_end_early_are_counted_when_they_end() {
        let progress = RunProgress::loading();
        assert!(progress.interrupted_message().contains("nothing was decoded"));
        let work = Work { items: 2, beam: 4, eval_len: 10 };
        *progress.work.lock().expect("lock") = Some((work, Instant::now()));
        progress.phase.store(DECODING, Ordering::SeqCst);
        // Two items, four beams each: three decode steps, then one ends after 4 tokens per beam.
        for _ in 0..3 {
            progress.stepped(8);
        }
        assert_eq!(progress.steps.load(Ordering::Relaxed), 6);
        progress.item_done(16);
        assert_eq!(progress.steps.load(Ordering::Relaxed), 6 + 10 - 3, "its 7 unneeded steps count as done");
        let said = progress.interrupted_message();
        assert!(said.contains("1 of 2 contexts") && said.contains("nothing was written"), "{said}");
        assert_eq!(eta(Duration::from_secs(10), 5, 20), Some(Duration::from_secs(30)));
        assert_eq!(eta(Duration::from_secs(10), 0, 20), None);
    }
}
