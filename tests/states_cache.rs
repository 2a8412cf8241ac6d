//! The hidden-state cache (`cache_states`) on the seeded control encoders:
//! sets it covers match the encoder-pooled ones within the f16 bound and are
//! keyed apart from them; with a warm cache a new pooling or layer set within
//! the cached states runs no encoder pass, and a cache hit gives the same
//! bits as the pass that filled the cache; `--dry-run` says which encoders
//! will run and for about how long.

use pipe::audio::{Pcm, wav};
use pipe::config::Config;
use pipe::dag::{self, Plan, RunOptions, RunReport, Store};
use pipe::encoder::{ArchConfig, Encoder};
use pipe::features::states_cache::round_f16;
use pipe::features::{FeatureSetSpec, HiddenStates, pool_many};
use std::path::Path;

/// Three 1 s clips (two pieces) of harmonic tones at 24 kHz and a labels CSV.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("audio");
    std::fs::create_dir_all(&audio).unwrap();
    for (i, f0) in [220.0f32, 330.0, 440.0].iter().enumerate() {
        let samples = (0..24_000)
            .map(|n| {
                let t = n as f32 / 24_000.0;
                0.3 * (2.0 * std::f32::consts::PI * f0 * t).sin()
                    + 0.1 * (4.0 * std::f32::consts::PI * f0 * t).sin()
            })
            .collect();
        let pcm = Pcm {
            sample_rate: 24_000,
            samples,
        };
        wav::write_f32(&audio.join(format!("c{i}.wav")), &pcm).unwrap();
    }
    let dims = pipe::dims::DIMENSIONS.join(",");
    let row = |id: &str, piece: &str| format!("{id},{piece},{}", vec!["0.5"; 19].join(","));
    let csv = format!(
        "clip_id,piece,{dims}\n{}\n{}\n{}\n",
        row("c0", "p0"),
        row("c1", "p0"),
        row("c2", "p1")
    );
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    dir
}

/// The control encoder (with `cache` as its extra lines) and four sets within layers 7-12.
fn config(cache: &str, extra: &str) -> String {
    format!(
        r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 2
[encoders.ctl]
arch = "mert"
random = "control"
seed = 7
device = "cpu"
{cache}
[features.mean]
encoder = "ctl"
layers = "7-12"
pooling = "mean"
[features.stats]
encoder = "ctl"
layers = "7-12"
pooling = "stats4"
[features.multi]
encoder = "ctl"
layers = "9-12"
pooling = "multiscale"
[features.cat]
encoder = "ctl"
layers = "8,12"
pooling = "mean_std"
{extra}
"#
    )
}

const CACHE: &str = "cache_states = \"7-12\"";
const SETS: [&str; 4] = ["mean", "stats", "multi", "cat"];

struct Ran {
    report: RunReport,
    passes: usize,
    hits: usize,
    estimate: Vec<String>,
}

