//! MERT-v1 CPU timing on seeded random weights of the real architecture.
//!
//! `cargo bench --bench mert_cpu -- [95m|330m] [seconds] [reference]`
//! (defaults: 95m, 10 s, fast backend). Prints wall time per forward pass.

use pipe::cpu::CpuBackend;
use pipe::encoder::{Mert, MertConfig, MertWeights};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arch = args.first().map_or("95m", String::as_str);
    if arch == "gemm" {
        // Raw matmul throughput: [749, 768] x [768, 3072].
        let (m, k, n) = (749, 768, 3072);
        let x = vec![0.5f32; m * k];
        let w = vec![0.25f32; n * k];
        for _ in 0..3 {
            let t = Instant::now();
            let y = pipe::cpu::fast::linear(&x, m, k, &w, n, None, pipe::ops::Act::None);
            let s = t.elapsed().as_secs_f64();
            println!(
                "linear {m}x{k}x{n}: {:.1} ms, {:.1} GFLOP/s ({})",
                s * 1e3,
                2.0 * (m * k * n) as f64 / s / 1e9,
                y[0]
            );
        }
        return;
    }
    if arch == "conv" {
        // The MERT conv stack on a 10 s clip, layer by layer.
        let cfg = MertConfig::mert_95m();
        let mut t = 240_000;
        let mut c_in = 1;
        let mut x: Vec<f32> = (0..t).map(|i| (i as f32 * 0.01).sin()).collect();
        for (i, (&k, &s)) in cfg.conv_kernel.iter().zip(&cfg.conv_stride).enumerate() {
            let w = vec![0.01f32; 512 * c_in * k];
            let t0 = Instant::now();
            let (y, t_out) = pipe::cpu::fast::conv1d(
                &x,
                c_in,
                t,
                &w,
                512,
                k,
                s,
                0,
                1,
                None,
                pipe::ops::Act::Gelu,
            );
            let sec = t0.elapsed().as_secs_f64();
            let flop = 2.0 * (512 * c_in * k * t_out) as f64;
            println!(
                "conv{i}: {c_in}x{t} -> 512x{t_out}: {:.1} ms, {:.1} GFLOP/s",
                sec * 1e3,
                flop / sec / 1e9
            );
            if i == 0 {
                let g = vec![1.0f32; 512];
                let t1 = Instant::now();
                let _ = pipe::cpu::group_norm(&y, 512, t_out, 512, &g, &g, 1e-5);
                println!(
                    "group_norm 512x{t_out}: {:.1} ms",
                    t1.elapsed().as_secs_f64() * 1e3
                );
            }
            x = y;
            t = t_out;
            c_in = 512;
        }
        let x = vec![0.1f32; 768 * 749];
        let w = vec![0.01f32; 768 * 48 * 128];
        let t0 = Instant::now();
        let _ = pipe::cpu::fast::conv1d(
            &x,
            768,
            749,
            &w,
            768,
            128,
            1,
            64,
            16,
            None,
            pipe::ops::Act::Gelu,
        );
        let sec = t0.elapsed().as_secs_f64();
        println!(
            "pos conv 768x749 k128 g16: {:.1} ms, {:.1} GFLOP/s",
            sec * 1e3,
            2.0 * (768usize * 48 * 128 * 750) as f64 / sec / 1e9
        );
        return;
    }
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let backend = if args.iter().any(|a| a == "reference") {
        CpuBackend::reference()
    } else {
        CpuBackend::new()
    };
    let mut cfg = match arch {
        "330m" => MertConfig::mert_330m(),
        _ => MertConfig::mert_95m(),
    };
    if args.iter().any(|a| a == "frontend") {
        // Conv encoder + projection + positional conv only.
        cfg.num_hidden_layers = 0;
    }
    let t0 = Instant::now();
    let weights = MertWeights::random_init(&cfg, 1);
    let model = Mert::new(&backend, cfg.clone(), &weights).expect("model");
    drop(weights);
    println!("{arch}: init + prepare {:.2} s", t0.elapsed().as_secs_f64());
    let n = (secs * cfg.sample_rate as f64) as usize;
    let wave: Vec<f32> = (0..n)
        .map(|i| (i as f32 * 0.031).sin() * 0.4 + (i as f32 * 0.0071).sin() * 0.2)
        .collect();
    let all: Vec<usize> = (0..cfg.num_hidden_states()).collect();
    for run in 0..3 {
        let t = Instant::now();
        let out = model.encode(&backend, &wave, &all).expect("encode");
        println!(
            "run {run}: {secs} s clip -> {} frames, {} states, {:.3} s on {}",
            out.frames,
            all.len(),
            t.elapsed().as_secs_f64(),
            pipe::encoder::Backend::name(&backend)
        );
    }
}
