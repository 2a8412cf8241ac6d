//! `pipe bench` end to end on the tiny layout (debug build, a few seconds).

use std::process::Command;

fn bench(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args([
            "bench",
            "--model",
            "tiny",
            "--seconds",
            "1",
            "--repeat",
            "2",
            "--peak-dims",
            "64,96,128",
            "--peak-runs",
            "2",
        ])
        .args(extra)
        // No pipeline.toml is needed: run from an empty directory.
        .current_dir(std::env::temp_dir())
        .output()
        .expect("running pipe bench");
    assert!(
        out.status.success(),
        "pipe bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bench_text_prints_every_field() {
    let text = bench(&[]);
    for field in [
        "MERT-tiny on cpu-gemm",
        "74 frames",
        "ms per clip",
        "than real time (RTF ",
        " = compute / audio)",
        "4.933e-2 GFLOP per clip",
        "GFLOP/s =",
        "of the measured peak",
        "linear 64×96×128",
        "top ops ",
        "hottest ",
        "load ",
        "setup ",
    ] {
        assert!(text.contains(field), "{field:?} missing in\n{text}");
    }
}

#[test]
fn bench_json_is_one_object_per_model() {
    let text = bench(&["--json"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["model"], "MERT-tiny");
    assert_eq!(v["frames"], 74);
    assert_eq!(v["runs_ms"].as_array().unwrap().len(), 2);
    // Counted by hand in src/bench/flops.rs.
    assert_eq!(v["flops"]["conv_stack"], 31_608_192u64);
    for key in [
        "median_ms",
        "speedup",
        "rtf",
        "gflop_per_clip",
        "gflops",
        "peak_share",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    assert!(v["peak"]["gflops"].as_f64().unwrap() > 0.0);
    let top = v["top_ops"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert!(
        top.iter()
            .all(|o| o["op"].is_string() && o["ms"].as_f64().unwrap() >= 0.0)
    );
}

#[test]
fn bench_rejects_unknown_model_and_device() {
    for (args, want) in [
        (&["bench", "--model", "7b"][..], "unknown --model"),
        (&["bench", "--device", "tpu"][..], "unknown --device"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .args(args)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn bench_on_the_gpu_runs_there_or_names_the_missing_adapter() {
    let out = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args([
            "bench",
            "--model",
            "tiny",
            "--seconds",
            "1",
            "--repeat",
            "1",
            "--device",
            "gpu",
            "--json",
            "--peak-dims",
            "128,128,128",
            "--peak-runs",
            "1",
        ])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match pipe::gpu::Gpu::get() {
        Ok(gpu) => {
            assert!(out.status.success(), "{text}");
            let adapter = &gpu.info().name;
            assert!(
                text.contains(adapter.as_str()),
                "the report names the adapter {adapter}: {text}"
            );
        }
        Err(_) => {
            assert!(!out.status.success());
            assert!(text.contains("no Vulkan GPU adapter"), "{text}");
        }
    }
}

/// `pipe bench --predict` (E2) on the small control: every step timed, the
/// study's 10 s figures beside, and JSON rows whose total is the steps' sum.
#[test]
fn bench_predict_times_every_step_of_scoring() {
    let text = bench(&["--predict"]);
    for field in [
        "E2 MERT control on cpu-gemm",
        "1.0 s clip (mean of 2 runs",
        "decode",
        "resample",
        "extraction",
        "host pooling alone",
        "a bundle's 4 fold heads",
        "real-time factor",
    ] {
        assert!(text.contains(field), "missing {field:?} in:\n{text}");
    }
    let json = bench(&["--predict", "--json"]);
    let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(row["seconds"], 1.0);
    assert_eq!(row["runs"], 2);
    for k in [
        "decode_ms",
        "resample_ms",
        "extraction_ms",
        "pool_ms",
        "head_ms",
    ] {
        let v = row[k].as_f64().unwrap();
        assert!(v > 0.0 && v.is_finite(), "{k} = {v}");
    }
    // Without a study-length clip the study's line is not printed.
    assert!(!text.contains("study (its GPU"), "{text}");
}
