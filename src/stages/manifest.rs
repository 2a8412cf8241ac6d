//! manifest: one row per clip (ids, piece, work, performer, fold, performer fold, duration,
//! the labels' standard errors where the dataset has the raters' spread,
//! source, the 19 labels) as `data/out/manifest.parquet`. A partial
//! aggregate: clips whose audio failed are left out of the rows and listed
//! in `pipe.failed`; folds come from the labels, so they never move when a
//! clip fails.

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ALL;
use super::{MANIFEST, RESAMPLE};
use crate::audio;
use crate::dag::{Node, NodeSpec, Publish, Source, Stage, StageDecl};
use crate::dataset::{Dataset, failed};
use crate::dims::DIMENSIONS;
use crate::table::TableBuilder;

pub struct Manifest {
    dataset: Arc<Dataset>,
}

impl Manifest {
    pub fn new(dataset: Arc<Dataset>) -> Manifest {
        Manifest { dataset }
    }
}

impl Stage for Manifest {
    fn decl(&self) -> &'static StageDecl {
        &MANIFEST
    }
    fn describe(&self) -> String {
        "clip table: ids, piece, work, performer, fold, duration, source, 19 labels".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let mut inputs: Vec<(String, Source)> = self
            .dataset
            .table_files
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("table_file_{i}"), Source::File(p.clone())))
            .collect();
        // The resampled audio gives each clip's duration (and its path, for users).
        inputs.extend(
            self.dataset
                .clips
                .iter()
                .map(|c| (c.id.clone(), Source::node(&RESAMPLE, c.id.clone()))),
        );
        Ok(vec![
            NodeSpec::new(ALL, json!({ "folds": self.dataset.folds }), inputs).partial(),
        ])
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let display = |p: &Path| p.display().to_string().trim_start_matches("./").to_string();
        let (clips, failed) = super::present_and_failed(&self.dataset, node);
        let audio_paths: Vec<PathBuf> = clips
            .iter()
            .map(|c| node.input(&c.id).map(|i| i.path.clone()))
            .collect::<Result<_>>()?;
        let durations: Vec<f64> = audio_paths
            .par_iter()
            .map(|p| audio::wav::read_f32(p).map(|pcm| pcm.duration_seconds()))
            .collect::<Result<_>>()?;
        let mut t = TableBuilder::new()
            .utf8(
                "clip_id",
                &clips.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            )
            .utf8(
                "piece",
                &clips.iter().map(|c| c.piece.as_str()).collect::<Vec<_>>(),
            )
            .utf8(
                "work",
                &clips.iter().map(|c| c.work.as_str()).collect::<Vec<_>>(),
            )
            .utf8(
                "performer",
                &clips
                    .iter()
                    .map(|c| c.performer.as_str())
                    .collect::<Vec<_>>(),
            )
            .bool(
                "is_rendering",
                clips.iter().map(|c| c.is_rendering).collect(),
            )
            .i32_opt(
                "fold",
                clips.iter().map(|c| c.fold.map(|f| f as i32)).collect(),
            )
            .i32_opt(
                "performer_fold",
                clips
                    .iter()
                    .map(|c| c.performer_fold.map(|f| f as i32))
                    .collect(),
            )
            .f64("duration_s", durations);
        if self.dataset.folds.performer_split.is_some() {
            t = t.i32_opt(
                "published_fold",
                clips
                    .iter()
                    .map(|c| c.published_fold.map(|f| f as i32))
                    .collect(),
            );
        }
        t = t
            .utf8(
                "source",
                &clips.iter().map(|c| display(&c.source)).collect::<Vec<_>>(),
            )
            .utf8(
                "audio",
                &audio_paths.iter().map(|p| display(p)).collect::<Vec<_>>(),
            );
        for (d, name) in DIMENSIONS.iter().enumerate() {
            t = t.f64(name, clips.iter().map(|c| c.labels[d]).collect());
        }
        // Each label's standard error, where the dataset gives the raters' spread.
        if let Some(se) = clips.iter().map(|c| c.label_se).collect::<Option<Vec<_>>>() {
            let values = se.iter().flatten().map(|&x| x as f32).collect();
            t = t.f32_vectors("label_se", DIMENSIONS.len(), values)?;
        }
        t = t
            .meta("pipe.dimensions", DIMENSIONS.join(","))
            .meta("pipe.folds", serde_json::to_string(&self.dataset.folds)?);
        if !failed.is_empty() {
            t = t.meta(failed::META_KEY, failed::to_meta(&failed));
        }
        t.write(out).context("writing the manifest")
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        Ok(nodes
            .iter()
            .map(|n| Publish::copy("manifest.parquet", &n.path))
            .collect())
    }
}
