//! What changed between two recorded runs: per experiment the params that
//! differ (key paths, old -> new) and the metrics that moved, and which
//! experiments were added or removed (`pipe diff`, like `dvc metrics diff`
//! and `dvc params diff` in one).

use std::fmt;

use super::{Row, Run, time};
use crate::dag::reason::param_changes;

/// One metric of one experiment in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDelta {
    pub name: &'static str,
    pub old: Option<f64>,
    pub new: Option<f64>,
}

impl MetricDelta {
    pub fn delta(&self) -> Option<f64> {
        Some(self.new? - self.old?)
    }
}

/// An experiment in both runs whose params or results differ.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentDiff {
    pub experiment: String,
    /// (old, new) feature set name, when it was switched.
    pub features: Option<(String, String)>,
    /// `path: old -> new`, one per changed leaf.
    pub params: Vec<String>,
    /// Only the metrics whose values differ.
    pub metrics: Vec<MetricDelta>,
}

#[derive(Clone, Debug)]
pub struct RunDiff {
    pub old: RunHeader,
    pub new: RunHeader,
    pub changed: Vec<ExperimentDiff>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct RunHeader {
    pub id: String,
    pub time_us: i64,
    pub config_hash: String,
    pub git_commit: Option<String>,
}

impl RunHeader {
    fn of(run: &Run) -> RunHeader {
        RunHeader {
            id: run.id().to_string(),
            time_us: run.time_us(),
            config_hash: run.config_hash().to_string(),
            git_commit: run.git_commit().map(str::to_string),
        }
    }
}

fn metrics(r: &Row) -> [(&'static str, Option<f64>); 7] {
    [
        ("r2", Some(r.r2)),
        ("r2_ci_low", Some(r.r2_ci_low)),
        ("r2_ci_high", Some(r.r2_ci_high)),
        ("mae", Some(r.mae)),
        ("pearson", r.pearson),
        ("dispersion", Some(r.dispersion)),
        ("n_clips", Some(f64::from(r.n_clips))),
    ]
}

/// Compares run `old` with run `new`.
pub fn diff(old: &Run, new: &Run) -> RunDiff {
    let mut out = RunDiff {
        old: RunHeader::of(old),
        new: RunHeader::of(new),
        changed: Vec::new(),
        added: Vec::new(),
        removed: Vec::new(),
        unchanged: Vec::new(),
    };
    let mut ids: Vec<&str> = old
        .rows
        .iter()
        .chain(&new.rows)
        .map(|r| r.experiment.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let (a, b) = match (old.row(id), new.row(id)) {
            (Some(a), Some(b)) => (a, b),
            (None, Some(_)) => {
                out.added.push(id.to_string());
                continue;
            }
            (Some(_), None) => {
                out.removed.push(id.to_string());
                continue;
            }
            (None, None) => continue,
        };
        let params = match (
            serde_json::from_str::<serde_json::Value>(&a.params),
            serde_json::from_str::<serde_json::Value>(&b.params),
        ) {
            (Ok(x), Ok(y)) => param_changes(&x, &y),
            _ if a.params != b.params => vec![format!("params: {} -> {}", a.params, b.params)],
            _ => Vec::new(),
        };
        let metrics: Vec<MetricDelta> = metrics(a)
            .into_iter()
            .zip(metrics(b))
            .filter(|((_, x), (_, y))| x != y)
            .map(|((name, old), (_, new))| MetricDelta { name, old, new })
            .collect();
        let features = (a.features != b.features).then(|| (a.features.clone(), b.features.clone()));
        if params.is_empty() && metrics.is_empty() && features.is_none() {
            out.unchanged.push(id.to_string());
        } else {
            out.changed.push(ExperimentDiff {
                experiment: id.to_string(),
                features,
                params,
                metrics,
            });
        }
    }
    out
}

fn num(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.4}"))
}

impl fmt::Display for RunDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (&self.old, &self.new);
        writeln!(
            f,
            "{} ({} UTC) -> {} ({} UTC)",
            a.id,
            time::format_utc(a.time_us),
            b.id,
            time::format_utc(b.time_us)
        )?;
        let short = |h: &str| h.chars().take(12).collect::<String>();
        let pair = |x: String, y: String| {
            if x == y {
                format!("{x} (same)")
            } else {
                format!("{x} -> {y}")
            }
        };
        let git = |g: &Option<String>| g.as_deref().map_or("none".into(), short);
        writeln!(
            f,
            "config {}, git {}",
            pair(short(&a.config_hash), short(&b.config_hash)),
            pair(git(&a.git_commit), git(&b.git_commit))
        )?;
        for e in &self.changed {
            writeln!(f, "\n{}", e.experiment)?;
            if let Some((x, y)) = &e.features {
                writeln!(f, "  features: {x} -> {y}")?;
            }
            for p in &e.params {
                writeln!(f, "  {p}")?;
            }
            if e.params.is_empty() && e.features.is_none() {
                writeln!(f, "  (same params: its inputs changed)")?;
            }
            for m in &e.metrics {
                let delta = m.delta().map_or(String::new(), |d| format!("  ({d:+.4})"));
                writeln!(
                    f,
                    "  {:<10} {} -> {}{delta}",
                    m.name,
                    num(m.old),
                    num(m.new)
                )?;
            }
        }
        if self.changed.is_empty() {
            writeln!(f, "\nno experiment changed")?;
        }
        for (label, ids) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("unchanged", &self.unchanged),
        ] {
            if !ids.is_empty() {
                writeln!(f, "\n{label} ({}): {}", ids.len(), ids.join(", "))?;
            }
        }
        Ok(())
    }
}
