//! Training progress on stderr: an indicatif bar on a terminal (feature `progress-bar`),
//! plain summary lines in logs.

use bar::ProgressBar;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Steps between progress lines when [`ProgressMode::Bar`] is asked for without the
/// `progress-bar` feature.
pub const FALLBACK_LINES_EVERY: u64 = 100;

/// How a [`Progress`] shows itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// An animated bar on stderr: position/length, steps per second, time left, and the
    /// latest loss and accuracy. Without the `progress-bar` feature, lines every
    /// [`FALLBACK_LINES_EVERY`] steps instead.
    Bar,
    /// One plain summary line every `every` steps (and at the last step), for logs and CI where
    /// stderr is not a terminal.
    Lines {
        /// Steps between lines (at least 1).
        every: u64,
    },
    /// Nothing at all.
    Quiet,
}

impl ProgressMode {
    /// The mode for this process: [`ProgressMode::Quiet`] if `quiet`, otherwise a bar when
    /// stderr is a terminal (and the `progress-bar` feature is on) and [`ProgressMode::Lines`]
    /// every `log_every` steps when it is not.
    pub fn auto(quiet: bool, log_every: u64) -> ProgressMode {
        if quiet {
            ProgressMode::Quiet
        } else if ProgressBar::AVAILABLE && std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines {
                every: log_every.max(1),
            }
        }
    }
}

/// Progress of a run of `total` steps, shown as its [`ProgressMode`] says.
///
/// ```
/// use adjoint_nn::progress::{Progress, ProgressMode};
///
/// let mut progress = Progress::new(300, ProgressMode::auto(false, 100));
/// for step in 1..=300 {
///     let loss = 2.3 / step as f64;
///     progress.update(step, loss, Some(0.5));
/// }
/// progress.finish("done");
/// ```
pub struct Progress {
    bar: ProgressBar,
    lines: Option<LineLog>,
    total: u64,
    step: u64,
    loss: f64,
    accuracy: Option<f64>,
}

/// The state of [`ProgressMode::Lines`].
struct LineLog {
    out: Box<dyn Write + Send>,
    every: u64,
    start: Instant,
    last: Option<(u64, Instant)>,
}

impl Progress {
    /// Progress over `total` steps in `mode`; lines go to stderr.
    pub fn new(total: u64, mode: ProgressMode) -> Progress {
        match mode {
            ProgressMode::Bar if ProgressBar::AVAILABLE => {
                Progress::with_parts(total, ProgressBar::stderr(total), None)
            }
            ProgressMode::Bar => {
                Progress::with_writer(total, FALLBACK_LINES_EVERY, Box::new(std::io::stderr()))
            }
            ProgressMode::Lines { every } => {
                Progress::with_writer(total, every, Box::new(std::io::stderr()))
            }
            ProgressMode::Quiet => Progress::with_parts(total, ProgressBar::hidden(), None),
        }
    }

    /// Progress in [`ProgressMode::Lines`] writing its lines to `out` (a log file, a buffer).
    pub fn with_writer(total: u64, every: u64, out: Box<dyn Write + Send>) -> Progress {
        let lines = LineLog {
            out,
            every: every.max(1),
            start: Instant::now(),
            last: None,
        };
        Progress::with_parts(total, ProgressBar::hidden(), Some(lines))
    }

    fn with_parts(total: u64, bar: ProgressBar, lines: Option<LineLog>) -> Progress {
        Progress {
            bar,
            lines,
            total,
            step: 0,
            loss: f64::NAN,
            accuracy: None,
        }
    }

    /// Records that `step` steps are done, with the latest loss and (if measured) accuracy in
    /// `[0, 1]`.
    pub fn update(&mut self, step: u64, loss: f64, accuracy: Option<f64>) {
        self.step = step;
        self.loss = loss;
        if accuracy.is_some() {
            self.accuracy = accuracy;
        }
        if !self.bar.is_hidden() {
            self.bar.set_position(step);
            self.bar.set_message(metrics(loss, self.accuracy));
        }
        let due =
            matches!(&self.lines, Some(l) if step.is_multiple_of(l.every) || step == self.total);
        if due {
            self.log_line();
        }
    }

