//! What a run shows while it works: on a terminal, one bar per stage in the
//! stage's own unit ("12/18 experiments  0.5 experiments/s  ETA 12s");
//! otherwise (logs, CI) one line per active stage every ~10 s, so a long run
//! is never silent between its first and last line.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Seconds between progress lines when stderr is not a terminal.
pub const DEFAULT_EVERY: f64 = 10.0;

enum Mode {
    Bars(MultiProgress),
    Lines { every: Duration, last: Instant },
}

struct StageProgress {
    name: &'static str,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Option<Instant>,
    finished: bool,
    bar: Option<ProgressBar>,
}

pub(super) struct Progress {
    mode: Mode,
    stages: Vec<StageProgress>,
}

impl Progress {
    /// `stages`: (name, unit, nodes to settle) per stage. Lines every
    /// `every` seconds when stderr is not a terminal (or `every` is given).
    pub fn new(stages: Vec<(&'static str, &'static str, u64)>, every: Option<f64>) -> Progress {
        let mode = match every {
            None if std::io::stderr().is_terminal() => {
                Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            }
            _ => Mode::Lines {
                every: Duration::from_secs_f64(every.unwrap_or(DEFAULT_EVERY).max(0.01)),
                last: Instant::now(),
            },
        };
        Progress {
            mode,
            stages: stages
                .into_iter()
                .map(|(name, unit, total)| StageProgress {
                    name,
                    unit,
                    total,
                    done: 0,
                    started: None,
                    finished: false,
                    bar: None,
                })
                .collect(),
        }
    }

    /// How long the runner may wait for results before the next [`Progress::tick`].
    pub fn wait(&self) -> Duration {
        match &self.mode {
            Mode::Bars(_) => Duration::from_secs(3600),
            Mode::Lines { every, last } => every
                .saturating_sub(last.elapsed())
                .max(Duration::from_millis(5)),
        }
    }

    /// The stage's first batch was handed out.
    pub fn start(&mut self, si: usize) {
        let s = &mut self.stages[si];
        if s.started.is_some() {
            return;
        }
        s.started = Some(Instant::now());
        if let Mode::Bars(bars) = &self.mode {
            let bar = bars.add(ProgressBar::new(s.total));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(s.name);
            bar.set_message(s.unit);
            s.bar = Some(bar);
        }
    }

    /// `n` more nodes of the stage are settled.
    pub fn inc(&mut self, si: usize, n: u64) {
        let s = &mut self.stages[si];
        s.done += n;
        if let Some(bar) = &s.bar {
            bar.inc(n);
            let secs = s.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
            bar.set_message(format!(
                "{}  {}",
                s.unit,
                rate_eta(s.done, s.total, secs, s.unit)
            ));
        }
    }

    pub fn finish(&mut self, si: usize) {
        let s = &mut self.stages[si];
        s.finished = true;
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Lines mode: one line per started, unfinished stage when it is time.
    pub fn tick(&mut self) {
        let Mode::Lines { every, last } = &mut self.mode else {
            return;
        };
        if last.elapsed() < *every {
            return;
        }
        *last = Instant::now();
        for s in &self.stages {
            if let (Some(t), false) = (s.started, s.finished) {
                eprintln!(
                    "{}",
                    line(s.name, s.unit, s.done, s.total, t.elapsed().as_secs_f64())
                );
            }
        }
    }
}

/// One progress line: `pipe: features 340/1202 vectors (28%), 2.1 vectors/s, ETA 6m 50s`.
pub fn line(stage: &str, unit: &str, done: u64, total: u64, secs: f64) -> String {
    let pct = (100 * done).checked_div(total).unwrap_or(100);
    format!(
        "pipe: {stage} {done}/{total} {unit} ({pct}%), {}",
        rate_eta(done, total, secs, unit)
    )
}

/// "2.1 clips/s, ETA 6m 50s" with digits that suit the rate.
pub fn rate_eta(done: u64, total: u64, secs: f64, unit: &str) -> String {
    if done == 0 || secs <= 0.0 {
        return "starting".to_string();
    }
    let per_s = done as f64 / secs;
    let left = total.saturating_sub(done) as f64 / per_s;
    format!("{}, ETA {}", rate(per_s, unit), duration(left))
}

/// A rate with about two significant digits, per second or per minute.
pub fn rate(per_s: f64, unit: &str) -> String {
    match per_s {
        r if r >= 10.0 => format!("{r:.0} {unit}/s"),
        r if r >= 1.0 => format!("{r:.1} {unit}/s"),
        r if r * 60.0 >= 1.0 => format!("{:.1} {unit}/min", r * 60.0),
        r => format!("{:.0} min each", 1.0 / (r * 60.0)),
    }
}

/// `12s`, `6m 50s`, `1h 02m`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_etas_have_sensible_digits() {
        assert_eq!(rate(123.456, "clips"), "123 clips/s");
        assert_eq!(rate(2.345, "clips"), "2.3 clips/s");
        assert_eq!(rate(0.5, "experiments"), "30.0 experiments/min");
        assert_eq!(rate(1.0 / 600.0, "experiments"), "10 min each");
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(410.0), "6m 50s");
        assert_eq!(duration(3720.0), "1h 02m");
        assert_eq!(
            line("features", "vectors", 340, 1202, 160.0),
            "pipe: features 340/1202 vectors (28%), 2.1 vectors/s, ETA 6m 46s"
        );
        assert_eq!(rate_eta(0, 10, 1.0, "clips"), "starting");
    }
}