/// Plans (for the dry-run estimate), then runs the pipeline as `pipe run` does.
fn run(dir: &Path, toml: &str, force: &[&str]) -> Ran {
    let cfg = Config::parse(toml, dir).unwrap();
    let pipeline = pipe::stages::build(&cfg).unwrap();
    let store = Store::new(&cfg.data_dir);
    let passes = pipeline.passes.clone().unwrap();
    let dry = RunOptions {
        dry_run: true,
        force: force.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let plan: Plan = dag::run(&pipeline.stages, &store, &dry)
        .unwrap()
        .plan
        .unwrap();
    let estimate = passes.estimate(&plan).unwrap();
    let opts = RunOptions {
        force: dry.force,
        ..Default::default()
    };
    let report = dag::run(&pipeline.stages, &store, &opts).unwrap();
    assert_eq!(report.failed(), 0, "{:?}", report.stages);
    passes.save_rates().unwrap();
    let (passes, hits) = passes.extractor().counts("ctl");
    Ran {
        report,
        passes,
        hits,
        estimate,
    }
}

fn computed(r: &Ran) -> usize {
    r.report.stage("features").map_or(0, |s| s.computed)
}

fn table(dir: &Path, set: &str) -> Vec<f32> {
    let path = dir.join(format!("data/out/features/{set}.parquet"));
    pipe::experiment::FeatureTable::read(&path).unwrap().values
}

/// Largest |value| of every cached state of every clip.
fn cached_scale(dir: &Path) -> f32 {
    let mut m = 0f32;
    for f in std::fs::read_dir(dir.join("data/cache/states"))
        .unwrap()
        .flatten()
    {
        let store = pipe::encoder::checkpoint::WeightStore::open(&f.path()).unwrap();
        for i in 7..=12 {
            let name = format!("hidden_states.{i}");
            let shape = store.shape(&name).unwrap().to_vec();
            let v = store.get(&name, &shape).unwrap();
            m = v.iter().fold(m, |m, x| m.max(x.abs()));
        }
    }
    m
}

#[test]
fn cached_sets_match_encoder_pooled_ones_within_the_f16_bound_and_are_keyed_apart() {
    let dir = setup();
    let d = dir.path();
    let first = run(d, &config("", ""), &[]);
    assert_eq!((computed(&first), first.passes, first.hits), (12, 3, 0));
    let encoded: Vec<Vec<f32>> = SETS.iter().map(|s| table(d, s)).collect();

    // Turning the cache on re-pools every covered set from f16 states: new
    // keys (never the encoder-pooled artifacts), one pass per clip to fill it.
    let cached = run(d, &config(CACHE, ""), &[]);
    assert_eq!((computed(&cached), cached.passes, cached.hits), (12, 3, 0));
    let files = std::fs::read_dir(d.join("data/cache/states"))
        .unwrap()
        .count();
    assert_eq!(files, 3, "one cache file per clip");
    let bound = 2f32.powi(-11) * cached_scale(d);
    let mut worst = 0f32;
    for (set, enc) in SETS.iter().zip(&encoded) {
        let got = table(d, set);
        assert_eq!(got.len(), enc.len(), "{set}");
        let err = got
            .iter()
            .zip(enc)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= bound + 1e-6,
            "{set}: {err} > 2^-11 * max|x| = {bound}"
        );
        assert!(
            err > 0.0,
            "{set}: bit-identical: was it pooled from f16 at all?"
        );
        worst = worst.max(err);
    }
    println!(
        "worst |cached - encoded| = {worst:.3e}, bound 2^-11 * max|x| = {bound:.3e} ({:.1}% of it)",
        100.0 * worst / bound
    );

    // Off again: the encoder-pooled artifacts are still there and still fresh.
    let off = run(d, &config("", ""), &[]);
    assert_eq!((computed(&off), off.passes), (0, 0));
    assert_eq!(table(d, "mean"), encoded[0]);
}

