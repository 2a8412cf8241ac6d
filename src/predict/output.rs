//! Scores as a user reads them: a terminal table, Parquet, CSV or JSON (the
//! format chosen by the file's extension), on the rating scale or the
//! labels' own scale.

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};
use std::path::Path;

use super::bundle::ModelCard;
use super::score::Scores;
use crate::table::TableBuilder;

/// Which scale scores are shown on.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub multiplier: f64,
    /// e.g. "PercePiano's 1-7 rating scale".
    pub name: String,
    /// `rating` or `label`, for the tables' `scale` column.
    pub id: &'static str,
}

impl Scale {
    /// The rating scale when the card has one and `labels` is not asked for.
    pub fn of(card: &ModelCard, labels: bool) -> Scale {
        match (
            card.labels.rating_multiplier,
            &card.labels.rating_scale,
            labels,
        ) {
            (Some(m), Some(name), false) => Scale {
                multiplier: m,
                name: name.clone(),
                id: "rating",
            },
            _ => Scale {
                multiplier: 1.0,
                name: card.labels.description.clone(),
                id: "label",
            },
        }
    }

    pub fn apply(&self, scores: &[f32]) -> Vec<f64> {
        scores.iter().map(|&s| s as f64 * self.multiplier).collect()
    }
}

/// One file's outcome.
pub struct Scored {
    pub file: String,
    pub result: Result<Scores, String>,
}

/// The terminal table: one row per dimension, one column per scored file
/// (its overall score).
pub fn table(card: &ModelCard, scale: &Scale, files: &[Scored]) -> String {
    let ok: Vec<(&str, &Scores)> = files
        .iter()
        .filter_map(|f| f.result.as_ref().ok().map(|s| (f.file.as_str(), s)))
        .collect();
    if ok.is_empty() {
        return String::new();
    }
    // File names, their last 28 characters when longer (the column stays readable).
    let names: Vec<String> = ok
        .iter()
        .map(|(f, _)| {
            let n = Path::new(f)
                .file_name()
                .map_or(f.to_string(), |n| n.to_string_lossy().into_owned());
            let chars: Vec<char> = n.chars().collect();
            if chars.len() > 28 {
                format!("…{}", chars[chars.len() - 27..].iter().collect::<String>())
            } else {
                n
            }
        })
        .collect();
    let w0 = card
        .dimensions
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(9)
        .max(9);
    let widths: Vec<usize> = names.iter().map(|n| n.chars().count().max(6)).collect();
    let mut s = format!("{:<w0$}", "dimension");
    for (n, w) in names.iter().zip(&widths) {
        s += &format!("  {n:>w$}");
    }
    s += "\n";
    for (d, dim) in card.dimensions.iter().enumerate() {
        s += &format!("{dim:<w0$}");
        for ((_, sc), w) in ok.iter().zip(&widths) {
            s += &format!("  {:>w$.3}", sc.overall[d] as f64 * scale.multiplier);
        }
        s += "\n";
    }
    s
}

/// The scores as JSON: per file its overall and per-segment scores keyed by
/// dimension, or its error.
pub fn json(card: &ModelCard, scale: &Scale, files: &[Scored]) -> Value {
    let by_dim = |scores: &[f32]| -> Value {
        let m: Map<String, Value> = card
            .dimensions
            .iter()
            .zip(scale.apply(scores))
            .map(|(d, v)| (d.clone(), json!(v)))
            .collect();
        Value::Object(m)
    };
    let rows: Vec<Value> = files
        .iter()
        .map(|f| match &f.result {
            Ok(s) => json!({
                "file": f.file,
                "duration_s": s.duration_s,
                "overall": by_dim(&s.overall),
                "segments": s.segments.iter().map(|g| json!({
                    "start_s": g.start_s,
                    "end_s": g.end_s,
                    "scores": by_dim(&g.scores),
                })).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "file": f.file, "error": e }),
        })
        .collect();
    json!({
        "experiment": card.experiment,
        "scale": scale.name,
        "control": card.uses_control(),
        "files": rows,
    })
}

