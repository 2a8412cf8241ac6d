//! `pipe`: score piano performances on the 19 PercePiano dimensions.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use pipe::cli;

#[derive(Parser)]
#[command(
    name = "pipe",
    version,
    about = "Score piano performances on the 19 PercePiano dimensions: a content-hashed, incremental pipeline"
)]
struct Args {
    /// Pipeline description.
    #[arg(short, long, global = true, default_value = "pipeline.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Materialize every stale output (or up to one stage).
    Run(cli::RunArgs),
    /// Which stages are fresh, stale or may be stale, why, and whether data/out is current.
    Status(cli::StatusArgs),
    /// Check the pipeline description (--check, the default), or print it with every
    /// include, default and matrix expanded (--expand).
    Config(cli::ConfigArgs),
    /// Print the stage graph (text, --dot or --mermaid).
    Dag(cli::DagArgs),
    /// SQL over the published tables under data/out (manifest, features_<set>, summary,
    /// per_fold, per_dimension, per_category, predictions, failed, history); no SQL: list them.
    Query(cli::QueryArgs),
    /// Run an encoder on one waveform and write every hidden state to safetensors.
    Encode(pipe::encoder::cli::EncodeArgs),
    /// Time MERT-95M/330M forward passes on random weights: ms per clip, real-time factor,
    /// GFLOP, share of a measured matmul peak, top ops; --predict: the study's E2 latency
    /// of scoring a recording end to end.
    Bench(pipe::bench::BenchArgs),
    /// Recorded runs, latest first: per experiment its params hash, R² (95% CI), MAE, r,
    /// dispersion and clip count (`data/out/history.parquet`).
    History {
        /// Only this experiment's rows.
        #[arg(long, value_name = "ID")]
        experiment: Option<String>,
    },
    /// What changed between two recorded runs: params per experiment (old -> new) and
    /// metric deltas, experiments added and removed. Default: the last two runs; a run is
    /// named by its id, a unique prefix of it, or ~N (N runs before the latest).
    Diff {
        /// The older run (default: the one before the latest).
        run_a: Option<String>,
        /// The newer run (default: the latest).
        run_b: Option<String>,
    },
    /// Score recordings with a trained experiment: the 19 dimensions per file (and per
    /// segment of a long one), on PercePiano's 1-7 rating scale.
    Predict(cli::PredictArgs),
    /// Serve a trained experiment over HTTP: POST /predict (an audio file) -> JSON scores;
    /// GET /health; GET /model (its model card and cross-validated metrics).
    Serve(cli::ServeArgs),
    /// Delete artifacts no live pipeline description needs (asks first).
    Clean(cli::CleanArgs),
    /// Rehash artifacts against their recorded hashes; --repair recomputes corrupt ones.
    Verify(cli::VerifyArgs),
}

fn main() -> ExitCode {
    pipe::gpu::quiet_device_select_layer();
    ignore_file_size_signal();
    keep_freed_memory();
    let args = Args::parse();
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Past a file-size limit (`ulimit -f`) the kernel sends SIGXFSZ, whose
/// default action kills the process without a word. Ignored, the write fails
/// with EFBIG instead and its error names the file.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: sets one signal's disposition to SIG_IGN, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// glibc maps each block over its mmap threshold (128 KiB to start) on its
/// own and unmaps it when freed, and hands the heap's free top back to the
/// kernel past 128 KiB; training frees and reallocates the same tensors
/// every step, so each round trip page-faults the pages back in and shoots
/// down TLBs on every core. Blocks up to 32 MiB (the largest threshold
/// glibc takes) now come from the heap, which keeps what is freed (trim
/// threshold 2 GiB, 256 MiB of top padding): the mel-CNN's training ran in
/// 0.7 s of system time instead of 10.8 s and 25 % less wall (farm-bench,
/// `pipe run --force train/A2 --until train`). The trim threshold alone
/// would freeze the mmap threshold at 128 KiB (3x slower), so it is set
/// only once the first call took.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 {
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        }
    }
}

fn dispatch(args: Args) -> Result<ExitCode> {
    let command = match args.command {
        // `encode` works on one file and needs no pipeline description.
        Command::Encode(encode) => {
            return pipe::encoder::cli::run(encode).map(|_| ExitCode::SUCCESS);
        }
        // `bench` uses random weights and needs no pipeline description either.
        Command::Bench(bench) if bench.predict => {
            return pipe::predict::bench::run(&bench).map(|_| ExitCode::SUCCESS);
        }
        Command::Bench(bench) => {
            return pipe::bench::run(&bench).map(|_| ExitCode::SUCCESS);
        }
        // `predict --model DIR` needs no pipeline description.
        Command::Predict(p) if p.model.model.is_some() => return cli::predict(None, &p),
        Command::Serve(s) if s.model.model.is_some() => return cli::serve(None, &s),
        other => other,
    };
    let config = pipe::config::Config::load(&args.config).with_context(|| {
        format!(
            "loading pipeline description (use -c FILE for another than {})",
            args.config.display()
        )
    })?;
    let path = &args.config;
    match command {
        Command::Run(run) => cli::run(path, &config, &run),
        Command::Status(a) => cli::status(path, &config, &a),
        Command::Dag(a) => cli::dag(path, &config, &a).map(|_| ExitCode::SUCCESS),
        Command::Config(a) => cli::config(path, &config, &a).map(|_| ExitCode::SUCCESS),
        Command::Clean(a) => cli::clean(path, &config, &a),
        Command::Verify(a) => cli::verify(path, &config, &a),
        Command::History { experiment } => {
            cli::history(&config, experiment.as_deref()).map(|_| ExitCode::SUCCESS)
        }
        Command::Diff { run_a, run_b } => {
            cli::diff(&config, run_a.as_deref(), run_b.as_deref()).map(|_| ExitCode::SUCCESS)
        }
        Command::Predict(p) => cli::predict(Some(&config), &p),
        Command::Serve(s) => cli::serve(Some(&config), &s),
        Command::Query(q) => cli::query(&config, &q).map(|_| ExitCode::SUCCESS),
        Command::Encode(_) | Command::Bench(_) => unreachable!("dispatched above"),
    }
}
