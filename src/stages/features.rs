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

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::encoder_passes::{EncoderPasses, FeatureNode};
use super::{FEATURES, RESAMPLE};
use crate::audio;
use crate::dag::{Node, NodeSpec, Source, Stage, StageDecl};
use crate::dataset::{Dataset, SourceKind};
use crate::encoder::{EncoderConfig, EncoderRuntime, runtime};
use crate::features::states_cache::pool_cached;
use crate::features::{self, FeatureKind, FeatureSet, FeatureSetSpec};

pub struct Features {
    dataset: Arc<Dataset>,
    sets: Vec<Arc<FeatureSet>>,
    encoders: BTreeMap<String, EncoderConfig>,
    /// Loaded on first use, per encoder, shared by the worker threads.
    loaded: BTreeMap<String, OnceLock<std::result::Result<Arc<EncoderRuntime>, String>>>,
    /// States caches and pass times, shared with `--dry-run` and the run summary.
    passes: Arc<EncoderPasses>,
}

impl Features {
    pub fn new(
        dataset: Arc<Dataset>,
        sets: Vec<Arc<FeatureSet>>,
        encoders: BTreeMap<String, EncoderConfig>,
        passes: Arc<EncoderPasses>,
    ) -> Features {
        let loaded = encoders
            .keys()
            .map(|k| (k.clone(), OnceLock::new()))
            .collect();
        Features {
            dataset,
            sets,
            encoders,
            loaded,
            passes,
        }
    }

    fn encoder(&self, name: &str) -> Result<Arc<EncoderRuntime>> {
        let cell = self
            .loaded
            .get(name)
            .ok_or_else(|| anyhow!("no encoder `{name}`"))?;
        cell.get_or_init(|| {
            let loaded = EncoderRuntime::load(name, &self.encoders[name])
                .with_context(|| format!("loading encoder `{name}`"));
            if let Ok(rt) = &loaded {
                eprintln!("encoder `{name}` runs on {}", rt.backend_name());
            }
            loaded.map(Arc::new).map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!("{e}"))
    }

    /// One clip's vectors for every node of a batch (the sets of one encoder,
    /// or of one baseline): one pass, pooled for every set.
    fn compute(&self, nodes: &[&Node]) -> Result<Vec<Vec<f32>>> {
        let plans: Vec<&FeatureNode> = nodes.iter().map(|n| n.plan()).collect::<Result<_>>()?;
        if plans.iter().any(|p| p.set.is_symbolic()) {
            return nodes
                .iter()
                .zip(&plans)
                .map(|(n, p)| match &p.set.kind {
                    FeatureKind::Symbolic(s) => {
                        s.compute(&n.input("midi")?.path, p.set.cfg.max_frames)
                    }
                    _ => bail!("feature set `{}` is batched with symbolic sets", p.set.name),
                })
                .collect();
        }
        let pcm = audio::wav::read_f32(&nodes[0].input("audio")?.path)?;
        let first = &plans[0].set;
        let specs: Vec<FeatureSetSpec> = match &first.kind {
            FeatureKind::Baseline(b) => {
                let f = |p: &&FeatureNode| b.compute(&pcm, p.set.cfg.max_frames);
                return plans.iter().map(f).collect();
            }
            FeatureKind::Symbolic(_) => unreachable!("handled above"),
            FeatureKind::Encoded(_) => plans
                .iter()
                .map(|p| {
                    p.set.spec().cloned().ok_or_else(|| {
                        anyhow!("feature set `{}` is batched with encoded sets", p.set.name)
                    })
                })
                .collect::<Result<_>>()?,
        };
        let name = &first.cfg.encoder;
        let clip = &plans[0].clip;
        let vectors = self
            .encode(nodes[0], &plans, name, &pcm, &specs)
            .with_context(|| format!("clip {clip}"))?;
        // The pooling checks the states; this catches an f64 statistic
        // beyond f32's range.
        for (v, p) in vectors.iter().zip(&plans) {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                bail!(
                    "clip {clip}: encoder `{name}`: feature set `{}` value {i} is {} (out of f32 range)",
                    p.set.name,
                    v[i]
                );
            }
        }
        Ok(vectors)
    }

    /// One encoder pass over a clip (or none, when the states cache covers
    /// every set of the batch), pooled for every spec in order.
    fn encode(
        &self,
        node: &Node,
        plans: &[&FeatureNode],
        name: &str,
        pcm: &audio::Pcm,
        specs: &[FeatureSetSpec],
    ) -> Result<Vec<Vec<f32>>> {
        let Some((cache, file)) = self.passes.cache_file(node)? else {
            let rt = self.encoder(name)?;
            let secs = pcm.duration_seconds();
            return self.passes.timed_pass(name, &rt, secs, || {
                features::encode_and_pool(&rt, name, pcm, specs)
            });
        };
        let covered: Vec<bool> = plans.iter().map(|p| p.covered).collect();
        let cached = if file.is_file() {
            match cache.read(&file) {
                Ok(states) => Some(states),
                Err(e) => {
                    eprintln!("warning: states cache: {e:#}; encoding the clip again");
                    None
                }
            }
        } else {
            None
        };
        let pick = |want: bool| -> Vec<FeatureSetSpec> {
            (specs.iter().zip(&covered))
                .filter(|(_, c)| **c == want)
                .map(|(s, _)| s.clone())
                .collect()
        };
        let (from_cache, from_pass) = (pick(true), pick(false));
        if from_pass.is_empty()
            && let Some(states) = &cached
        {
            return self.passes.timed_hit(name, || pool_cached(specs, states));
        }
        // One pass: the sets outside the cache pool on the device; the cached
        // states come back whole if the cache lacks this clip.
        let keep = if cached.is_some() {
            &[][..]
        } else {
            cache.indices()
        };
        let rt = self.encoder(name)?;
        let (pooled, kept) = self
            .passes
            .timed_pass(name, &rt, pcm.duration_seconds(), || {
                features::encode_pool_keep(&rt, name, pcm, &from_pass, keep)
            })?;
        let states = match cached {
            Some(states) => states,
            None => cache.write(&file, &kept)?,
        };
        let mut cached_vectors = pool_cached(&from_cache, &states)?.into_iter();
        let mut pass_vectors = pooled.into_iter();
        covered
            .iter()
            .map(|&c| {
                let next = if c {
                    cached_vectors.next()
                } else {
                    pass_vectors.next()
                };
                next.ok_or_else(|| anyhow!("encoder `{name}`: a feature set got no vector"))
            })
            .collect()
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
                    covered: false,
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
            let enc = self.encoders.get(&set.cfg.encoder);
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
                .is_some_and(|spec| self.passes.covers(&set.cfg.encoder, spec));
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
                    covered,
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
    /// A GPU encoder takes one clip at a time (see [`EncoderRuntime::run`]),
    /// so its batches are exclusive: the engine keeps the other workers on
    /// other stages' clips.
    fn exclusive(&self, node: &Node) -> Option<String> {
        let n: &FeatureNode = node.plan().ok()?;
        let name = &n.set.cfg.encoder;
        runtime::runs_on_gpu(self.encoders.get(name)?).then(|| format!("gpu encoder {name}"))
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
