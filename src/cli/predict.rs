//! `pipe predict`: score recordings with a trained experiment's bundle.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::encoder::Device;
use crate::predict::bundle::{self, Bundle, ModelCard};
use crate::predict::output::{self, Scale, Scored};
use crate::predict::{LoadOptions, Scorer, Segmenting, Timings};

/// Which bundle, and how to load its encoder: shared by predict and serve.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// Experiment whose bundle scores (`data/out/models/<ID>`); default: the
    /// best-ranked experiment that ran on audio under held-out validation.
    #[arg(short, long, value_name = "ID")]
    pub experiment: Option<String>,
    /// A bundle folder (or its heads.safetensors) instead, e.g. one copied
    /// from another machine; no pipeline description needed.
    #[arg(long, value_name = "DIR", conflicts_with = "experiment")]
    pub model: Option<PathBuf>,
    /// Folder of the encoder's real weights, when not where the bundle says
    /// (their blake3 must match the bundle's).
    #[arg(long, value_name = "DIR")]
    pub weights: Option<PathBuf>,
    /// Where the encoder runs: auto, cpu or gpu (default: as trained).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<Device>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PredictArgs {
    /// Audio files (WAV, FLAC, MP3, OGG) or folders of them.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Also write the scores (every segment too): .parquet, .csv or .json.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Scores on the labels' own scale (PercePiano: mean rating / 7)
    /// instead of the 1-7 rating scale.
    #[arg(long)]
    pub label_scale: bool,
    /// `auto` (whole when no longer than the longest training clip, else
    /// windows of the median clip length), `whole`, or a length (`15s`, `15`).
    #[arg(long, default_value = "auto", value_name = "LEN")]
    pub segment: String,
    /// Start of each window after the previous one (default: the segment length).
    #[arg(long, value_name = "SECONDS")]
    pub hop: Option<String>,
    /// Draw each dimension over time to this PNG (one file per recording
    /// when several: `NAME-<recording>.png`).
    #[arg(long, value_name = "PNG")]
    pub plot: Option<PathBuf>,
    /// Time decode, resample, features and head per file (stderr), with the
    /// real-time factor.
    #[arg(long)]
    pub timings: bool,
}

fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "auto" => Ok(Device::Auto),
        "cpu" => Ok(Device::Cpu),
        "gpu" => Ok(Device::Gpu),
        other => Err(format!("`{other}`: expected auto, cpu or gpu")),
    }
}

/// `15s`, `15`, `1.5s`: seconds.
fn parse_seconds(s: &str, flag: &str) -> Result<f64> {
    let v: f64 = s
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} {s:?}: expected seconds like 15s or 7.5"))?;
    if !(v.is_finite() && v > 0.0) {
        bail!("{flag} {s:?}: must be a positive number of seconds");
    }
    Ok(v)
}

fn segmenting(args: &PredictArgs) -> Result<Segmenting> {
    let hop = args
        .hop
        .as_deref()
        .map(|h| parse_seconds(h, "--hop"))
        .transpose()?;
    Ok(match args.segment.as_str() {
        "auto" | "whole" if hop.is_some() => {
            bail!("--hop needs a segment length (--segment 15s)")
        }
        "auto" => Segmenting::Auto,
        "whole" => Segmenting::Whole,
        s => {
            let seconds = parse_seconds(s, "--segment")?;
            Segmenting::Windows {
                seconds,
                hop: hop.unwrap_or(seconds),
            }
        }
    })
}

/// The bundle `args` name: `--model`, `--experiment` under the config's
/// `data/out/models`, or the best-ranked one there.
pub fn resolve_bundle(config: Option<&Config>, args: &ModelArgs) -> Result<PathBuf> {
    if let Some(m) = &args.model {
        return Ok(m.clone());
    }
    let Some(config) = config else {
        bail!("no pipeline description: name a bundle with --model DIR");
    };
    let models = config.data_dir.join("out").join("models");
    let Some(id) = &args.experiment else {
        return best_bundle(config, &models);
    };
    let dir = models.join(id);
    if dir.join(bundle::HEADS_FILE).is_file() {
        return Ok(dir);
    }
    if !config.experiments.contains_key(id) {
        let known: Vec<&str> = config.experiments.keys().map(String::as_str).collect();
        let suggestion = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(id) || k.starts_with(id.as_str()))
            .map_or(String::new(), |k| format!(" (did you mean {k}?)"));
        bail!(
            "no experiment `{id}` in the pipeline description{suggestion}; its experiments: {}",
            known.join(", ")
        );
    }
    let exp = &config.experiments[id];
    for name in std::iter::once(&exp.features).chain(exp.second_features.as_ref()) {
        let fs = &config.features[name];
        if let Some(why) = (config.encoders.get(&fs.encoder))
            .and_then(|enc| crate::encoder::runtime::unavailable(&fs.encoder, enc))
        {
            bail!(
                "experiment {id} did not run: {why}; then `pipe run` trains it and exports its bundle"
            );
        }
    }
    bail!(
        "experiment {id} has no bundle in {}: run `pipe run` (it trains the experiment and \
         exports data/out/models/{id}); if it ran and failed, data/out/report.md says why",
        models.display()
    )
}

