//! Progress of long work on the console: percent, MB/s and time left,
//! at most about once a second.

use std::time::{Duration, Instant};

use crate::say;

/// A progress line for `verb` ("saving", "restoring") over `total` bytes.
pub struct Progress {
    verb: &'static str,
    start: Instant,
    last: Instant,
    total: u64,
}

impl Progress {
    /// Starts counting now.
    pub fn new(verb: &'static str, total: u64) -> Self {
        let now = Instant::now();
        Progress { verb, start: now, last: now, total }
    }

    /// Reports that `done` bytes are done, if a second has passed.
    pub fn tick(&mut self, done: u64) {
        if self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let left = self.total.saturating_sub(done) as f64 / rate.max(1.0);
        say!("{} {:3}%  {:6.1} MB/s  {:.0} s left", self.verb, done * 100 / self.total.max(1), rate / 1e6, left);
    }
}
