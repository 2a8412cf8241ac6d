//! `pipe encode`: run an encoder (MERT-v1 or MuQ) on one waveform and write every hidden state to safetensors.

use super::checkpoint::WeightStore;
use super::model::{ArchConfig, Encoder};
use super::vars::{Checkpoint, Seeded};
use crate::backend::Backend;
use crate::cpu::CpuBackend;
use anyhow::{Context, Result, bail, ensure};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `pipe encode`.
#[derive(clap::Args, Debug, Clone)]
pub struct EncodeArgs {
    /// Model directory with `config.json` and `model.safetensors`: MERT-v1 (HF
    /// HuBERT config, optionally `preprocessor_config.json`) or MuQ (MuQConfig with
    /// `w2v2_config`), told apart by the config. Omit it and pass --random to use
    /// seeded random weights.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Use seeded random weights instead of --model: MERT `95m`, `330m`, `control`, `control_330m`;
    /// MuQ (with --arch muq) `large`, `control`.
    #[arg(long, conflicts_with = "model")]
    pub random: Option<String>,
    /// Architecture of --random: `mert` or `muq`.
    #[arg(long, default_value = "mert", requires = "random")]
    pub arch: String,
    /// Seed for --random.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The input: an audio file (WAV/FLAC/MP3/OGG: decoded, downmixed to mono and
    /// resampled to the model's rate), or with --input-tensor a safetensors file holding
    /// a mono float32 (or f16/bf16) waveform already at the model's rate, shape [N] or [1, N].
    #[arg(long)]
    pub input: PathBuf,
    /// Name of the waveform tensor inside a safetensors --input.
    #[arg(long)]
    pub input_tensor: Option<String>,
    /// Output safetensors file: `hidden_states.0` … `hidden_states.L`, each [frames, hidden].
    #[arg(long, short)]
    pub output: PathBuf,
    /// Most frames per forward pass (longer clips are split into balanced windows).
    #[arg(long)]
    pub max_frames: Option<usize>,
    /// Skip the HF-processor waveform normalisation (MERT only; MERT was pre-trained without it).
    #[arg(long)]
    pub no_normalize: bool,
    /// Run the plain reference CPU ops (the test oracle) instead of the gemm fast path.
    #[arg(long)]
    pub reference_ops: bool,
    /// Backend: `auto` (as in the pipeline: a hardware GPU if there is one, never a
    /// software rasteriser such as lavapipe, else the CPU), `cpu`, or `gpu` (WGSL
    /// through wgpu on any Vulkan adapter, lavapipe included; fails without one).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Also write the model (config.json + model.safetensors) to this directory, e.g. to
    /// keep a --random control encoder (MERT or MuQ).
    #[arg(long)]
    pub save_model: Option<PathBuf>,
}

/// What one `encode_file` run did.
#[derive(Clone, Debug)]
pub struct EncodeSummary {
    pub frames: usize,
    pub hidden: usize,
    pub num_states: usize,
    pub seconds: f64,
}

/// Read a mono waveform tensor `name` (`[N]` or `[1, N]`) from a safetensors file.
pub fn read_waveform(path: &Path, name: &str) -> Result<Vec<f32>> {
    let store = WeightStore::open(path)?;
    let Some(shape) = store.shape(name).map(<[usize]>::to_vec) else {
        let names: Vec<&str> = store.names().collect();
        bail!("{}: no tensor {name:?} (has {names:?})", path.display());
    };
    ensure!(
        shape.len() == 1 || (shape.len() == 2 && shape[0] == 1),
        "{}: tensor {name} has shape {shape:?}; expected a mono waveform [N] or [1, N]",
        path.display()
    );
    store.get(name, &shape)
}

/// Decode an audio file to mono and resample it (high-quality sinc) to `rate`.
pub fn read_audio(path: &Path, rate: u32) -> Result<Vec<f32>> {
    let pcm = crate::audio::decode_file(path)?;
    let pcm = crate::audio::resample(&pcm, rate, crate::audio::ResampleQuality::High)
        .with_context(|| format!("resampling {} to {rate} Hz", path.display()))?;
    Ok(pcm.samples)
}

