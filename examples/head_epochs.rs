//! Seconds per training epoch of every autodiff head kind on synthetic
//! padded frame sequences (one fold, the machine's threads).
//!
//! `cargo run --release --example head_epochs -- D T N SIZES [KIND...]`
//! D = frame width, T = frames per clip (lengths drawn in [T/2, T]),
//! N = training clips (64 more validate), SIZES = `control` (the default
//! pipeline's control rows) or `study` (the study's widths).
//! `HEAD_EPOCHS_CNN=4,8,16,32` overrides the mel-CNN's channels.

use std::time::Instant;

use pipe::dims::N_DIMS;
use pipe::head::{Arch, FrameSet, HeadConfig, HeadInput, Hidden, fit_graph};
use pipe::rng::Rng;

fn config(arch: Arch, sizes: &str) -> HeadConfig {
    let cfg = config_for(arch, sizes);
    match std::env::var("HEAD_EPOCHS_CNN") {
        Ok(list) => HeadConfig {
            cnn_channels: list
                .split(',')
                .map(|c| c.trim().parse().expect("HEAD_EPOCHS_CNN: channel counts"))
                .collect(),
            ..cfg
        },
        Err(_) => cfg,
    }
}

fn config_for(arch: Arch, sizes: &str) -> HeadConfig {
    let base = HeadConfig {
        arch,
        max_epochs: 2,
        patience: 5,
        ..Default::default()
    };
    match sizes {
        "study" => HeadConfig {
            hidden: Hidden(vec![512, 512]),
            lstm_layers: if arch == Arch::PerDim {
                Some(2)
            } else {
                Some(1)
            },
            ..base
        },
        _ => HeadConfig {
            hidden: Hidden(vec![64]),
            lstm_hidden: 32,
            transformer_heads: 4,
            transformer_ffn: 128,
            per_dim_hidden: vec![32],
            cnn_channels: vec![8, 16, 32, 64],
            fusion_dim: 64,
            gate_head_hidden: 32,
            ..base
        },
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize { args[i].parse().expect("D T N are numbers") };
    let (d, t, n) = (num(0), num(1), num(2));
    let sizes = args[3].as_str();
    let kinds: Vec<String> = if args.len() > 4 {
        args[4..].to_vec()
    } else {
        [
            "attention",
            "bilstm",
            "transformer",
            "per_dim",
            "mel_cnn",
            "ensemble",
            "concat",
            "gated",
        ]
        .map(String::from)
        .to_vec()
    };
    let total = n + 64;
    let mut rng = Rng::new(1, 0);
    let mut set = || -> anyhow::Result<FrameSet> {
        let clips: Vec<Vec<f32>> = (0..total)
            .map(|_| {
                let len = t / 2 + rng.below(t / 2 + 1);
                (0..len.max(1) * d)
                    .map(|_| rng.uniform_f32() * 2.0 - 1.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        FrameSet::new(d, &refs)
    };
    let (a, b) = (set()?, set()?);
    let labels: Vec<f32> = (0..total * N_DIMS)
        .map(|_| 0.3 + 0.4 * rng.uniform_f32())
        .collect();
    let train: Vec<usize> = (0..n).collect();
    let val: Vec<usize> = (n..total).collect();
    for kind in kinds {
        let cfg_arch: Arch = serde_json::from_value(serde_json::json!(kind))?;
        let cfg = config(cfg_arch, sizes);
        let input = match cfg_arch {
            Arch::Ensemble | Arch::Concat | Arch::Gated => HeadInput::Two(a.clone(), b.clone()),
            _ => HeadInput::Frames(a.clone()),
        };
        let start = Instant::now();
        let (_, report) = fit_graph(&cfg, &input, &labels, N_DIMS, &train, &val, 16)?;
        let secs = start.elapsed().as_secs_f64() / report.epochs_run as f64;
        println!("{kind:12} D={d:5} T<={t:5} N={n:5} {sizes:8} {secs:8.2} s/epoch");
    }
    Ok(())
}