/// Whether a card's experiment can score audio and was validated on held-out pieces.
fn default_worthy(card: &ModelCard) -> bool {
    card.cv.validation != "test_fold"
        && card
            .inputs
            .iter()
            .all(|i| crate::features::Symbolic::parse(&i.config.encoder).is_none())
}

/// The best-ranked experiment (by `results/summary.parquet`) with a bundle
/// that scores audio under held-out validation.
fn best_bundle(config: &Config, models: &Path) -> Result<PathBuf> {
    let summary = config.data_dir.join("out/results/summary.parquet");
    let hint = "run `pipe run` first (it trains the experiments and exports their bundles), or pass --model DIR";
    if !summary.is_file() {
        bail!("no results yet ({} is missing): {hint}", summary.display());
    }
    let batch = crate::table::read_single(&summary)?;
    let ids = crate::table::column::<arrow_array::StringArray>(&batch, "experiment")?;
    for i in 0..batch.num_rows() {
        let dir = models.join(ids.value(i));
        let file = dir.join(bundle::HEADS_FILE);
        if !file.is_file() {
            continue;
        }
        let card: ModelCard = crate::tensors::read_metadata_json(&file, bundle::META_CARD)?;
        if default_worthy(&card) {
            return Ok(dir);
        }
    }
    bail!(
        "no experiment with a bundle under {}: {hint}",
        models.display()
    )
}

/// Loads the bundle and its encoders, saying on stderr what scores.
pub fn load_scorer(config: Option<&Config>, args: &ModelArgs) -> Result<Scorer> {
    let path = resolve_bundle(config, args)?;
    let bundle = Bundle::read(&path)?;
    let card = &bundle.card;
    let how = if args.experiment.is_none() && args.model.is_none() {
        " (the best-ranked experiment that ran; --experiment ID for another)"
    } else {
        ""
    };
    eprintln!(
        "model: experiment {}{how}, mean of {} fold heads, cross-validated R² {:.3} [{:.3}, {:.3}] on {} clips",
        card.experiment,
        bundle.heads.len(),
        card.cv.r2,
        card.cv.r2_ci[0],
        card.cv.r2_ci[1],
        card.cv.clips
    );
    if card.uses_control() {
        eprintln!(
            "note: its features come from a random-init CONTROL encoder, never pre-trained: \
             these scores are a control, not a foundation model's (README.md, \"Real encoder weights\")"
        );
    }
    let opts = LoadOptions {
        weights: args.weights.clone(),
        device: args.device,
    };
    // Loading says where each encoder runs.
    Scorer::load(bundle, &opts)
}

const AUDIO_EXTENSIONS: [&str; 5] = ["wav", "flac", "mp3", "ogg", "oga"];

/// The files to score: files as given, folders' audio files sorted by name.
fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading folder {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                        })
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!(
                    "folder {} holds no audio files ({})",
                    p.display(),
                    AUDIO_EXTENSIONS.join(", ")
                );
            }
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

