//! `pipe bench --predict`: the study's end-to-end latency benchmark (E2),
//! each step of scoring one recording timed apart, through the code
//! `pipe predict` runs: decode (a 16-bit 44.1 kHz WAV), resample to 24 kHz,
//! extraction (the encoder pass pooled to layers 7-12 mean, the study's
//! E2 features), of which the host pooling of those six states, and one
//! MLP head (the study's: hidden 512, on the pooled vector). A bundle
//! averages K = 4 fold heads: 4x the head time.
//!
//! As the study: one warm-up, then the mean of `--repeat` runs (5 if left at
//! bench's default 3), audio loading excluded from extraction. Weights are
//! seeded random (same shapes, so the same cost as the real checkpoint).

use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::time::Instant;

use crate::audio::{self, Pcm, ResampleQuality};
use crate::bench::BenchArgs;
use crate::dims::N_DIMS;
use crate::encoder::{Device, EncoderConfig};
use crate::features::{Extractor, FeatureSetSpec, HiddenStates, pool_many};
use crate::head::net::Net;
use crate::head::{FoldHead, HeadConfig, HeadInput, Standardizer, TrainedHead};
use crate::rng::Rng;

/// The study's E2 clip lengths.
pub const E2_SECONDS: [f64; 2] = [10.0, 19.4];

/// The study's E2 figures (ms, its GPU, MERT-330M fp32, 10 s): extraction, head.
pub const STUDY_E2_MS: (f64, f64) = (63.7, 1.4);

/// Mean and min of each step, ms.
#[derive(Clone, Debug, serde::Serialize)]
pub struct E2Row {
    pub model: String,
    pub backend: String,
    pub seconds: f64,
    pub decode_ms: f64,
    pub resample_ms: f64,
    pub extraction_ms: f64,
    /// Host pooling of the six states (part of extraction on the CPU path).
    pub pool_ms: f64,
    pub head_ms: f64,
    pub runs: usize,
}

impl E2Row {
    pub fn total_ms(&self) -> f64 {
        self.decode_ms + self.resample_ms + self.extraction_ms + self.head_ms
    }
}

/// A piano-like test signal: decaying partials of a few notes, at `rate`.
fn signal(seconds: f64, rate: u32) -> Pcm {
    let n = (seconds * rate as f64) as usize;
    let notes = [220.0f32, 277.2, 329.6, 440.0, 554.4];
    let samples = (0..n)
        .map(|k| {
            let t = k as f32 / rate as f32;
            let note = notes[(t * 2.0) as usize % notes.len()];
            let since = t % 0.5;
            let env = (-4.0 * since).exp();
            (1..=4)
                .map(|h| 0.15 / h as f32 * (2.0 * std::f32::consts::PI * note * h as f32 * t).sin())
                .sum::<f32>()
                * env
        })
        .collect();
    Pcm {
        sample_rate: rate,
        samples,
    }
}

/// Mean and minimum seconds of `runs` timed calls after one warm-up.
fn time<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    f()?;
    let mut total = 0.0;
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f()?);
        total += t.elapsed().as_secs_f64();
    }
    Ok(total / runs as f64 * 1e3)
}

/// The encoder `--model` names, as a seeded random entry.
fn encoder(model: &str, device: Device, seed: u64) -> Result<(String, EncoderConfig)> {
    let (name, arch, preset) = match model {
        "330m" | "all" => ("MERT-330M", "mert", "330m"),
        "95m" => ("MERT-95M", "mert", "95m"),
        "muq" => ("MuQ-large", "muq", "large"),
        "control" => ("MERT control (330M layout)", "mert", "control_330m"),
        "tiny" => ("MERT control", "mert", "control"),
        other => bail!(
            "bench --predict: unknown --model {other:?} (330m, the study's E2 model; 95m, muq, control or tiny)"
        ),
    };
    let cfg = EncoderConfig {
        arch: arch.into(),
        weights: None,
        random: Some(preset.into()),
        seed,
        normalize: true,
        window_frames: None,
        download_hint: None,
        device,
        cache_states: None,
    };
    Ok((name.into(), cfg))
}

