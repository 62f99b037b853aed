//! `ekg simulate`'s progress on standard error: an indicatif bar per phase (making the PKI's
//! keys, the late-binding run, the early-binding run, the availability sweep) when standard
//! error is a terminal; otherwise one plain line per finished phase, so that a CI log or a
//! pipe gets no control characters.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress of one scenario's run.
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    tty: bool,
    phase: String,
    started: Instant,
}

impl Progress {
    /// For the scenario `label` (e.g. `[2/8] mailing-list`).
    pub fn new(label: String) -> Progress {
        Progress {
            label,
            bar: None,
            tty: std::io::stderr().is_terminal(),
            phase: String::new(),
            started: Instant::now(),
        }
    }

    /// `done` of `total` in `phase` (`pki`, `late`, `early`, `sweep`).
    pub fn update(&mut self, phase: &str, done: u64, total: u64) {
        if phase != self.phase {
            self.end_phase();
            self.phase = phase.to_owned();
            self.started = Instant::now();
            if self.tty {
                self.bar = Some(bar(&self.label, phase, total));
            }
        }
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(done);
        }
    }

    fn end_phase(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if !self.phase.is_empty() && !self.tty {
            eprintln!(
                "  {}: {} done in {:.1} s",
                self.label,
                describe(&self.phase),
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// The run is over: clears the bar (or prints the last phase's line).
    pub fn finish(&mut self) {
        self.end_phase();
        self.phase.clear();
    }
}

fn describe(phase: &str) -> &str {
    match phase {
        "pki" => "RSA keys of the PKI",
        "late" => "late binding (the gatekeeper)",
        "early" => "early binding (S/MIME-style)",
        "sweep" => "early binding at each certificate availability",
        other => other,
    }
}

fn bar(label: &str, phase: &str, total: u64) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    // The bar takes what the terminal's width leaves, so the line never wraps.
    let template = if phase == "pki" {
        "{prefix} {spinner} {msg} {elapsed}".to_owned()
    } else {
        "{prefix} {msg} [{wide_bar}] {pos}/{len} {elapsed}".to_owned()
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        b.set_style(style.progress_chars("=> "));
    }
    let what = match phase {
        "pki" => "making the PKI's RSA keys",
        "late" => "late binding, messages",
        "early" => "early binding, messages",
        "sweep" => "availability sweep, runs",
        other => other,
    };
    b.set_prefix(label.to_owned());
    b.set_message(what.to_owned());
    b.enable_steady_tick(Duration::from_millis(120));
    b
}