#[test]
fn a_warm_cache_serves_new_sets_without_the_encoder_and_hits_equal_the_filling_pass() {
    let dir = setup();
    let d = dir.path();
    let fill = run(d, &config(CACHE, ""), &[]);
    assert_eq!((fill.passes, fill.hits), (3, 0));
    assert!(
        fill.estimate[0]
            .contains("`ctl`: 3 clip(s) need an encoder pass (durations known once resampled)"),
        "{:?}",
        fill.estimate
    );
    let filled: Vec<Vec<f32>> = SETS.iter().map(|s| table(d, s)).collect();

    // A new pooling and a new layer set inside 7-12: no encoder pass.
    let new_sets = "[features.max]\nencoder = \"ctl\"\nlayers = \"10-11\"\npooling = \"max\"\n\
                    [features.one]\nencoder = \"ctl\"\nlayers = \"12\"\npooling = \"mean_std\"\n";
    let warm = run(d, &config(CACHE, new_sets), &[]);
    assert_eq!((computed(&warm), warm.passes, warm.hits), (6, 0, 3));
    assert_eq!(
        warm.estimate,
        ["encoder work: none (3 clip batch(es) pool from the states cache)"]
    );

    // Recomputing everything from the cache gives the bits the filling pass gave.
    let again = run(d, &config(CACHE, new_sets), &["features"]);
    assert_eq!((computed(&again), again.passes, again.hits), (18, 0, 3));
    for (set, before) in SETS.iter().zip(&filled) {
        assert_eq!(&table(d, set), before, "{set}: cache hit != filling pass");
    }

    // A set outside the cached states needs the encoder again (one pass per
    // clip, the covered sets of the batch still from the cache); the dry run
    // says so, with a time from the passes measured above.
    let low = format!(
        "{new_sets}[features.low]\nencoder = \"ctl\"\nlayers = \"1-4\"\npooling = \"mean\"\n"
    );
    let cold = run(d, &config(CACHE, &low), &[]);
    assert_eq!((computed(&cold), cold.passes, cold.hits), (3, 3, 0));
    let line = &cold.estimate[0];
    assert!(
        line.contains("`ctl`: 3 clip(s) need an encoder pass (3.0 s of audio): about")
            && line.contains("s per audio second, measured over 3 clip(s) on cpu"),
        "{line}"
    );
}

/// The bound the README states, on the oracle: pooling f16-rounded states
/// moves every pooled value by at most 2^-11 of the largest |state| it pools.
#[test]
fn pooling_f16_states_stays_within_two_to_the_minus_eleven() {
    let wave: Vec<f32> = (0..36_000)
        .map(|n| 0.4 * (n as f32 * 0.0571).sin() * (n as f32 * 0.0007).cos())
        .collect();
    let cpu = pipe::cpu::CpuBackend::new();
    for arch in ["mert", "muq"] {
        let cfg = ArchConfig::preset(arch, "control").unwrap();
        let w = cfg.random_weights(3).unwrap();
        let n = cfg.num_hidden_states();
        let enc = Encoder::new(&cpu, cfg, &w).unwrap();
        let all: Vec<usize> = (0..n).collect();
        let out = enc.encode(&cpu, &wave, &all).unwrap();
        let exact: Vec<Vec<f32>> = out.states.iter().map(|s| s.clone().unwrap()).collect();
        let rounded: Vec<Vec<f32>> = exact.iter().map(|s| round_f16(s)).collect();
        let hs = HiddenStates::dense(out.frames, out.hidden, &exact).unwrap();
        let hr = HiddenStates::dense(out.frames, out.hidden, &rounded).unwrap();
        let scale = exact.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
        for (layers, pooling) in [
            ("7-12", "mean"),
            ("7-12", "mean_std"),
            ("7-12", "stats4"),
            ("9-12", "multiscale"),
            ("0", "max"),
            ("all", "mean"),
            ("3,6,12", "stats4"),
        ] {
            let spec: FeatureSetSpec =
                serde_json::from_value(serde_json::json!({ "layers": layers, "pooling": pooling }))
                    .unwrap();
            let a = pool_many(std::slice::from_ref(&spec), &hs)
                .unwrap()
                .remove(0);
            let b = pool_many(std::slice::from_ref(&spec), &hr)
                .unwrap()
                .remove(0);
            let err = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            let bound = 2f32.powi(-11) * scale;
            assert!(
                err <= bound * 1.001 + 1e-7,
                "{arch} {spec}: {err} > {bound}"
            );
            let rel = a
                .iter()
                .zip(&b)
                .filter(|(x, _)| x.abs() > 1e-3)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs() / x.abs()));
            println!(
                "{arch} layers {layers} {pooling}: max |Δ| {err:.2e} = {:.3} of the bound; max |Δ|/|x| {rel:.2e}",
                err / bound
            );
        }
    }
}