/// Runs E2 for each clip length on each backend `--device` names.
pub fn run(args: &BenchArgs) -> Result<Vec<E2Row>> {
    let devices: Vec<Device> = match args.device.as_str() {
        "cpu" => vec![Device::Cpu],
        "gpu" => vec![Device::Gpu],
        "all" => vec![Device::Cpu, Device::Gpu],
        other => bail!("unknown --device {other:?} (expected cpu, gpu or all)"),
    };
    // The study's five runs unless asked otherwise (bench's own default is 3).
    let runs = if args.repeat == 3 {
        5
    } else {
        args.repeat.max(1)
    };
    let lengths: Vec<f64> = if (args.seconds - 10.0).abs() < 1e-9 {
        E2_SECONDS.to_vec()
    } else {
        vec![args.seconds]
    };
    let spec: FeatureSetSpec = serde_json::from_value(serde_json::json!({
        "layers": "7-12", "pooling": "mean", "max_frames": 1000
    }))?;
    let dir = std::env::temp_dir().join(format!("pipe-e2-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    for device in devices {
        let (model, cfg) = encoder(&args.model, device, args.seed)?;
        // Extraction as the pipeline and `pipe predict` run it.
        let extractor = Extractor::new(BTreeMap::from([("e2".to_string(), cfg)]), None)?;
        let rt = match extractor.encoder("e2") {
            Ok(rt) => rt,
            Err(e) if args.device == "all" && device == Device::Gpu => {
                eprintln!("note: --device all: GPU skipped: {e:#}");
                continue;
            }
            Err(e) => return Err(e),
        };
        let backend = rt.backend_name();
        let hidden = rt.config().hidden_size();
        let head_cfg = HeadConfig::default();
        let net = Net::new(&head_cfg, hidden, N_DIMS);
        let head = FoldHead::Net(TrainedHead {
            config: head_cfg.clone(),
            d_in: hidden,
            n_out: N_DIMS,
            standardizer: Standardizer::identity(hidden),
            params: net.init(&mut Rng::new(args.seed, 0)),
            loss_params: Vec::new(),
        });
        for &seconds in &lengths {
            let path = dir.join(format!("e2-{seconds}.wav"));
            audio::wav::write_i16(&path, &signal(seconds, 44_100))?;
            let decode_ms = time(runs, || audio::decode_file(&path))?;
            let pcm = audio::decode_file(&path)?;
            let resample_ms = time(runs, || {
                audio::resample(&pcm, 24_000, ResampleQuality::High)
            })?;
            let wave = audio::resample(&pcm, 24_000, ResampleQuality::High)?;
            let specs = std::slice::from_ref(&spec);
            let extraction_ms = time(runs, || extractor.pass("e2", &wave, specs, &[]))?;
            let keep: Vec<usize> = (7..=12).collect();
            let (_, states) = extractor.pass("e2", &wave, &[], &keep)?;
            let pool_ms = time(runs, || {
                let hs = HiddenStates::new(states.frames, states.hidden, &states.states)?;
                pool_many(specs, &hs)
            })?;
            let pooled = extractor.pass("e2", &wave, specs, &[])?.0.remove(0);
            let input = HeadInput::Pooled {
                values: pooled,
                dim: hidden,
            };
            let head_ms = time(runs, || head.predict(&input))?;
            let row = E2Row {
                model: model.clone(),
                backend: backend.clone(),
                seconds,
                decode_ms,
                resample_ms,
                extraction_ms,
                pool_ms,
                head_ms,
                runs,
            };
            if args.json {
                println!("{}", serde_json::to_string(&row)?);
            } else {
                print!("{}", render(&row));
            }
            rows.push(row);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}

/// One clip length's lines: each step, the total and real-time factor, and
/// the study's figures beside.
pub fn render(r: &E2Row) -> String {
    let (study_x, study_h) = STUDY_E2_MS;
    let mut s = format!(
        "E2 {} on {}, {:.1} s clip (mean of {} runs after a warm-up)\n",
        r.model, r.backend, r.seconds, r.runs
    );
    s += &format!(
        "  decode      {:>9.1} ms  (16-bit 44.1 kHz WAV)\n",
        r.decode_ms
    );
    s += &format!(
        "  resample    {:>9.1} ms  (to 24 kHz, high-quality sinc)\n",
        r.resample_ms
    );
    s += &format!(
        "  extraction  {:>9.1} ms  (encoder + layers 7-12 mean; host pooling alone {:.2} ms)\n",
        r.extraction_ms, r.pool_ms
    );
    s += &format!(
        "  head        {:>9.2} ms  (one MLP 512; a bundle's 4 fold heads: {:.2} ms)\n",
        r.head_ms,
        4.0 * r.head_ms
    );
    s += &format!(
        "  total       {:>9.1} ms  real-time factor {:.4} ({:.0}x faster than real time)\n",
        r.total_ms(),
        r.total_ms() / 1e3 / r.seconds,
        r.seconds * 1e3 / r.total_ms()
    );
    if (r.seconds - 10.0).abs() < 1e-9 {
        s += &format!(
            "  study (its GPU, MERT-330M fp32, 10 s): extraction {study_x} ms + head {study_h} ms = {:.1} ms, audio loading excluded\n",
            study_x + study_h
        );
    }
    s
}