pub fn predict(config: Option<&Config>, args: &PredictArgs) -> Result<ExitCode> {
    let how = segmenting(args)?;
    if let Some(o) = &args.output {
        // Checked before any work: a typo costs nothing.
        let ext = o.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !["parquet", "csv", "json"].contains(&ext) {
            bail!(
                "--output {}: unknown extension `{ext}` (use .parquet, .csv or .json)",
                o.display()
            );
        }
    }
    let files = expand(&args.files)?;
    let scorer = load_scorer(config, &args.model)?;
    let card = scorer.card().clone();
    let scale = Scale::of(&card, args.label_scale);
    let mut scored = Vec::with_capacity(files.len());
    for f in &files {
        let mut t = Timings::default();
        let result = scorer
            .audio_file(f, &mut t)
            .and_then(|pcm| scorer.score(&pcm, how, &mut t));
        match &result {
            Ok(s) => {
                if s.segments.len() > 1 {
                    eprintln!(
                        "{}: {:.1} s scored in {} segments ({:.1}-{:.1} s ...); overall = their length-weighted mean",
                        f.display(),
                        s.duration_s,
                        s.segments.len(),
                        s.segments[0].start_s,
                        s.segments[0].end_s
                    );
                }
                if args.timings {
                    eprintln!(
                        "{}: decode {:.1} ms, resample {:.1} ms, features {:.1} ms, head {:.2} ms = {:.1} ms for {:.2} s of audio (real-time factor {:.4})",
                        f.display(),
                        t.decode_s * 1e3,
                        t.resample_s * 1e3,
                        t.features_s * 1e3,
                        t.head_s * 1e3,
                        t.total() * 1e3,
                        s.duration_s,
                        t.total() / s.duration_s.max(1e-9)
                    );
                }
            }
            Err(e) => eprintln!("error: {}: {e:#}", f.display()),
        }
        scored.push(Scored {
            file: f.display().to_string(),
            result: result.map_err(|e| format!("{e:#}")),
        });
    }
    println!(
        "scores on {}: experiment {}{}",
        scale.name,
        card.experiment,
        if card.uses_control() {
            " (CONTROL encoder: random-init, never pre-trained)"
        } else {
            ""
        }
    );
    print!("{}", output::table(&card, &scale, &scored));
    if let Some(o) = &args.output {
        output::write(o, &card, &scale, &scored)?;
        eprintln!("wrote {}", o.display());
    }
    if let Some(p) = &args.plot {
        plot_all(p, &card, &scale, &scored)?;
    }
    let failed = scored.iter().filter(|s| s.result.is_err()).count();
    if failed > 0 {
        eprintln!("{failed} of {} file(s) could not be scored", scored.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--plot`: one PNG per scored recording.
fn plot_all(path: &Path, card: &ModelCard, scale: &Scale, scored: &[Scored]) -> Result<()> {
    let ok: Vec<(&str, &crate::predict::Scores)> = scored
        .iter()
        .filter_map(|s| s.result.as_ref().ok().map(|r| (s.file.as_str(), r)))
        .collect();
    for (file, s) in &ok {
        let out = if ok.len() == 1 {
            path.to_path_buf()
        } else {
            let stem = Path::new(file)
                .file_stem()
                .map_or("recording".into(), |n| n.to_string_lossy().into_owned());
            let base = path
                .file_stem()
                .map_or("curves".into(), |n| n.to_string_lossy().into_owned());
            path.with_file_name(format!("{base}-{stem}.png"))
        };
        let segs: Vec<(f64, f64, Vec<f32>)> = s
            .segments
            .iter()
            .map(|g| {
                let v = scale.apply(&g.scores).iter().map(|&x| x as f32).collect();
                (g.start_s, g.end_s, v)
            })
            .collect();
        let overall: Vec<f32> = scale.apply(&s.overall).iter().map(|&x| x as f32).collect();
        let mut png = Vec::new();
        let title = format!(
            "{}: {} over time",
            Path::new(file)
                .file_name()
                .map_or(file.to_string(), |n| n.to_string_lossy().into_owned()),
            card.experiment
        );
        crate::report::plots::score_curves(&title, &scale.name, &segs, &overall, &mut png)?;
        std::fs::write(&out, png).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Largest upload accepted, in MB.
    #[arg(long, default_value_t = 100.0)]
    pub max_mb: f64,
    /// Longest recording accepted, in seconds.
    #[arg(long, default_value_t = 1800.0)]
    pub max_seconds: f64,
    /// Requests scored at once (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn serve(config: Option<&Config>, args: &ServeArgs) -> Result<ExitCode> {
    use std::io::Write;
    let scorer = load_scorer(config, &args.model)?;
    let opts = crate::predict::serve::ServeOptions {
        addr: args.addr.clone(),
        max_bytes: (args.max_mb * 1e6) as u64,
        max_seconds: args.max_seconds,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
    };
    let handle = crate::predict::serve::start(scorer, opts)?;
    println!("listening on http://{}", handle.addr);
    std::io::stdout().flush()?;
    eprintln!("POST /predict (audio as the body or a multipart file), GET /health, GET /model");
    handle.join();
    Ok(ExitCode::SUCCESS)
}
