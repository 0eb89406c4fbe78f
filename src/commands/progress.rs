//! Drawing progress: an indicatif bar (bytes, rate, ETA) with lines above it on
//! a terminal, plain lines when stderr is not one, nothing with `-q` or `--json`.

use super::Output;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use velero_airgap::bundle::{PassEvent, PassProgress};

/// Where progress goes.
pub struct Progress {
    mode: Mode,
    quiet: bool,
    multi: Option<MultiProgress>,
    bar: Option<ProgressBar>,
    lines: Mutex<()>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Silent,
    Lines,
    Bars,
}

impl Progress {
    /// Picks the mode from the flags and whether stderr is a terminal.
    pub fn new(output: Output, json: bool, first_message: &str) -> Progress {
        let mode = if output.quiet || json {
            Mode::Silent
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        let (multi, bar) = if mode == Mode::Bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(bar_style());
            bar.set_message(first_message.to_string());
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        Progress {
            mode,
            quiet: output.quiet,
            multi,
            bar,
            lines: Mutex::new(()),
        }
    }

    /// Whether anything is shown.
    pub fn silent(&self) -> bool {
        self.mode == Mode::Silent
    }

    /// A line above the bar (or alone).
    pub fn line(&self, text: String) {
        match (&self.mode, &self.multi) {
            (Mode::Bars, Some(multi)) => {
                let _ = multi.println(text);
            }
            (Mode::Lines, _) => {
                let _guard = self.lines.lock();
                super::stderr_line(&text);
            }
            _ => {}
        }
    }

    /// A warning: shown unless `-q`, also with `--json` (it goes to stderr).
    pub fn warn(&self, text: &str) {
        self.notice("warning", text);
    }

    /// `LABEL: TEXT` on stderr, also with `--json`: errors always, the rest unless `-q`.
    pub fn notice(&self, label: &str, text: &str) {
        if self.quiet && label != "error" {
            return;
        }
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(format!("{label}: {text}"));
            }
            None => {
                let _guard = self.lines.lock();
                super::stderr_line(&format!("{label}: {text}"));
            }
        }
    }

    /// Starts counting towards `total` bytes.
    pub fn start(&self, total: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(0);
            bar.set_message(message.to_string());
        }
    }

    /// Bytes done.
    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// Changes the bar's label.
    pub fn message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    /// Draws a pass over a bundle file on the bar, from whatever thread the pass runs on;
    /// `None` when there is no bar.
    pub fn pass(&self) -> Option<PassProgress> {
        let bar = self.bar.clone()?;
        Some(Arc::new(move |event| match event {
            PassEvent::Started { file_size } => {
                bar.set_length(file_size);
                bar.set_position(0);
            }
            PassEvent::Read { bytes } => bar.inc(bytes),
        }))
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The bar. Its sizes are written by [`human_bytes`], as every line is: indicatif's own
/// `{bytes}` are binary (MiB), and would stand next to our MB.
const BAR_TEMPLATE: &str = "{spinner} {msg:12} [{bar:30}] {done}/{total} {rate} ETA {eta}";

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(BAR_TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "done",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&human_bytes(state.pos()));
            },
        )
        .with_key(
            "total",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&human_bytes(state.len().unwrap_or(0)));
            },
        )
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", human_bytes(state.per_sec() as u64));
            },
        )
        .progress_chars("=> ")
}

/// Sizes as people read them (MB = 10^6 bytes, as registries report), the one unit
/// family of every line and bar.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what is drawn on it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_bar_counts_in_the_units_of_every_line() {
        let screen = Screen::default();
        let bar = ProgressBar::with_draw_target(
            Some(87_800_000),
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(bar_style());
        bar.set_position(12_345_678);
        bar.tick();
        let drawn = screen.0.lock().unwrap().clone();
        assert!(drawn.contains("12.3 MB/87.8 MB"), "{drawn}");
        assert!(!drawn.contains("iB"), "{drawn}");
    }

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(87_800_000), "87.8 MB");
    }
}