    /// Prints `message` on its own line (above the bar, or into the log); nothing when quiet.
    pub fn println(&mut self, message: &str) {
        if !self.bar.is_hidden() {
            self.bar.println(message);
        } else if let Some(lines) = &mut self.lines {
            // Progress output is best effort: a closed stderr must not stop training.
            let _ = writeln!(lines.out, "{message}");
        }
    }

    /// Ends the display with `message`: the bar stays on screen with it; in line mode the last
    /// step is logged if it was not, then `message`.
    pub fn finish(&mut self, message: &str) {
        if !self.bar.is_hidden() {
            self.bar
                .finish_with_message(format!("{} {message}", metrics(self.loss, self.accuracy)));
        }
        if let Some(lines) = &self.lines {
            if lines.last.map(|(s, _)| s) != Some(self.step) && self.step > 0 {
                self.log_line();
            }
        }
        if let Some(lines) = &mut self.lines {
            let _ = writeln!(lines.out, "{message}");
            let _ = lines.out.flush();
        }
    }

    /// Writes the summary line for the current step.
    fn log_line(&mut self) {
        let Some(lines) = &mut self.lines else {
            return;
        };
        let now = Instant::now();
        let (since_step, since) = lines.last.unwrap_or((0, lines.start));
        let rate = steps_per_sec(self.step.saturating_sub(since_step), now - since);
        let line = summary_line(
            self.step,
            self.total,
            self.loss,
            self.accuracy,
            rate,
            now - lines.start,
        );
        let _ = writeln!(lines.out, "{line}");
        let _ = lines.out.flush();
        lines.last = Some((self.step, now));
    }
}

/// Steps per second over `elapsed`; 0 for no time.
fn steps_per_sec(steps: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        steps as f64 / secs
    } else {
        0.0
    }
}

/// `loss 0.1235  acc 95.2%` (accuracy only when known).
fn metrics(loss: f64, accuracy: Option<f64>) -> String {
    match accuracy {
        Some(acc) => format!("loss {loss:.4}  acc {:.1}%", acc * 100.0),
        None => format!("loss {loss:.4}"),
    }
}

/// One plain progress line: `step 100/1000 (10%)  loss 0.1235  acc 95.2%  512.0 steps/s  0.2s`.
fn summary_line(
    step: u64,
    total: u64,
    loss: f64,
    accuracy: Option<f64>,
    rate: f64,
    elapsed: Duration,
) -> String {
    let percent = if total > 0 {
        step as f64 * 100.0 / total as f64
    } else {
        100.0
    };
    format!(
        "step {step}/{total} ({percent:.0}%)  {}  {rate:.1} steps/s  {:.1}s",
        metrics(loss, accuracy),
        elapsed.as_secs_f64()
    )
}

/// The animated bar: indicatif's with the `progress-bar` feature, otherwise a stand-in that is
/// always hidden.
#[cfg(feature = "progress-bar")]
mod bar {
    use indicatif::{ProgressDrawTarget, ProgressStyle};

    /// indicatif's bar.
    pub(super) struct ProgressBar(indicatif::ProgressBar);

    impl ProgressBar {
        /// Whether a visible bar can be drawn.
        pub(super) const AVAILABLE: bool = true;

        /// A bar of `total` steps drawn on stderr.
        pub(super) fn stderr(total: u64) -> ProgressBar {
            let style = ProgressStyle::with_template(
                "[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> ");
            let bar =
                indicatif::ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                    .with_style(style);
            ProgressBar(bar)
        }

        /// A bar that draws nothing.
        pub(super) fn hidden() -> ProgressBar {
            ProgressBar(indicatif::ProgressBar::hidden())
        }

