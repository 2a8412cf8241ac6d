//! `pipe bench`: wall time, real-time factor, counted FLOP, achieved share of a
//! measured matmul peak, and a per-op profile of encoder (MERT-v1, MuQ) forward passes.
//!
//! - [`flops`]: FLOP of a clip from the config and the frame arithmetic.
//! - [`timed`]: [`Timed`], a [`Backend`] wrapper that times every op.
//! - [`peak`]: the device's measured `linear` ceiling.
//! - [`run`]: warm-up + counted passes of one model on one backend.
//! - [`text`]: the human-readable report; `--json` prints [`run::Report`] as JSON.
//!
//! Weights are seeded random ([`ArchConfig::random_weights`](crate::encoder::ArchConfig::random_weights)):
//! same shapes as the real checkpoints, so the same cost.
//!
//! Adding a backend is one line in [`run`]: build the backend and call
//! `run_device(backend, &loads, args)`; everything else is generic over [`Backend`].
//!
//! Must not import `dag`, `stages` or `features`: it times encoders alone.

pub mod flops;
pub mod load;
pub mod peak;
pub mod run;
pub mod text;
pub mod timed;

pub use flops::{Flops, clip_flops};
pub use timed::{Profile, Timed};

use crate::backend::Backend;
use crate::cpu::CpuBackend;
use crate::encoder::{ArchConfig, MertConfig, MuqConfig};
use anyhow::{Result, bail};
use run::{Report, Workload};

/// Arguments of `pipe bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Architecture: 95m, 330m (MERT-v1), muq (MuQ-large), all (the three), or tiny
    /// (MERT's 2-layer H 64 test layout, for a quick check).
    #[arg(long, default_value = "all")]
    pub model: String,
    /// Backend: cpu, gpu or all.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Clip length in seconds (at the model's 24 kHz).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Counted passes per model (after one warm-up pass); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Peak matmul problem `M,K,N` (linear `[M, K]` × `[N, K]ᵀ`).
    #[arg(long, value_parser = parse_dims, default_value = "2048,2048,2048")]
    pub peak_dims: (usize, usize, usize),
    /// Timed runs of the peak matmul (after one warm-up run); the best is reported.
    #[arg(long, default_value_t = 3)]
    pub peak_runs: usize,
    /// One JSON object per (backend, model) line instead of text.
    #[arg(long)]
    pub json: bool,
    /// The study's E2 instead: scoring latency end to end (decode, resample,
    /// encoder + layers 7-12 mean, MLP head) for 10 s and 19.4 s clips, mean
    /// of 5 runs; `--model` defaults to MERT-330M here.
    #[arg(long)]
    pub predict: bool,
}

fn parse_dims(s: &str) -> Result<(usize, usize, usize), String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match v[..] {
        [m, k, n] if m > 0 && k > 0 && n > 0 => Ok((m, k, n)),
        _ => Err(format!("expected three positive sizes M,K,N, got {s:?}")),
    }
}

/// The fixture layout of `tests/fixtures/spec/mert_tiny_postln`: H 64, 2 post-LN layers.
pub fn tiny_config() -> MertConfig {
    MertConfig {
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 128,
        conv_dim: vec![32; 7],
        ..MertConfig::mert_95m()
    }
}

/// The workloads `--model` names.
pub fn workloads(args: &BenchArgs) -> Result<Vec<Workload>> {
    let m95 = || ("MERT-95M", ArchConfig::Mert(MertConfig::mert_95m()));
    let m330 = || ("MERT-330M", ArchConfig::Mert(MertConfig::mert_330m()));
    let muq = || ("MuQ-large", ArchConfig::Muq(MuqConfig::large()));
    let models: Vec<(&str, ArchConfig)> = match args.model.as_str() {
        "95m" => vec![m95()],
        "330m" => vec![m330()],
        "muq" => vec![muq()],
        "all" => vec![m95(), m330(), muq()],
        "tiny" => vec![("MERT-tiny", ArchConfig::Mert(tiny_config()))],
        other => bail!("unknown --model {other:?} (expected 95m, 330m, muq, all or tiny)"),
    };
    Ok(models
        .into_iter()
        .map(|(name, cfg)| Workload {
            model: name.into(),
            cfg,
            seconds: args.seconds,
            repeat: args.repeat,
            seed: args.seed,
        })
        .collect())
}

/// Measure the peak of `backend`, then every workload on it; print each result as it comes.
pub fn run_device<B: Backend>(
    backend: B,
    workloads: &[Workload],
    args: &BenchArgs,
) -> Result<Vec<Report>> {
    let timed = Timed::new(backend);
    let peak = peak::measure_peak(timed.inner(), args.peak_dims, args.peak_runs)?;
    let mut out = Vec::new();
    for w in workloads {
        timed.reset();
        let r = run::bench_model(&timed, w, peak)?;
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("{}", text::render(&r));
        }
        out.push(r);
    }
    Ok(out)
}

/// `pipe bench`.
pub fn run(args: &BenchArgs) -> Result<Vec<Report>> {
    let loads = workloads(args)?;
    let (cpu, gpu) = match args.device.as_str() {
        "cpu" => (true, false),
        "gpu" => (false, true),
        "all" => (true, true),
        other => bail!("unknown --device {other:?} (expected cpu, gpu or all)"),
    };
    let mut out = Vec::new();
    if cpu {
        out.extend(run_device(CpuBackend::new(), &loads, args)?);
    }
    if gpu {
        match crate::gpu::GpuBackend::new() {
            Ok(backend) => out.extend(run_device(backend, &loads, args)?),
            Err(e) if cpu => eprintln!("note: --device all: GPU skipped: {e}"),
            Err(e) => bail!("--device gpu: {e}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_dims_parse() {
        assert_eq!(parse_dims("1,2,3"), Ok((1, 2, 3)));
        assert!(parse_dims("1,2").is_err());
        assert!(parse_dims("1,0,3").is_err());
        assert!(parse_dims("a,2,3").is_err());
    }

    #[test]
    fn tiny_config_is_the_fixture_layout() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/spec/mert_tiny_postln/config.json"
        );
        let fixture = MertConfig::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(tiny_config(), fixture);
    }
}
