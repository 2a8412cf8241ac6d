//! What a model gets without listening: predictors that read only the
//! training clips' labels and who played what, never the audio, the MIDI or
//! the test clip's own label. Each test clip gets the mean labels of the
//! training clips it shares a key with (its performer; its performer on the
//! same work; its segment group; rendering or human), or the training mean
//! where none does. They run on every split through the same folds and
//! cells as the heads, so their R² is what a split lets identity alone buy.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{LabeledClips, TrainOutput};
use crate::dataset::folds::Split;
use crate::dims::N_DIMS;

/// A label-only baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelOnly {
    /// The training clips' mean: R² ≈ 0 by construction (a little below).
    GlobalMean,
    /// The same performer's training clips.
    PerformerMean,
    /// The same performer's training clips of the same work.
    PerformerWorkMean,
    /// The other performances of the same segment group in training.
    SegmentMean,
    /// Renderings get the training renderings' mean, humans the humans'.
    RenderingFlag,
}

impl LabelOnly {
    pub const ALL: [LabelOnly; 5] = [
        LabelOnly::GlobalMean,
        LabelOnly::PerformerMean,
        LabelOnly::PerformerWorkMean,
        LabelOnly::SegmentMean,
        LabelOnly::RenderingFlag,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LabelOnly::GlobalMean => "global_mean",
            LabelOnly::PerformerMean => "performer_mean",
            LabelOnly::PerformerWorkMean => "performer_work_mean",
            LabelOnly::SegmentMean => "segment_mean",
            LabelOnly::RenderingFlag => "rendering_flag",
        }
    }

    /// Its experiment id in the tables.
    pub fn id(self) -> String {
        format!("labels-{}", self.name())
    }

    pub fn description(self) -> &'static str {
        match self {
            LabelOnly::GlobalMean => {
                "label-only: the training clips' mean labels (no audio, no MIDI)"
            }
            LabelOnly::PerformerMean => {
                "label-only: the same performer's mean labels in training (no audio, no MIDI)"
            }
            LabelOnly::PerformerWorkMean => {
                "label-only: the same performer's mean labels on the same work in training (no audio, no MIDI)"
            }
            LabelOnly::SegmentMean => {
                "label-only: the mean labels of the segment group's other performances in training (no audio, no MIDI)"
            }
            LabelOnly::RenderingFlag => {
                "label-only: the training mean of the renderings for a rendering, of the humans for a human (no audio, no MIDI)"
            }
        }
    }

    /// The key a test clip (manifest row `r`) shares with the training
    /// clips it is predicted from; `None`: all of them.
    fn key(self, clips: &LabeledClips, r: usize) -> Option<String> {
        match self {
            LabelOnly::GlobalMean => None,
            LabelOnly::PerformerMean => Some(clips.performers[r].clone()),
            LabelOnly::PerformerWorkMean => {
                Some(format!("{}\u{1f}{}", clips.performers[r], clips.works[r]))
            }
            LabelOnly::SegmentMean => Some(clips.pieces[r].clone()),
            LabelOnly::RenderingFlag => Some(clips.is_rendering[r].to_string()),
        }
    }
}

/// Mean label rows of `rows`.
fn mean_labels(labels: &[f32], rows: &[usize]) -> [f64; N_DIMS] {
    let mut m = [0.0f64; N_DIMS];
    for &r in rows {
        for (d, v) in m.iter_mut().enumerate() {
            *v += labels[r * N_DIMS + d] as f64;
        }
    }
    m.map(|v| v / rows.len() as f64)
}