        pub(super) fn is_hidden(&self) -> bool {
            self.0.is_hidden()
        }

        pub(super) fn set_position(&self, step: u64) {
            self.0.set_position(step);
        }

        pub(super) fn set_message(&self, message: String) {
            self.0.set_message(message);
        }

        pub(super) fn println(&self, message: &str) {
            self.0.println(message);
        }

        pub(super) fn finish_with_message(&self, message: String) {
            self.0.finish_with_message(message);
        }
    }
}

/// Without the `progress-bar` feature: a bar that is always hidden.
#[cfg(not(feature = "progress-bar"))]
mod bar {
    /// A bar that draws nothing.
    pub(super) struct ProgressBar;

    impl ProgressBar {
        /// Whether a visible bar can be drawn.
        pub(super) const AVAILABLE: bool = false;

        /// Never called: [`ProgressBar::AVAILABLE`] is false.
        pub(super) fn stderr(_total: u64) -> ProgressBar {
            ProgressBar
        }

        pub(super) fn hidden() -> ProgressBar {
            ProgressBar
        }

        pub(super) fn is_hidden(&self) -> bool {
            true
        }

        pub(super) fn set_position(&self, _step: u64) {}

        pub(super) fn set_message(&self, _message: String) {}

        pub(super) fn println(&self, _message: &str) {}

        pub(super) fn finish_with_message(&self, _message: String) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    #[test]
    fn lines_come_every_n_steps_and_at_the_end() {
        let out = Shared::default();
        let mut p = Progress::with_writer(25, 10, Box::new(out.clone()));
        for step in 1..=25 {
            p.update(step, 1.0 / step as f64, (step >= 20).then_some(0.875));
        }
        p.finish("done");
        let lines = out.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].starts_with("step 10/25 (40%)  loss 0.1000  "),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with("step 20/25 (80%)  loss 0.0500  acc 87.5%  "));
        assert!(lines[2].starts_with("step 25/25 (100%)  loss 0.0400  acc 87.5%  "));
        assert!(lines[0].contains(" steps/s  "));
        assert_eq!(lines[3], "done");
    }

    #[test]
    fn finish_logs_an_unlogged_last_step_once() {
        let out = Shared::default();
        let mut p = Progress::with_writer(100, 10, Box::new(out.clone()));
        for step in 1..=13 {
            p.update(step, 0.5, None);
        }
        p.println("stopped early");
        p.finish("interrupted");
        let lines = out.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].starts_with("step 10/100 (10%)  loss 0.5000  "));
        assert_eq!(lines[1], "stopped early");
        assert!(lines[2].starts_with("step 13/100 (13%)  loss 0.5000  "));
        assert_eq!(lines[3], "interrupted");
    }

    #[test]
    fn formats_are_exact() {
        assert_eq!(metrics(0.123456, Some(0.9523)), "loss 0.1235  acc 95.2%");
        assert_eq!(metrics(f64::NAN, None), "loss NaN");
        assert_eq!(
            summary_line(100, 1000, 2.0, None, 512.0, Duration::from_millis(250)),
            "step 100/1000 (10%)  loss 2.0000  512.0 steps/s  0.2s"
        );
        assert_eq!(steps_per_sec(50, Duration::from_millis(500)), 100.0);
        assert_eq!(steps_per_sec(50, Duration::ZERO), 0.0);
    }

    #[test]
    fn quiet_and_auto_modes() {
        assert_eq!(ProgressMode::auto(true, 10), ProgressMode::Quiet);
        // Under `cargo test` stderr is captured or piped, or a terminal: either way a visible mode.
        assert_ne!(ProgressMode::auto(false, 10), ProgressMode::Quiet);
        let mut quiet = Progress::new(10, ProgressMode::Quiet);
        quiet.update(5, 1.0, None);
        quiet.println("not shown");
        quiet.finish("not shown");
        assert!(quiet.bar.is_hidden() && quiet.lines.is_none());
    }
}