/// Encode `wave` with `model` on `backend` and write all hidden states to `output`.
/// `weights` says where the weights came from (for the file's metadata:
/// random ones say so, with their seed).
pub fn encode_to_file<B: Backend>(
    backend: &B,
    model: &Encoder<B>,
    wave: &[f32],
    output: &Path,
    weights: &Weights,
) -> Result<EncodeSummary> {
    let cfg = model.config();
    let all: Vec<usize> = (0..cfg.num_hidden_states()).collect();
    let start = Instant::now();
    let out = model.encode(backend, wave, &all)?;
    let seconds = start.elapsed().as_secs_f64();
    // Nothing is written rather than states a reader would take as output.
    for (i, s) in out.states.iter().enumerate() {
        if let Some(j) = s
            .as_ref()
            .and_then(|s| s.iter().position(|v| !v.is_finite()))
        {
            bail!(
                "hidden_states.{i} is {} at frame {}, column {}: the {} model gives no usable output \
                 for this input (nothing written to {})",
                s.as_ref().expect("found in it")[j],
                j / out.hidden.max(1),
                j % out.hidden.max(1),
                cfg.arch(),
                output.display()
            );
        }
    }
    let bytes: Vec<(String, Vec<u8>)> = out
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s
                .as_ref()
                .context("encoder skipped a requested hidden state")?;
            Ok((
                format!("hidden_states.{i}"),
                s.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ))
        })
        .collect::<Result<_>>()?;
    let views = bytes
        .iter()
        .map(|(k, b)| {
            Ok((
                k.clone(),
                TensorView::new(Dtype::F32, vec![out.frames, out.hidden], b)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow::anyhow!("building output tensors: {e:?}"))?;
    let mut meta = HashMap::from([
        ("arch".to_string(), cfg.arch().to_string()),
        ("frames".to_string(), out.frames.to_string()),
        ("hidden_size".to_string(), out.hidden.to_string()),
        ("sample_rate".to_string(), cfg.sample_rate().to_string()),
        (
            "frame_rate_hz".to_string(),
            format!("{}", cfg.frame_rate_hz()),
        ),
        ("max_frames".to_string(), cfg.max_frames().to_string()),
        ("backend".to_string(), backend.name()),
        ("weights".to_string(), weights.describe()),
    ]);
    if let Weights::Random { seed, .. } = weights {
        meta.insert("random_seed".to_string(), seed.to_string());
    }
    if let ArchConfig::Mert(m) = &cfg {
        meta.insert("do_normalize".to_string(), m.do_normalize.to_string());
    }
    let buf = safetensors::serialize(views, Some(meta))
        .map_err(|e| anyhow::anyhow!("serialising: {e:?}"))?;
    std::fs::write(output, buf).with_context(|| format!("writing {}", output.display()))?;
    Ok(EncodeSummary {
        frames: out.frames,
        hidden: out.hidden,
        num_states: all.len(),
        seconds,
    })
}

/// Where an encode's weights came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Weights {
    /// A checkpoint folder.
    Checkpoint(PathBuf),
    /// Seeded random init of a preset: a control, not pre-trained.
    Random {
        arch: String,
        preset: String,
        seed: u64,
    },
}

impl Weights {
    /// For the output's metadata.
    pub fn describe(&self) -> String {
        match self {
            Weights::Checkpoint(dir) => format!("pre-trained weights from {}", dir.display()),
            Weights::Random { arch, preset, seed } => format!(
                "RANDOM: seeded random init of {arch} preset `{preset}`, seed {seed}; not pre-trained"
            ),
        }
    }

    fn of(args: &EncodeArgs) -> Weights {
        match (&args.model, &args.random) {
            (Some(dir), _) => Weights::Checkpoint(dir.clone()),
            (None, preset) => Weights::Random {
                arch: args.arch.clone(),
                preset: preset.clone().unwrap_or_default(),
                seed: args.seed,
            },
        }
    }
}

/// Load the model in `model_dir` on `backend`, encode the waveform tensor `input_tensor`
/// of `input`, and write every hidden state to `output`.
pub fn encode_file<B: Backend>(
    backend: &B,
    model_dir: &Path,
    input: &Path,
    input_tensor: &str,
    output: &Path,
) -> Result<EncodeSummary> {
    let model = Encoder::load(backend, model_dir)?;
    let wave = read_waveform(input, input_tensor)?;
    let weights = Weights::Checkpoint(model_dir.to_path_buf());
    encode_to_file(backend, &model, &wave, output, &weights)
}

/// Build the model the args describe on `backend` (and save it first with
/// `--save-model`, through the same weight walk).
pub fn load_model<B: Backend>(backend: &B, args: &EncodeArgs) -> Result<Encoder<B>> {
    let (mut cfg, source) = match (&args.model, args.random.as_deref()) {
        (Some(dir), None) => {
            let path = dir.join("model.safetensors");
            (
                ArchConfig::from_dir(dir)?,
                Source::Dir(WeightStore::open(&path)?),
            )
        }
        (None, Some(name)) => {
            let cfg = ArchConfig::preset(&args.arch, name).context("--random")?;
            (cfg, Source::Seed(args.seed))
        }
        _ => bail!("pass exactly one of --model DIR or --random NAME"),
    };
    if let Some(m) = args.max_frames {
        cfg.set_max_frames(m);
        cfg.validate().context("--max-frames")?;
    }
    match &mut cfg {
        ArchConfig::Mert(m) if args.no_normalize => m.do_normalize = false,
        ArchConfig::Muq(_) if args.no_normalize => {
            bail!("--no-normalize applies to MERT's waveform normalisation; MuQ has none")
        }
        _ => {}
    }
    let weights = match (&source, &args.save_model) {
        (Source::Dir(store), Some(dir)) => cfg.save_model(Checkpoint(store), dir)?,
        (Source::Seed(seed), Some(dir)) => cfg.save_model(Seeded::new(*seed), dir)?,
        (Source::Dir(store), None) => cfg
            .walk(&mut Checkpoint(store))
            .with_context(|| format!("loading {} weights from {}", cfg.arch(), store.label()))?,
        (Source::Seed(seed), None) => cfg.random_weights(*seed)?,
    };
    Encoder::new(backend, cfg, &weights)
}

/// Where `pipe encode`'s weights come from.
enum Source {
    Dir(WeightStore),
    Seed(u64),
}

/// `pipe encode` on the backend `--device` picks.
pub fn run(args: EncodeArgs) -> Result<()> {
    if args.reference_ops && args.device == "gpu" {
        bail!("--reference-ops runs the plain CPU ops; it cannot be combined with --device gpu");
    }
    let gpu = match args.device.as_str() {
        "cpu" => None,
        "gpu" => {
            Some(crate::gpu::GpuBackend::new().map_err(|e| anyhow::anyhow!("--device gpu: {e}"))?)
        }
        // The reference ops are CPU ops: `auto` means the CPU with them.
        "auto" if args.reference_ops => None,
        "auto" => super::runtime::hardware_gpu(),
        other => bail!("--device {other:?}: expected auto, cpu or gpu"),
    };
    match gpu {
        Some(backend) => run_on(&backend, &args),
        None if args.reference_ops => run_on(&CpuBackend::reference(), &args),
        None => run_on(&CpuBackend::new(), &args),
    }
}

fn run_on<B: Backend>(backend: &B, args: &EncodeArgs) -> Result<()> {
    let model = load_model(backend, args)?;
    let wave = match &args.input_tensor {
        Some(name) => read_waveform(&args.input, name)?,
        None => read_audio(&args.input, model.config().sample_rate())?,
    };
    let s = encode_to_file(backend, &model, &wave, &args.output, &Weights::of(args))?;
    eprintln!(
        "encoded {} samples -> {} frames x {} hidden, {} states in {:.2} s on {}; wrote {}",
        wave.len(),
        s.frames,
        s.hidden,
        s.num_states,
        s.seconds,
        backend.name(),
        args.output.display()
    );
    Ok(())
}
