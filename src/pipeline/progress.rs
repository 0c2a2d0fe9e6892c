//! `read` on a terminal: a progress bar on stderr (bytes of the files read, packets/s, ETA),
//! drawn by `indicatif`. The reader updates it every [`Progress::EVERY`] frames, not per
//! packet; indicatif redraws at most 20 times a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::time::Instant;

/// The bar and what it needs to show packets per second.
pub struct Progress {
    bar: ProgressBar,
    /// Bytes of the files before the current one.
    done_bytes: u64,
    started: Instant,
}

impl Progress {
    /// Frames between updates.
    pub const EVERY: u64 = 512;

    /// A bar over the total size of `files` on stderr; a counter without ETA when a size is
    /// unknown (a pipe). Draws nothing when stderr is not a terminal (indicatif checks).
    pub fn new(files: &[impl AsRef<Path>]) -> Progress {
        let total: Option<u64> = files
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
            })
            .sum();
        let bar = match total {
            Some(t) => {
                let bar = ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {bytes} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar
            }
        };
        bar.set_message("0 packets, 0 packets/s");
        bar.tick();
        Progress {
            bar,
            done_bytes: 0,
            started: Instant::now(),
        }
    }

    /// `offset` bytes into the current file, `packets` frames so far.
    pub fn update(&self, offset: u64, packets: u64) {
        self.bar.set_position(self.done_bytes + offset);
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            packets as f64 / secs
        } else {
            0.0
        };
        self.bar
            .set_message(format!("{packets} packets, {rate:.0} packets/s"));
    }

    /// The current file ended after `len` bytes.
    pub fn file_done(&mut self, len: u64) {
        self.done_bytes += len;
        self.bar.set_position(self.done_bytes);
    }

    /// Removes the bar (the summary line takes its place).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
