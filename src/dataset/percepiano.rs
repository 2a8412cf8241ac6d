//! PercePiano: labels JSON + per-segment metadata CSV + performance MIDI.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{Clip, SourceKind};
use crate::dims::N_DIMS;

/// The clips of the labels file (`limit`: keep that many, spread over the
/// pieces with that seed).
pub fn load(
    labels: &Path,
    metadata: &Path,
    midi_dir: &Path,
    limit: Option<(usize, u64)>,
) -> Result<Vec<Clip>> {
    let labels_map = read_labels(labels)?;
    let meta = read_metadata(metadata)?;
    for id in meta.keys() {
        if !labels_map.contains_key(id) {
            bail!(
                "clip {id} is in {} but has no labels in {}",
                metadata.display(),
                labels.display()
            );
        }
    }
    let mut clips = Vec::with_capacity(labels_map.len());
    for (id, values) in labels_map {
        let m = meta.get(&id).with_context(|| {
            format!(
                "clip {id} has labels in {} but no row in {}",
                labels.display(),
                metadata.display()
            )
        })?;
        let source = midi_dir.join(format!("{id}.mid"));
        clips.push(Clip {
            piece: m.piece.clone(),
            work: m.work.clone(),
            performer: m.performer.clone(),
            is_rendering: m.is_rendering,
            label_se: m.label_se,
            source,
            source_kind: SourceKind::Midi,
            labels: values,
            fold: None,
            performer_fold: None,
            published_fold: None,
            id,
        });
    }
    if let Some((n, seed)) = limit {
        clips = super::spread_over_pieces(clips, n, seed);
    }
    let missing_midi: Vec<String> = clips
        .iter()
        .filter(|c| !c.source.is_file())
        .map(|c| c.source.display().to_string())
        .collect();
    if !missing_midi.is_empty() {
        bail!(
            "{} clip(s) have labels but no MIDI file, e.g. {}",
            missing_midi.len(),
            missing_midi
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(clips)
}

/// `{clip: [19 label values, pianist index]}`; the 20th value is not a label.
fn read_labels(path: &Path) -> Result<BTreeMap<String, [f64; N_DIMS]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading labels {}", path.display()))?;
    let raw: BTreeMap<String, Vec<f64>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected {{\"clip_id\": [19 or 20 numbers], ...}}",
            path.display()
        )
    })?;
    if raw.is_empty() {
        bail!("{}: no clips", path.display());
    }
    let mut out = BTreeMap::new();
    for (id, v) in raw {
        if v.len() < N_DIMS {
            bail!(
                "{}: clip {id} has {} values, expected 19 labels (+ an optional 20th)",
                path.display(),
                v.len()
            );
        }
        let mut labels = [0.0; N_DIMS];
        for (d, (slot, &x)) in labels.iter_mut().zip(&v).enumerate() {
            // Means of 1..7 ratings divided by 7: anything outside [0, 1] is not this file.
            if !(0.0..=1.0).contains(&x) {
                bail!(
                    "{}: clip {id} label {} = {x}, expected a mean rating / 7 in [1/7, 1]",
                    path.display(),
                    crate::dims::DIMENSIONS[d]
                );
            }
            *slot = x;
        }
        out.insert(id, labels);
    }
    Ok(out)
}

struct Meta {
    piece: String,
    work: String,
    performer: String,
    is_rendering: bool,
    /// Standard error of each mean rating: the raters' std / sqrt(raters),
    /// where the metadata has `std_<dimension>` and `n_annotations`.
    label_se: Option<[f64; N_DIMS]>,
}

fn read_metadata(path: &Path) -> Result<HashMap<String, Meta>> {
    let mut rdr = csv::Reader::from_path(path)
        .with_context(|| format!("reading metadata {}", path.display()))?;
    let headers = rdr
        .headers()
        .map_err(|e| super::csv_error(path, e))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: missing column `{name}`", path.display()))
    };
    let (id_c, piece_c, work_c, perf_c, rend_c) = (
        col("segment_id")?,
        col("segment_group")?,
        col("work")?,
        col("performer")?,
        col("is_score_rendering")?,
    );
    // The raters' spread, where given: PercePiano names `pace` as
    // `std_music_making_pace` (and space, balance, drama alike).
    let std_cols: Option<Vec<usize>> = crate::dims::DIMENSIONS
        .iter()
        .map(|d| {
            headers.iter().position(|h| {
                h.strip_prefix("std_")
                    .is_some_and(|rest| rest == *d || rest.ends_with(&format!("_{d}")))
            })
        })
        .collect();
    let spread = std_cols.zip(headers.iter().position(|h| h == "n_annotations"));
    let mut out = HashMap::new();
    for row in rdr.records() {
        let row = row.map_err(|e| super::csv_error(path, e))?;
        let line = row.position().map_or(0, |p| p.line());
        let get = |c: usize| row.get(c).unwrap_or("").to_string();
        let id = get(id_c);
        let is_rendering = match get(rend_c).as_str() {
            "1" | "true" | "True" => true,
            "0" | "false" | "False" => false,
            other => bail!(
                "{}: line {line}: is_score_rendering = {other:?}, expected 0 or 1",
                path.display()
            ),
        };
        let number = |c: usize| -> Result<f64> {
            let text = get(c);
            text.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .with_context(|| {
                    format!(
                        "{}: line {line}: `{}` = {text:?}, expected a non-negative number",
                        path.display(),
                        &headers[c]
                    )
                })
        };
        let label_se = match &spread {
            Some((cols, n_c)) => {
                let n = number(*n_c)?;
                if n < 1.0 {
                    bail!(
                        "{}: line {line}: n_annotations = {n}, expected at least 1",
                        path.display()
                    );
                }
                let mut se = [0.0; N_DIMS];
                for (slot, &c) in se.iter_mut().zip(cols) {
                    *slot = number(c)? / n.sqrt();
                }
                Some(se)
            }
            None => None,
        };
        let meta = Meta {
            piece: get(piece_c),
            work: get(work_c),
            performer: get(perf_c),
            is_rendering,
            label_se,
        };
        if out.insert(id.clone(), meta).is_some() {
            bail!("{}: clip {id} appears twice", path.display());
        }
    }
    Ok(out)
}
