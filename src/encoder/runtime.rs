//! An encoder as a pipeline entry (`[encoders.NAME]`) describes it, loaded
//! once on the device the entry picks: its architecture (a weights folder's
//! `config.json`, checked against `arch`, or a seeded preset), its weights,
//! and the backend (`device = "auto" | "cpu" | "gpu"`).
//!
//! Callers hand it work generic over the backend through [`OnDevice`]; on a
//! GPU the host half of a clip (MuQ's mel front end) runs before the clip's
//! turn on the device, and clips take turns (one at a time keeps a clip's ops
//! together in the backend's command batch).

use super::config::{Device, EncoderConfig};
use super::model::{ArchConfig, Encoder, Prepared};
use crate::backend::prelude::*;
use crate::cpu::CpuBackend;
use crate::gpu::GpuBackend;
use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// Work to run with a loaded encoder on whichever backend it is on.
pub trait OnDevice {
    type Output;
    fn run<B: Backend>(
        self,
        backend: &B,
        encoder: &Encoder<B>,
        input: &Prepared,
    ) -> Result<Self::Output>;
}

/// A loaded encoder on its backend.
pub struct EncoderRuntime {
    on: On,
}

#[allow(clippy::large_enum_variant)] // one per encoder, behind an Arc
enum On {
    Cpu {
        backend: CpuBackend,
        encoder: Encoder<CpuBackend>,
    },
    Gpu {
        backend: GpuBackend,
        encoder: Encoder<GpuBackend>,
        /// One clip at a time on the device.
        turn: Mutex<()>,
    },
}

impl EncoderRuntime {
    /// Load encoder `name` as `cfg` describes it.
    pub fn load(name: &str, cfg: &EncoderConfig) -> Result<Self> {
        let mut arch = arch_config(name, cfg)?;
        let weights = match &cfg.weights {
            Some(dir) => arch.load_weights(dir)?,
            None => arch.random_weights(cfg.seed)?,
        };
        if let ArchConfig::Mert(m) = &mut arch {
            m.do_normalize = cfg.normalize;
        }
        let gpu = match cfg.device {
            Device::Cpu => None,
            Device::Gpu => Some(GpuBackend::new().map_err(|e| {
                anyhow!("encoder `{name}` has device = \"gpu\" but no GPU adapter opened: {e}")
            })?),
            Device::Auto => hardware_gpu(),
        };
        let prepare = || format!("preparing encoder `{name}`");
        let on = match gpu {
            Some(backend) => On::Gpu {
                encoder: Encoder::new(&backend, arch, &weights).with_context(prepare)?,
                backend,
                turn: Mutex::new(()),
            },
            None => {
                let backend = CpuBackend::new();
                On::Cpu {
                    encoder: Encoder::new(&backend, arch, &weights).with_context(prepare)?,
                    backend,
                }
            }
        };
        Ok(EncoderRuntime { on })
    }

    pub fn config(&self) -> ArchConfig {
        match &self.on {
            On::Cpu { encoder, .. } => encoder.config(),
            On::Gpu { encoder, .. } => encoder.config(),
        }
    }

    /// The backend's name, for logs.
    pub fn backend_name(&self) -> String {
        match &self.on {
            On::Cpu { backend, .. } => backend.name(),
            On::Gpu { backend, .. } => backend.name(),
        }
    }

    /// Prepare `wave` (the host half of the pass), then run `work` on the
    /// device: on a GPU in the clip's turn.
    pub fn run<W: OnDevice>(&self, wave: &[f32], work: W) -> Result<W::Output> {
        match &self.on {
            On::Cpu { backend, encoder } => work.run(backend, encoder, &encoder.prepare(wave)?),
            On::Gpu {
                backend,
                encoder,
                turn,
            } => {
                let input = encoder.prepare(wave)?;
                let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
                work.run(backend, encoder, &input)
            }
        }
    }
}

/// Whether an encoder entry's forward pass runs on a GPU (its clips then
/// take turns on the device).
pub fn runs_on_gpu(cfg: &EncoderConfig) -> bool {
    match cfg.device {
        Device::Cpu => false,
        Device::Gpu => true,
        Device::Auto => hardware_gpu_present(),
    }
}

/// The GPU backend on a hardware adapter, if there is one (`device = "auto"`
/// never picks a software rasteriser such as lavapipe: slower than the CPU).
pub(crate) fn hardware_gpu() -> Option<GpuBackend> {
    GpuBackend::new().ok().filter(|g| !g.gpu().info().is_cpu())
}

/// [`hardware_gpu`] asked once per process (opening an adapter is not free).
fn hardware_gpu_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| hardware_gpu().is_some())
}

/// The architecture an encoder entry describes: its weights folder's
/// `config.json` (which must be of the `arch` named), or the `random` preset,
/// with the entry's `window_frames`, validated.
pub fn arch_config(name: &str, cfg: &EncoderConfig) -> Result<ArchConfig> {
    let mut arch = described_arch(name, cfg)?;
    arch.set_max_frames(cfg.window_frames());
    arch.validate()
        .with_context(|| format!("encoders.{name} (window_frames = {})", cfg.window_frames()))?;
    Ok(arch)
}

