//! features: one vector per (feature set, clip). Every stale feature set of a
//! clip that uses the same encoder is computed from ONE forward pass (the
//! engine batches them by `encoder/clip`), yet each keeps its own key: adding
//! a feature set computes only it, changing a pooling re-pools only it, and
//! changing the weights re-encodes every set of that encoder.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::audio;
use crate::config::{BASELINES, Device, EncoderConfig, FeatureSetConfig, MEL_FRAMES};
use crate::cpu::CpuBackend;
use crate::dag::{Node, NodeSpec, Source, Stage, store};
use crate::dataset::Dataset;
use crate::encoder::{ArchConfig, Backend, Encoder, EncoderOutput};
use crate::features::{self, FeatureSetSpec, Pooling};
use crate::gpu::GpuBackend;
use crate::table::TableBuilder;

/// A feature set ready to plan: its config and parsed spec (`None` for a
/// weight-free baseline, which has no layers to select).
pub struct FeatureSet {
    pub name: String,
    pub cfg: FeatureSetConfig,
    pub spec: Option<FeatureSetSpec>,
}

impl FeatureSet {
    /// Checks a `[features.NAME]` entry and parses its layers and pooling.
    pub fn from_config(name: &str, cfg: &FeatureSetConfig) -> Result<FeatureSet> {
        let spec = if BASELINES.contains(&cfg.encoder.as_str()) {
            // mel_frames is a sequence source: `pooling = "frames"` may say so.
            let frames_ok = cfg.encoder == MEL_FRAMES && cfg.pooling.as_deref() == Some("frames");
            if cfg.layers.is_some() || (cfg.pooling.is_some() && !frames_ok) {
                bail!(
                    "features.{name}: layers and pooling do not apply to the weight-free baseline `{}`",
                    cfg.encoder
                );
            }
            None
        } else {
            let layers = cfg.layers.as_deref().unwrap_or("7-12");
            let pooling = cfg.pooling.as_deref().unwrap_or("mean");
            let spec: FeatureSetSpec =
                serde_json::from_value(json!({ "layers": layers, "pooling": pooling, "max_frames": cfg.max_frames }))
                    .map_err(|e| anyhow!("features.{name}: {e} (layers like \"7-12\", \"6,9,12\", \"12\", \"all\"; pooling one of mean, max, mean_std, stats4, multiscale, frames)"))?;
            Some(spec)
        };
        Ok(FeatureSet {
            name: name.to_string(),
            cfg: cfg.clone(),
            spec,
        })
    }
}

/// A loaded encoder on the backend its config chose.
#[allow(clippy::large_enum_variant)] // one per encoder, behind an Arc
enum Model {
    Cpu {
        backend: CpuBackend,
        encoder: Encoder<CpuBackend>,
    },
    Gpu {
        backend: GpuBackend,
        encoder: Encoder<GpuBackend>,
        /// One clip at a time on the device: the GPU is the bottleneck, and
        /// a clip's ops then stay together in the backend's command batch.
        one_at_a_time: Mutex<()>,
    },
}

impl Model {
    fn config(&self) -> ArchConfig {
        match self {
            Model::Cpu { encoder, .. } => encoder.config(),
            Model::Gpu { encoder, .. } => encoder.config(),
        }
    }

    /// One forward pass, pooled for every spec. On the GPU the pooling runs
    /// there too and only statistics come back; on the CPU the host pools the
    /// hidden states with [`features::pool_many`].
    fn encode_and_pool(&self, wave: &[f32], specs: &[FeatureSetSpec]) -> Result<Vec<Vec<f32>>> {
        match self {
            Model::Cpu { backend, encoder } => {
                let n_states = encoder.config().num_hidden_states();
                let mut want = BTreeSet::new();
                for spec in specs {
                    want.extend(spec.layers.indices(n_states)?);
                }
                let want: Vec<usize> = want.into_iter().collect();
                let out: EncoderOutput = encoder.encode(backend, wave, &want)?;
                let hs = features::HiddenStates::new(out.frames, out.hidden, &out.states)?;
                features::pool_many(specs, &hs)
            }
            Model::Gpu {
                backend,
                encoder,
                one_at_a_time,
            } => {
                // MuQ's mel front end runs before this clip's turn on the device.
                let input = encoder.prepare(wave)?;
                let _turn = one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
                features::device::encode_and_pool_prepared(backend, encoder, &input, specs)
            }
        }
    }
}