/// Long rows: one per (file, segment) plus one overall row per file
/// (`segment` null), for Parquet and CSV.
struct Rows {
    file: Vec<String>,
    segment: Vec<Option<i32>>,
    start: Vec<f64>,
    end: Vec<f64>,
    scores: Vec<Vec<f64>>,
}

fn rows(scale: &Scale, files: &[Scored]) -> Rows {
    let mut r = Rows {
        file: Vec::new(),
        segment: Vec::new(),
        start: Vec::new(),
        end: Vec::new(),
        scores: Vec::new(),
    };
    for f in files {
        let Ok(s) = &f.result else { continue };
        let mut push = |seg: Option<i32>, a: f64, b: f64, sc: &[f32]| {
            r.file.push(f.file.clone());
            r.segment.push(seg);
            r.start.push(a);
            r.end.push(b);
            r.scores.push(scale.apply(sc));
        };
        push(None, 0.0, s.duration_s, &s.overall);
        for (i, g) in s.segments.iter().enumerate() {
            push(Some(i as i32), g.start_s, g.end_s, &g.scores);
        }
    }
    r
}

/// Writes `--output`: `.parquet`, `.csv` or `.json`, atomically.
pub fn write(path: &Path, card: &ModelCard, scale: &Scale, files: &[Scored]) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let bytes = match ext {
        "json" => (serde_json::to_string_pretty(&json(card, scale, files))? + "\n").into_bytes(),
        "parquet" => {
            let r = rows(scale, files);
            let mut t = TableBuilder::new()
                .utf8("file", &r.file)
                .i32_opt("segment", r.segment)
                .f64("start_s", r.start)
                .f64("end_s", r.end);
            for (d, dim) in card.dimensions.iter().enumerate() {
                t = t.f64(dim, r.scores.iter().map(|s| s[d]).collect());
            }
            let batch = t
                .meta("pipe.experiment", card.experiment.clone())
                .meta("pipe.scale", scale.name.clone())
                .meta("pipe.control", card.uses_control().to_string())
                .batch()?;
            crate::table::to_bytes(&batch)?
        }
        "csv" => {
            let r = rows(scale, files);
            let mut w = csv::Writer::from_writer(Vec::new());
            let mut header = vec!["file", "segment", "start_s", "end_s"];
            header.extend(card.dimensions.iter().map(String::as_str));
            w.write_record(&header)?;
            for i in 0..r.file.len() {
                let mut rec = vec![
                    r.file[i].clone(),
                    r.segment[i].map_or(String::new(), |s| s.to_string()),
                    r.start[i].to_string(),
                    r.end[i].to_string(),
                ];
                rec.extend(r.scores[i].iter().map(|v| v.to_string()));
                w.write_record(&rec)?;
            }
            w.into_inner()
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?
        }
        other => bail!(
            "--output {}: unknown extension `{other}` (use .parquet, .csv or .json)",
            path.display()
        ),
    };
    crate::dag::store::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::score::Segment;

    #[test]
    fn the_rating_scale_is_seven_times_the_labels_and_outputs_carry_it() {
        let card = crate::predict::bundle::sample_card();
        let rating = Scale::of(&card, false);
        let labels = Scale::of(&card, true);
        assert_eq!((rating.multiplier, rating.id), (7.0, "rating"));
        assert_eq!((labels.multiplier, labels.id), (1.0, "label"));
        let scores = Scores {
            duration_s: 2.0,
            overall: vec![0.5; 19],
            segments: vec![Segment {
                start_s: 0.0,
                end_s: 2.0,
                scores: vec![0.5; 19],
            }],
        };
        let files = [
            Scored {
                file: "a/take.wav".into(),
                result: Ok(scores),
            },
            Scored {
                file: "bad.wav".into(),
                result: Err("not audio".into()),
            },
        ];
        let v = json(&card, &rating, &files);
        assert_eq!(v["files"][0]["overall"]["timing"], 3.5);
        assert_eq!(v["files"][1]["error"], "not audio");
        let t = table(&card, &labels, &files);
        assert!(t.starts_with("dimension") && t.contains("take.wav"), "{t}");
        assert!(
            t.lines().nth(1).unwrap().trim_end().ends_with("0.500"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 20);
    }
}