/// Checks, before any clip is encoded, everything about encoder `name` that
/// would otherwise fail every clip alike: its architecture and window, and
/// for a weights folder that both files are there and every tensor the
/// forward pass reads is in `model.safetensors` with its shape and a float
/// dtype (the header only: the values are read when the encoder loads).
/// Returns the architecture (for the callers' own checks, e.g. layers).
pub fn validate(name: &str, cfg: &EncoderConfig) -> Result<ArchConfig> {
    if let Some(dir) = &cfg.weights
        && let Some(why) = missing_model_files(dir)
    {
        bail!("encoders.{name}: {why}");
    }
    let arch = arch_config(name, cfg)?;
    if let Some(dir) = &cfg.weights {
        arch.check_weights(dir)
            .with_context(|| format!("encoders.{name}"))?;
    }
    Ok(arch)
}

/// Why encoder `name`'s real weights cannot be used (which model file its
/// folder lacks, and how to get them), or `None`: it has both, or it is a
/// seeded random control.
pub fn unavailable(name: &str, cfg: &EncoderConfig) -> Option<String> {
    let missing = missing_model_files(cfg.weights.as_ref()?)?;
    let hint = cfg
        .download_hint
        .as_deref()
        .unwrap_or("see README.md, \"Real encoder weights\"");
    Some(format!("encoder `{name}`: {missing} ({hint})"))
}

/// Why `dir` is not a model folder (which of `config.json` and
/// `model.safetensors` it lacks), or `None` if it has both.
pub fn missing_model_files(dir: &Path) -> Option<String> {
    let missing: Vec<&str> = ["config.json", "model.safetensors"]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    match missing.as_slice() {
        [] => None,
        [_, _] => Some(format!(
            "no config.json and no model.safetensors in {}",
            dir.display()
        )),
        [one] => Some(format!(
            "{} has no {one} (a model folder needs config.json and model.safetensors)",
            dir.display()
        )),
        _ => unreachable!("two files"),
    }
}

fn described_arch(name: &str, cfg: &EncoderConfig) -> Result<ArchConfig> {
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

/// What an encoder entry's weights are, for table metadata and bundles.
pub fn describe_weights(cfg: &EncoderConfig) -> String {
    match (&cfg.weights, &cfg.random) {
        (Some(dir), _) => format!("pre-trained weights from {}", dir.display()),
        (None, Some(preset)) => format!(
            "CONTROL: seeded random init ({preset}, seed {}), not pre-trained",
            cfg.seed
        ),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_model_folder_says_which_file_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(
            missing_model_files(d)
                .unwrap()
                .contains("no config.json and no model.safetensors")
        );
        std::fs::write(d.join("config.json"), "{}").unwrap();
        let why = missing_model_files(d).unwrap();
        assert!(
            why.ends_with(
                "has no model.safetensors (a model folder needs config.json and model.safetensors)"
            ),
            "{why}"
        );
        std::fs::remove_file(d.join("config.json")).unwrap();
        std::fs::write(d.join("model.safetensors"), "").unwrap();
        assert!(
            missing_model_files(d)
                .unwrap()
                .contains("has no config.json")
        );
        std::fs::write(d.join("config.json"), "{}").unwrap();
        assert_eq!(missing_model_files(d), None);
    }

    /// window_frames = 0, or a weights folder with another model's tensors,
    /// fail the encoder's check (once, before any clip).
    #[test]
    fn validate_checks_window_and_weights_before_any_work() {
        let entry = |arch: &str,
                     random: Option<&str>,
                     weights: Option<std::path::PathBuf>,
                     window| EncoderConfig {
            arch: arch.into(),
            weights,
            random: random.map(str::to_string),
            seed: 0,
            normalize: true,
            window_frames: window,
            download_hint: None,
            device: Device::Cpu,
            cache_states: None,
        };
        validate("c", &entry("mert", Some("control"), None, None)).unwrap();
        let e = format!(
            "{:#}",
            validate("c", &entry("mert", Some("control"), None, Some(0))).unwrap_err()
        );
        assert!(
            e.contains("encoders.c") && e.contains("max_frames (window_frames) = 0"),
            "{e}"
        );
        let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            spec.join("mert_tiny_postln/config.json"),
            dir.path().join("config.json"),
        )
        .unwrap();
        std::fs::copy(
            spec.join("muq_tiny/model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let e = format!(
            "{:#}",
            validate("w", &entry("mert", None, Some(dir.path().into()), None)).unwrap_err()
        );
        assert!(
            e.contains("encoders.w") && e.contains("model.safetensors"),
            "{e}"
        );
        std::fs::copy(
            spec.join("mert_tiny_postln/model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        validate("w", &entry("mert", None, Some(dir.path().into()), None)).unwrap();
    }
}