/// Out-of-fold predictions of `baseline` for every clip of the manifest on
/// `split`: each model's test clips from the clips that model may learn
/// from (the same cells as a head's, validation pieces included, since
/// nothing is early-stopped).
pub fn predict(baseline: LabelOnly, clips: &LabeledClips, split: Split) -> Result<TrainOutput> {
    let started = Instant::now();
    let rows: Vec<usize> = (0..clips.clip_ids.len()).collect();
    let split_folds = clips.split_folds(split, &rows)?;
    let cells = split_folds.cells();
    let mut y_pred = vec![0f32; rows.len() * N_DIMS];
    for (key, test) in cells.models() {
        let learn = cells.learn_rows(key);
        anyhow::ensure!(
            !learn.is_empty(),
            "split `{split}`: the model of fold {} (cross fold {}) has no clip to learn from",
            key.0,
            key.1
        );
        let global = mean_labels(&clips.labels, &learn);
        let mut by_key: HashMap<Option<String>, Vec<usize>> = HashMap::new();
        for &r in &learn {
            by_key.entry(baseline.key(clips, r)).or_default().push(r);
        }
        let means: HashMap<Option<String>, [f64; N_DIMS]> = (by_key.into_iter())
            .map(|(k, rows)| (k, mean_labels(&clips.labels, &rows)))
            .collect();
        for &t in &test {
            let m = means.get(&baseline.key(clips, t)).unwrap_or(&global);
            for d in 0..N_DIMS {
                y_pred[t * N_DIMS + d] = m[d] as f32;
            }
        }
    }
    let out = TrainOutput {
        clip_ids: clips.clip_ids.clone(),
        split,
        folds: split_folds.folds.clone(),
        y_true: clips.labels.clone(),
        y_pred,
        d_in: 0,
        train_seconds: started.elapsed().as_secs_f64(),
        fold_reports: Vec::new(),
        failed: clips.failed.clone(),
        heads: Vec::new(),
        seeds: Vec::new(),
        seed_predictions: Vec::new(),
    };
    Ok(out.only_rows(&split_folds.scored()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight clips: performers a, b (a's fold 0, b's fold 1), pieces p, q
    /// (p in piece fold 0, q in 1), works w (p) and v (q); clip 7 a
    /// rendering. Label value of clip i on every dimension: i / 10.
    fn clips() -> LabeledClips {
        let performers = ["a", "a", "b", "b", "a", "a", "b", "b"];
        let pieces = ["p", "p", "p", "p", "q", "q", "q", "q"];
        let n = performers.len();
        LabeledClips {
            clip_ids: (0..n).map(|i| format!("c{i}")).collect(),
            pieces: pieces.iter().map(|s| s.to_string()).collect(),
            works: pieces
                .iter()
                .map(|p| if *p == "p" { "w" } else { "v" }.to_string())
                .collect(),
            performers: performers.iter().map(|s| s.to_string()).collect(),
            is_rendering: (0..n).map(|i| i == 7).collect(),
            folds: pieces.iter().map(|p| Some((*p == "q") as usize)).collect(),
            performer_folds: performers
                .iter()
                .map(|p| Some((*p == "b") as usize))
                .collect(),
            published_folds: None,
            label_se: None,
            labels: (0..n).flat_map(|i| [i as f32 / 10.0; N_DIMS]).collect(),
            failed: Vec::new(),
        }
    }

    fn first_dim(out: &TrainOutput) -> Vec<f32> {
        out.y_pred.iter().step_by(N_DIMS).copied().collect()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn piece_split_baselines_match_hand_computed_means() {
        let c = clips();
        let run = |b| first_dim(&predict(b, &c, Split::Piece).unwrap());
        // Piece fold 0 (clips 0-3) learns from clips 4-7 (mean 0.55) and vice versa (0.15).
        let global = run(LabelOnly::GlobalMean);
        assert!(close(
            &global,
            &[0.55, 0.55, 0.55, 0.55, 0.15, 0.15, 0.15, 0.15]
        ));
        // Performer a's clips 0, 1 learn from a's 4, 5: 0.45; b's 2, 3 from 6, 7: 0.65.
        let perf = run(LabelOnly::PerformerMean);
        assert!(
            close(&perf, &[0.45, 0.45, 0.65, 0.65, 0.05, 0.05, 0.25, 0.25]),
            "{perf:?}"
        );
        // Each work is one piece here: no same-performer same-work clip trains, so the global mean.
        assert!(close(&run(LabelOnly::PerformerWorkMean), &global));
        // A segment group never trains on its own piece split.
        assert!(close(&run(LabelOnly::SegmentMean), &global));
        // Clips 0-3 are human: the training humans 4, 5, 6 mean 0.5; clip 7 (fold 1)
        // a rendering with none in training: the global mean 0.15. Fold 1's humans: 0.15.
        let flag = run(LabelOnly::RenderingFlag);
        assert!(
            close(&flag, &[0.5, 0.5, 0.5, 0.5, 0.15, 0.15, 0.15, 0.15]),
            "{flag:?}"
        );
    }

    #[test]
    fn performer_split_baselines_never_see_the_performer() {
        let c = clips();
        let run = |b| first_dim(&predict(b, &c, Split::Performer).unwrap());
        // Performer a (clips 0, 1, 4, 5) learns from b's 2, 3, 6, 7.
        let seg = run(LabelOnly::SegmentMean);
        assert!(
            close(&seg, &[0.25, 0.25, 0.05, 0.05, 0.65, 0.65, 0.45, 0.45]),
            "{seg:?}"
        );
        assert!(close(
            &run(LabelOnly::PerformerMean),
            &run(LabelOnly::GlobalMean)
        ));
        // piece_performer: clip 0 (piece fold 0, performer fold 0) learns only from clips
        // in piece fold 1 and performer fold 1: 6, 7 (0.65).
        let pp = first_dim(&predict(LabelOnly::SegmentMean, &c, Split::PiecePerformer).unwrap());
        assert!(
            close(&pp, &[0.65, 0.65, 0.45, 0.45, 0.25, 0.25, 0.05, 0.05]),
            "{pp:?}"
        );
    }
}