pub struct Features {
    dataset: Arc<Dataset>,
    sets: Vec<FeatureSet>,
    encoders: BTreeMap<String, EncoderConfig>,
    /// Loaded on first use, per encoder, shared by the worker threads.
    models: BTreeMap<String, OnceLock<std::result::Result<Arc<Model>, String>>>,
}

impl Features {
    pub fn new(
        dataset: Arc<Dataset>,
        sets: Vec<FeatureSet>,
        encoders: BTreeMap<String, EncoderConfig>,
    ) -> Features {
        let models = encoders
            .keys()
            .map(|k| (k.clone(), OnceLock::new()))
            .collect();
        Features {
            dataset,
            sets,
            encoders,
            models,
        }
    }

    fn set(&self, name: &str) -> Result<&FeatureSet> {
        // Names come from this stage's own params, so a miss is a bug, but say which.
        self.sets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow!("no feature set `{name}`"))
    }

    fn model(&self, encoder: &str) -> Result<Arc<Model>> {
        let cell = self
            .models
            .get(encoder)
            .ok_or_else(|| anyhow!("no encoder `{encoder}`"))?;
        cell.get_or_init(|| {
            load_model(encoder, &self.encoders[encoder])
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!("{e}"))
    }

    /// Encodes one clip once and pools it for every node of the batch.
    fn compute(&self, nodes: &[&Node]) -> Result<Vec<Vec<f32>>> {
        let sets: Vec<&FeatureSet> = nodes
            .iter()
            .map(|n| self.set(n.params["feature_set"]["name"].as_str().unwrap_or_default()))
            .collect::<Result<_>>()?;
        let encoder = sets[0].cfg.encoder.as_str();
        let pcm = audio::wav::read_f32(&nodes[0].input("audio")?.path)?;
        match encoder {
            "raw_stats" => {
                return sets
                    .iter()
                    .map(|_| features::baseline::audio_stats(&pcm))
                    .collect();
            }
            "logmel_stats" => {
                return sets
                    .iter()
                    .map(|_| features::mel::logmel_stats(&pcm))
                    .collect();
            }
            MEL_FRAMES => {
                return sets
                    .iter()
                    .map(|s| features::mel::mel_frames(&pcm, s.cfg.max_frames))
                    .collect();
            }
            _ => {}
        }
        let model = self.model(encoder)?;
        let rate = model.config().sample_rate();
        if pcm.sample_rate != rate {
            bail!(
                "clip audio is at {} Hz but encoder `{encoder}` takes {rate} Hz: set [resample] sample_rate = {rate}",
                pcm.sample_rate
            );
        }
        let specs: Vec<FeatureSetSpec> = sets
            .iter()
            .map(|s| {
                s.spec
                    .clone()
                    .ok_or_else(|| anyhow!("feature set `{}` has no layers/pooling", s.name))
            })
            .collect::<Result<_>>()?;
        model.encode_and_pool(&pcm.samples, &specs)
    }
}

