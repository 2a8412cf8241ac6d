//! features: one vector per (feature set, clip). Every stale feature set of a
//! clip that uses the same encoder is computed from ONE forward pass (the
//! engine batches them by encoder and clip), yet each keeps its own key:
//! adding a feature set computes only it, changing a pooling re-pools only it,
//! and changing the weights re-encodes every set of that encoder. Symbolic
//! sets (`midi_stats`, `midi_notes`) read the clip's performance MIDI file
//! instead of its audio: their key is that file's content.
//!
//! With `cache_states` on an encoder, the sets its cache covers are pooled
//! from the f16 hidden-state cache (filled by the pass that first needs it;
//! see [`crate::features::states_cache`]) and keyed apart from encoder-pooled
//! ones; a batch whose sets are all covered and cached runs no encoder.
//!
//! This stage plans and stores: [`Extractor`] computes every vector.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::encoder_passes::{FeatureNode, states_of};
use super::{FEATURES, RESAMPLE};
use crate::audio;
use crate::dag::{Node, NodeSpec, Source, Stage, StageDecl};
use crate::dataset::{Dataset, SourceKind};
use crate::encoder::EncoderConfig;
use crate::features::{self, ClipInput, Extractor, FeatureSet};

pub struct Features {
    dataset: Arc<Dataset>,
    sets: Vec<Arc<FeatureSet>>,
    /// Computes the vectors; its passes and cache hits feed `--dry-run` and the run summary.
    extractor: Arc<Extractor>,
}

impl Features {
    pub fn new(
        dataset: Arc<Dataset>,
        sets: Vec<Arc<FeatureSet>>,
        extractor: Arc<Extractor>,
    ) -> Features {
        Features {
            dataset,
            sets,
            extractor,
        }
    }

    /// One clip's vectors for every node of a batch (the sets of one encoder,
    /// or of one baseline): one pass, pooled for every set.
    fn compute(&self, nodes: &[&Node]) -> Result<Vec<Vec<f32>>> {
        let plans: Vec<&FeatureNode> = nodes.iter().map(|n| n.plan()).collect::<Result<_>>()?;
        let sets: Vec<&FeatureSet> = plans.iter().map(|p| p.set.as_ref()).collect();
        let clip = &plans[0].clip;
        let vectors = if sets[0].is_symbolic() {
            let midi = &nodes[0].input("midi")?.path;
            self.extractor.compute(&sets, ClipInput::Midi(midi), None)
        } else {
            let pcm = audio::wav::read_f32(&nodes[0].input("audio")?.path)?;
            let states_of = states_of(nodes[0]);
            (self.extractor).compute(&sets, ClipInput::Audio(&pcm), Some(&states_of))
        };
        vectors.with_context(|| format!("clip {clip}"))
    }
}

impl Features {
    /// A symbolic set's nodes: one per clip, keyed by its MIDI file's content.
    fn plan_symbolic(&self, set: &Arc<FeatureSet>) -> Result<Vec<NodeSpec>> {
        let params = json!({ "feature_set": weight_free_params(set) });
        self.dataset
            .clips
            .iter()
            .map(|c| {
                if c.source_kind != SourceKind::Midi {
                    bail!(
                        "feature set `{}` (encoder = \"{}\") reads each clip's performance MIDI, \
                         but clip {} is a recording ({})",
                        set.name,
                        set.cfg.encoder,
                        c.id,
                        c.source.display()
                    );
                }
                let inputs = vec![("midi".to_string(), Source::File(c.source.clone()))];
                let node = FeatureNode {
                    set: set.clone(),
                    clip: c.id.clone(),
                };
                let item = format!("{}/{}", set.name, c.id);
                Ok(NodeSpec::new(item, params.clone(), inputs)
                    .per_clip(&c.id)
                    .with_plan(node))
            })
            .collect()
    }
}

/// What identifies a weight-free (baseline or symbolic) set's vectors: which
/// one it is and, for a sequence, its frame cap; never the set's name.
fn weight_free_params(set: &FeatureSet) -> serde_json::Value {
    let mut params = json!({ "spec": null, "encoder": set.cfg.encoder });
    if set.is_sequence() {
        params["max_frames"] = json!(set.cfg.max_frames);
    }
    params
}

impl Stage for Features {
    fn decl(&self) -> &'static StageDecl {
        &FEATURES
    }
    fn describe(&self) -> String {
        format!(
            "encode each clip once per encoder, pool every feature set ({} sets)",
            self.sets.len()
        )
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let mut out = Vec::new();
        for set in &self.sets {
            if set.is_symbolic() {
                out.extend(self.plan_symbolic(set)?);
                continue;
            }
            let enc = self.extractor.config(&set.cfg.encoder);
            // What changes the vector's bytes, never a name: the layers and
            // pooling, and the encoder's settings (its weights are inputs) or
            // which weight-free baseline it is (and a sequence source's frame
            // cap, its only setting). Renaming a set or an encoder finds its
            // vectors under the same keys.
            let mut params = match set.spec() {
                Some(spec) => json!({
                    "feature_set": { "spec": spec },
                    "encoder": enc.map(EncoderConfig::output_params),
                }),
                None => json!({ "feature_set": weight_free_params(set), "encoder": null }),
            };
            // Pooled from f16 states: never the same artifact as an encoder-pooled one.
            let covered = set
                .spec()
                .is_some_and(|spec| self.extractor.covers(&set.cfg.encoder, spec));
            if covered {
                params["states"] = json!("f16 cache");
            }
            for c in &self.dataset.clips {
                let mut inputs = vec![("audio".to_string(), Source::node(&RESAMPLE, &c.id))];
                if let Some(dir) = enc.and_then(|e| e.weights.as_ref()) {
                    inputs.push(("config".into(), Source::File(dir.join("config.json"))));
                    inputs.push((
                        "weights".into(),
                        Source::File(dir.join("model.safetensors")),
                    ));
                }
                let item = format!("{}/{}", set.name, c.id);
                let node = FeatureNode {
                    set: set.clone(),
                    clip: c.id.clone(),
                };
                out.push(
                    NodeSpec::new(item, params.clone(), inputs)
                        .per_clip(&c.id)
                        .with_plan(node),
                );
            }
        }
        Ok(out)
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let v = self.compute(&[node])?.pop().expect("one vector per node");
        features::write_vector(out, &v)
    }
    /// Every set of one encoder (or baseline) for one clip: one pass.
    fn batch_key(&self, node: &Node) -> Option<String> {
        let n: &FeatureNode = node.plan().ok()?;
        Some(format!("{}/{}", n.set.cfg.encoder, n.clip))
    }
    /// A GPU encoder takes one clip at a time, so its batches are
    /// exclusive: the engine keeps the other workers on other stages' clips.
    fn exclusive(&self, node: &Node) -> Option<String> {
        let n: &FeatureNode = node.plan().ok()?;
        let name = &n.set.cfg.encoder;
        (self.extractor.runs_on_gpu(name)).then(|| format!("gpu encoder {name}"))
    }
    fn run_batch(&self, nodes: &[&Node], outs: &[PathBuf]) -> Vec<Result<()>> {
        match self.compute(nodes) {
            Ok(vectors) => vectors
                .iter()
                .zip(outs)
                .map(|(v, o)| features::write_vector(o, v))
                .collect(),
            Err(e) => {
                let msg = format!("{e:#}");
                nodes.iter().map(|_| Err(anyhow!("{msg}"))).collect()
            }
        }
    }
}
