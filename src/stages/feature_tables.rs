//! feature_tables: one Parquet table per feature set,
//! `data/out/features/<set>.parquet` (clip_id, fold, features:
//! FixedSizeList<Float32, D>; or n_frames + frames for `pooling = "frames"`).
//!
//! The artifact holds the data only (and the clips that failed, when some
//! did): it is what training reads and is keyed by, so it carries no name or
//! description. The published copy gets those in its metadata; renaming a
//! set or editing its description re-renders that copy and nothing else.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::{FEATURE_TABLES, FEATURES};
use crate::dag::{Node, NodeSpec, Publish, Source, Stage, StageDecl};
use crate::dataset::{Dataset, failed};
use crate::encoder::EncoderConfig;
use crate::encoder::runtime;
use crate::features::{FeatureSet, read_vector};
use crate::table::{self, TableBuilder};

/// Input name of the weights file in a table node (clip ids never look like this).
const WEIGHTS_INPUT: &str = "__weights";

pub struct FeatureTables {
    dataset: Arc<Dataset>,
    sets: Vec<Arc<FeatureSet>>,
    encoders: BTreeMap<String, EncoderConfig>,
}

impl FeatureTables {
    pub fn new(
        dataset: Arc<Dataset>,
        sets: Vec<Arc<FeatureSet>>,
        encoders: BTreeMap<String, EncoderConfig>,
    ) -> FeatureTables {
        FeatureTables {
            dataset,
            sets,
            encoders,
        }
    }

    /// Width of one frame of a `frames` set (a sequence source's, or from the encoder's shape).
    fn frame_dim(&self, set: &FeatureSet) -> Result<usize> {
        if let Some(dim) = set.fixed_frame_dim() {
            return Ok(dim);
        }
        let name = &set.cfg.encoder;
        let enc = self
            .encoders
            .get(name)
            .ok_or_else(|| anyhow!("feature set `{}`: no encoder `{name}`", set.name))?;
        let arch = runtime::arch_config(name, enc)?;
        let spec = set.spec().expect("frames sets are encoded");
        Ok(spec
            .layers
            .output_dim(arch.hidden_size(), arch.num_hidden_states()))
    }
}

impl Stage for FeatureTables {
    fn decl(&self) -> &'static StageDecl {
        &FEATURE_TABLES
    }
    fn describe(&self) -> String {
        "one Parquet table per feature set: clip_id, fold, features (FixedSizeList<Float32, D>)"
            .into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        self.sets
            .iter()
            .map(|set| {
                let cfg = &set.cfg;
                // What the table's bytes depend on; its name and description
                // go to the published copy only.
                let params = json!({
                    "spec": serde_json::to_value(set.spec())?,
                    "folds": self.dataset.folds,
                });
                let weights = self
                    .encoders
                    .get(&cfg.encoder)
                    .and_then(|e| e.weights.as_ref())
                    .map(|dir| {
                        let file = Source::File(dir.join("model.safetensors"));
                        (WEIGHTS_INPUT.to_string(), file)
                    });
                let clips = self.dataset.clips.iter().map(|c| {
                    let item = format!("{}/{}", set.name, c.id);
                    (c.id.clone(), Source::node(&FEATURES, item))
                });
                let inputs = weights.into_iter().chain(clips).collect();
                Ok(NodeSpec::new(set.name.clone(), params, inputs)
                    .with_plan(set.clone())
                    .partial())
            })
            .collect()
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let set: &Arc<FeatureSet> = node.plan()?;
        let name = &set.name;
        // The clips whose vector exists; the others are listed as failed.
        let (clips, failed) = super::present_and_failed(&self.dataset, node);
        if clips.is_empty() {
            let why = node.missing.first().map_or(String::new(), |m| {
                format!(" (e.g. {} at {}: {})", m.name, m.stage, m.reason)
            });
            bail!(
                "feature set `{name}`: no clip has a vector, all {} failed{why}",
                node.missing.len()
            );
        }
        let vectors: Vec<Vec<f32>> = clips
            .iter()
            .map(|c| read_vector(&node.input(&c.id)?.path))
            .collect::<Result<_>>()?;
        let table = TableBuilder::new()
            .utf8(
                "clip_id",
                &clips.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            )
            .i32_opt(
                "fold",
                clips.iter().map(|c| c.fold.map(|f| f as i32)).collect(),
            );
        let frames = set.is_sequence();
        let (table, dim) = if frames {
            let dim = self.frame_dim(set)?;
            let n_frames = vectors
                .iter()
                .map(|v| Some((v.len() / dim.max(1)) as i32))
                .collect();
            let table = table
                .i32_opt("n_frames", n_frames)
                .f32_sequences("frames", dim, &vectors)
                .with_context(|| format!("feature set `{name}`"))?;
            (table, dim)
        } else {
            let dim = vectors.first().map_or(0, Vec::len);
            if let Some((c, v)) = clips.iter().zip(&vectors).find(|(_, v)| v.len() != dim) {
                bail!(
                    "feature set `{name}`: clip {} has {} values, others {dim}",
                    c.id,
                    v.len()
                );
            }
            (table.f32_vectors("features", dim, vectors.concat())?, dim)
        };
        let mut table = table
            .meta("pipe.spec", serde_json::to_value(set.spec())?.to_string())
            .meta("pipe.dim", dim.to_string());
        if !failed.is_empty() {
            table = table.meta(failed::META_KEY, failed::to_meta(&failed));
        }
        table.write(out)
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        nodes
            .iter()
            .map(|n| {
                let set: &Arc<FeatureSet> = n.plan()?;
                let cfg = &set.cfg;
                let weights = match (n.input(WEIGHTS_INPUT), self.encoders.get(&cfg.encoder)) {
                    (Ok(w), Some(enc)) => {
                        format!("blake3:{} ({})", w.hash, runtime::describe_weights(enc))
                    }
                    (_, Some(enc)) => runtime::describe_weights(enc),
                    (_, None) if set.is_symbolic() => {
                        "none (symbolic: the clip's performance MIDI)".to_string()
                    }
                    (_, None) => "none (weight-free baseline)".to_string(),
                };
                let meta = vec![
                    ("pipe.feature_set", set.name.clone()),
                    ("pipe.encoder", cfg.encoder.clone()),
                    ("pipe.weights", weights),
                    ("pipe.description", cfg.description.clone()),
                ];
                let extra = serde_json::to_string(&meta)?;
                Ok(Publish::rendered(
                    format!("features/{}.parquet", n.item),
                    &n.path,
                    extra,
                    move |src, dest| table::copy_with_metadata(src, dest, &meta),
                ))
            })
            .collect()
    }
}