fn load_model(name: &str, cfg: &EncoderConfig) -> Result<Model> {
    let (mut arch, weights) = match (&cfg.weights, &cfg.random) {
        (Some(dir), _) => {
            let arch = arch_config(name, cfg)?;
            let w = arch.load_weights(dir)?;
            (arch, w)
        }
        (None, Some(_)) => {
            let arch = arch_config(name, cfg)?;
            let w = arch.random_weights(cfg.seed);
            (arch, w)
        }
        (None, None) => bail!("encoder `{name}` has neither weights nor random"),
    };
    if let ArchConfig::Mert(m) = &mut arch {
        m.do_normalize = cfg.normalize;
    }
    arch.set_max_frames(cfg.window_frames());
    let gpu = match cfg.device {
        Device::Cpu => None,
        Device::Gpu => Some(GpuBackend::new().map_err(|e| {
            anyhow!("encoder `{name}` has device = \"gpu\" but no GPU adapter opened: {e}")
        })?),
        Device::Auto => hardware_gpu(),
    };
    let prepare = || format!("preparing encoder `{name}`");
    let model = match gpu {
        Some(backend) => {
            let encoder = Encoder::new(&backend, arch, &weights).with_context(prepare)?;
            Model::Gpu {
                backend,
                encoder,
                one_at_a_time: Mutex::new(()),
            }
        }
        None => {
            let backend = CpuBackend::new();
            let encoder = Encoder::new(&backend, arch, &weights).with_context(prepare)?;
            Model::Cpu { backend, encoder }
        }
    };
    let on = match &model {
        Model::Cpu { backend, .. } => backend.name(),
        Model::Gpu { backend, .. } => backend.name(),
    };
    eprintln!("encoder `{name}` runs on {on}");
    Ok(model)
}

/// The GPU backend on a hardware adapter, if there is one (`device = "auto"`
/// never picks a software rasteriser such as lavapipe: slower than the CPU).
fn hardware_gpu() -> Option<GpuBackend> {
    GpuBackend::new().ok().filter(|g| !g.gpu().info().is_cpu())
}

/// The architecture an encoder entry describes: its weights folder's
/// `config.json` (which must be of the `arch` named), or the `random` preset.
pub(crate) fn arch_config(name: &str, cfg: &EncoderConfig) -> Result<ArchConfig> {
    match (&cfg.weights, &cfg.random) {
        (Some(dir), _) => {
            let arch = ArchConfig::from_dir(dir)?;
            if arch.arch() != cfg.arch {
                bail!(
                    "encoder `{name}`: arch = {:?} but {} is a {} checkpoint",
                    cfg.arch,
                    dir.join("config.json").display(),
                    arch.arch()
                );
            }
            Ok(arch)
        }
        (None, Some(preset)) => {
            ArchConfig::preset(&cfg.arch, preset).with_context(|| format!("encoder `{name}`"))
        }
        (None, None) => bail!("encoder `{name}` has neither weights nor random"),
    }
}

/// The params that determine an encoder's output (the weights' content is an input).
fn encoder_params(cfg: &EncoderConfig) -> serde_json::Value {
    json!({
        "arch": cfg.arch,
        "random": cfg.random,
        "seed": if cfg.random.is_some() { Some(cfg.seed) } else { None },
        "normalize": cfg.normalize,
        "window_frames": cfg.window_frames(),
    })
}

impl Stage for Features {
    fn name(&self) -> &'static str {
        "features"
    }
    fn version(&self) -> u32 {
        1
    }
    fn ext(&self) -> &'static str {
        "f32"
    }
    fn describe(&self) -> String {
        format!(
            "encode each clip once per encoder, pool every feature set ({} sets)",
            self.sets.len()
        )
    }
    fn upstream(&self) -> Vec<&'static str> {
        vec!["resample"]
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let mut out = Vec::new();
        for set in &self.sets {
            let enc = self.encoders.get(&set.cfg.encoder);
            let mut params = json!({
                "feature_set": { "name": set.name, "spec": set.spec, "encoder": set.cfg.encoder },
                "encoder": enc.map(encoder_params),
            });
            if set.cfg.encoder == MEL_FRAMES {
                // The frame cap is the mel source's only setting (no spec).
                params["feature_set"]["max_frames"] = json!(set.cfg.max_frames);
            }
            for c in &self.dataset.clips {
                let mut inputs = vec![(
                    "audio".to_string(),
                    Source::Node {
                        stage: "resample",
                        item: c.id.clone(),
                    },
                )];
                if let Some(dir) = enc.and_then(|e| e.weights.as_ref()) {
                    inputs.push(("config".into(), Source::File(dir.join("config.json"))));
                    inputs.push((
                        "weights".into(),
                        Source::File(dir.join("model.safetensors")),
                    ));
                }
                out.push(NodeSpec {
                    item: format!("{}/{}", set.name, c.id),
                    params: params.clone(),
                    inputs,
                });
            }
        }
        Ok(out)
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let v = self.compute(&[node])?.pop().expect("one vector per node");
        write_vector(out, &v)
    }
    fn batch_key(&self, node: &Node) -> Option<String> {
        let clip = node.item.split_once('/').map(|(_, c)| c)?;
        Some(format!(
            "{}/{clip}",
            node.params["feature_set"]["encoder"].as_str()?
        ))
    }
    /// A GPU encoder takes one clip at a time (see `Model::Gpu`), so its batches
    /// are exclusive: the engine keeps the other workers on other stages' clips.
    fn exclusive(&self, node: &Node) -> Option<String> {
        let name = node.params["feature_set"]["encoder"].as_str()?;
        let on_gpu = match self.encoders.get(name)?.device {
            Device::Cpu => false,
            Device::Gpu => true,
            Device::Auto => hardware_gpu().is_some(),
        };
        on_gpu.then(|| format!("gpu encoder {name}"))
    }
    fn run_batch(&self, nodes: &[&Node], outs: &[PathBuf]) -> Vec<Result<()>> {
        match self.compute(nodes) {
            Ok(vectors) => vectors
                .iter()
                .zip(outs)
                .map(|(v, o)| write_vector(o, v))
                .collect(),
            Err(e) => {
                let msg = format!("{e:#}");
                nodes.iter().map(|_| Err(anyhow!("{msg}"))).collect()
            }
        }
    }
}

/// A feature vector artifact: raw little-endian f32.
pub fn write_vector(path: &Path, v: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub fn read_vector(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() % 4 != 0 {
        bail!(
            "{} is not a f32 vector ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Input name of the weights file in a table node (clip ids never look like this).
const WEIGHTS_INPUT: &str = "__weights";

/// feature_tables: one Parquet table per feature set,
/// `data/out/features/<set>.parquet` (clip_id, fold, features: FixedSizeList<Float32, D>).
pub struct FeatureTables {
    dataset: Arc<Dataset>,
    sets: Vec<(String, FeatureSetConfig, serde_json::Value)>,
    encoders: BTreeMap<String, EncoderConfig>,
}

impl FeatureTables {
    pub fn new(
        dataset: Arc<Dataset>,
        sets: &[FeatureSet],
        encoders: BTreeMap<String, EncoderConfig>,
    ) -> Result<FeatureTables> {
        let sets = sets
            .iter()
            .map(|s| {
                Ok((
                    s.name.clone(),
                    s.cfg.clone(),
                    serde_json::to_value(&s.spec)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(FeatureTables {
            dataset,
            sets,
            encoders,
        })
    }
}

impl Stage for FeatureTables {
    fn name(&self) -> &'static str {
        "feature_tables"
    }
    fn version(&self) -> u32 {
        1
    }
    fn ext(&self) -> &'static str {
        "parquet"
    }
    fn describe(&self) -> String {
        "one Parquet table per feature set: clip_id, fold, features (FixedSizeList<Float32, D>)"
            .into()
    }
    fn upstream(&self) -> Vec<&'static str> {
        vec!["features"]
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .sets
            .iter()
            .map(|(name, cfg, spec)| NodeSpec {
                item: name.clone(),
                params: json!({ "spec": spec, "encoder": cfg.encoder, "description": cfg.description, "folds": self.dataset.folds }),
                inputs: self
                    .encoders
                    .get(&cfg.encoder)
                    .and_then(|e| e.weights.as_ref())
                    .map(|dir| (WEIGHTS_INPUT.to_string(), Source::File(dir.join("model.safetensors"))))
                    .into_iter()
                    .chain(
                        self.dataset
                            .clips
                            .iter()
                            .map(|c| (c.id.clone(), Source::Node { stage: "features", item: format!("{name}/{}", c.id) })),
                    )
                    .collect(),
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let (name, cfg, spec) = self
            .sets
            .iter()
            .find(|s| s.0 == node.item)
            .ok_or_else(|| anyhow!("no feature set `{}`", node.item))?;
        let clips = &self.dataset.clips;
        let vectors: Vec<Vec<f32>> = clips
            .iter()
            .map(|c| read_vector(&node.input(&c.id)?.path))
            .collect::<Result<_>>()?;
        let weights = match (node.input(WEIGHTS_INPUT), self.encoders.get(&cfg.encoder)) {
            (Ok(w), Some(enc)) => format!("blake3:{} ({})", w.key, describe_weights(enc)),
            (_, Some(enc)) => describe_weights(enc),
            (_, None) => "none (weight-free baseline)".to_string(),
        };
        let table = TableBuilder::new()
            .utf8(
                "clip_id",
                &clips.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            )
            .i32_opt(
                "fold",
                clips.iter().map(|c| c.fold.map(|f| f as i32)).collect(),
            );
        let frames_spec: Option<FeatureSetSpec> =
            serde_json::from_value::<Option<FeatureSetSpec>>(spec.clone())?
                .filter(|s| s.pooling == Pooling::Frames);
        let (table, dim) = match frames_spec {
            None if cfg.encoder == MEL_FRAMES => {
                let dim = features::mel::study::N_MELS;
                let n_frames = vectors
                    .iter()
                    .map(|v| Some((v.len() / dim) as i32))
                    .collect();
                let table = table
                    .i32_opt("n_frames", n_frames)
                    .f32_sequences("frames", dim, &vectors)
                    .with_context(|| format!("feature set `{name}`"))?;
                (table, dim)
            }
            Some(fs) => {
                // Frame sequences: the width per frame comes from the encoder's shape.
                let enc = self
                    .encoders
                    .get(&cfg.encoder)
                    .ok_or_else(|| anyhow!("feature set `{name}`: no encoder `{}`", cfg.encoder))?;
                let arch = arch_config(&cfg.encoder, enc)?;
                let dim = fs
                    .layers
                    .output_dim(arch.hidden_size(), arch.num_hidden_states());
                let n_frames = vectors
                    .iter()
                    .map(|v| Some((v.len() / dim.max(1)) as i32))
                    .collect();
                let table = table
                    .i32_opt("n_frames", n_frames)
                    .f32_sequences("frames", dim, &vectors)
                    .with_context(|| format!("feature set `{name}`"))?;
                (table, dim)
            }
            None => {
                let dim = vectors.first().map_or(0, Vec::len);
                if let Some((c, v)) = clips.iter().zip(&vectors).find(|(_, v)| v.len() != dim) {
                    bail!(
                        "feature set `{name}`: clip {} has {} values, others {dim}",
                        c.id,
                        v.len()
                    );
                }
                let table = table.f32_vectors("features", dim, vectors.concat())?;
                (table, dim)
            }
        };
        table
            .meta("pipe.feature_set", name.as_str())
            .meta("pipe.encoder", cfg.encoder.as_str())
            .meta("pipe.weights", weights)
            .meta("pipe.spec", spec.to_string())
            .meta("pipe.dim", dim.to_string())
            .meta("pipe.description", cfg.description.as_str())
            .write(out)
    }
    fn publish(&self, nodes: &[&Node], out_dir: &Path) -> Result<Vec<PathBuf>> {
        nodes
            .iter()
            .map(|n| {
                let dest = out_dir.join("features").join(format!("{}.parquet", n.item));
                store::copy_atomic(&n.path, &dest)?;
                Ok(dest)
            })
            .collect()
    }
}

fn describe_weights(cfg: &EncoderConfig) -> String {
    match (&cfg.weights, &cfg.random) {
        (Some(dir), _) => format!("pre-trained weights from {}", dir.display()),
        (None, Some(preset)) => format!(
            "CONTROL: seeded random init ({preset}, seed {}), not pre-trained",
            cfg.seed
        ),
        (None, None) => String::new(),
    }
}
