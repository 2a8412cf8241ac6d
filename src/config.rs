//! `pipeline.toml`: the schema, defaults and loading. Unknown keys, wrong
//! types and values out of range are errors naming the key's full path and
//! its line (`keys`); every relative path is taken relative to the file.

mod keys;
pub mod template;

use crate::bounds;
use crate::dataset::folds::Split;
use crate::dataset::{DatasetConfig, FoldStrategy};
use crate::encoder::EncoderConfig;
use crate::experiment::label_only::LabelOnly;
use crate::features::{FeatureSetConfig, weight_free_names};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Value;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where artifacts (`store/`), outputs (`out/`) and the run record live.
    /// The environment variable `PIPE_DATA_DIR` replaces it (see [`Config::load`]).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// A shared artifact store (`s3://bucket/prefix`, `gs://`, `az://`,
    /// `file:///abs/path`) where the shards of a run meet; `data_dir/store`
    /// is then its local cache. Default: none, artifacts live in
    /// `data_dir/store`. Credentials come from the environment, never from here.
    #[serde(default)]
    pub store: Option<String>,
    /// With `store`: the local cache's bound, in GB (least recently used
    /// artifacts the store holds are evicted past it).
    #[serde(default = "default_store_cache_gb")]
    pub store_cache_gb: f64,
    /// With `store`: how long a request is retried (exponential backoff)
    /// before its node fails with the reason.
    #[serde(default = "default_store_retry_seconds")]
    pub store_retry_seconds: f64,
    pub dataset: DatasetConfig,
    #[serde(default)]
    pub render: RenderConfig,
    #[serde(default)]
    pub decode: DecodeConfig,
    #[serde(default)]
    pub resample: ResampleConfig,
    /// Named encoders: real weights, or a seeded random-init control.
    #[serde(default)]
    pub encoders: BTreeMap<String, EncoderConfig>,
    /// Named feature sets: encoder (or a weight-free baseline) + layers + pooling.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureSetConfig>,
    /// Named experiments (the study's ids): a feature set + a head.
    #[serde(default)]
    pub experiments: BTreeMap<String, ExperimentConfig>,
    /// Bootstrap settings and the validation protocol.
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    #[serde(default)]
    pub report: ReportConfig,
    /// blake3 (hex) of the canonical config: the TOML's value tree as JSON
    /// with sorted keys, so comments, whitespace, key order and number
    /// spelling (`1e-3` = `0.001`) do not count. Set by [`Config::parse`].
    /// Names which config a run record and a publication belong to.
    #[serde(skip)]
    pub hash: String,
}

/// `[evaluation]`: the bootstrap's settings and which clips early stopping
/// looks at. Defaults: 1,000 resamples, 95%, seed 42, held-out pieces.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    pub resamples: usize,
    /// Central coverage, e.g. 0.95 for the 2.5th..97.5th percentiles.
    pub level: f64,
    pub seed: u64,
    /// `"held_out_pieces"` (ours) or `"test_fold"` (the study's protocol,
    /// optimistic by construction); an experiment's own `validation` wins.
    pub validation: crate::head::Validation,
    /// The splits every experiment is cross-validated on (an experiment's
    /// own `splits` wins): "piece", "performer", "piece_performer"
    /// (README, "Splits"). Default: piece only.
    pub splits: Vec<Split>,
    /// The label-only baselines ("what a model gets without listening"),
    /// run on every one of `splits`. Default: all five.
    pub label_only: Vec<LabelOnly>,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        let b = crate::metrics::BootstrapConfig::default();
        EvaluationConfig {
            resamples: b.resamples,
            level: b.level,
            seed: b.seed,
            validation: Default::default(),
            splits: vec![Split::Piece],
            label_only: LabelOnly::ALL.to_vec(),
        }
    }
}

impl EvaluationConfig {
    /// The bootstrap's settings (the evaluate nodes' key: the protocol is
    /// the train nodes').
    pub fn bootstrap(&self) -> crate::metrics::BootstrapConfig {
        crate::metrics::BootstrapConfig {
            resamples: self.resamples,
            level: self.level,
            seed: self.seed,
        }
    }
}

/// One row of the experiment matrix: which features, which head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A key of `[features]`.
    pub features: String,
    #[serde(default)]
    pub description: String,
    /// Head and training settings; unset keys take the study's defaults.
    #[serde(default)]
    pub head: crate::head::HeadConfig,
    /// The second feature set of a two-input head (`ensemble`, `concat`,
    /// `gated`): another encoder's frames of the same clips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_features: Option<String>,
    /// This experiment's validation protocol, overriding `[evaluation]
    /// validation` (e.g. a `-studyprotocol` copy of a row with `"test_fold"`).
    /// Resolved into `head.validation` when the config loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::head::Validation>,
    /// The splits it runs on, overriding `[evaluation] splits`. Resolved
    /// when the config loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<Vec<Split>>,
    /// Train every fold once per seed (`[42, 43, 44]`): the first is the
    /// experiment's own run (it replaces `head.seed` when the config
    /// loads: predictions, models, CIs and comparisons are that run's),
    /// the others measure training noise (the summary's mean and sd of R²
    /// over all of them). Empty: one run on `head.seed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
}

impl ExperimentConfig {
    /// The splits it runs on (resolved: its own, else `[evaluation]`'s).
    pub fn splits(&self) -> &[Split] {
        self.splits.as_deref().unwrap_or(&[Split::Piece])
    }
}

/// What the report shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// How many of the best experiments get per-dimension bars in the plot.
    #[serde(default = "default_best")]
    pub best: usize,
    /// Experiment of the predicted-vs-true scatter (default: the best one).
    #[serde(default)]
    pub scatter: Option<String>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            best: default_best(),
            scatter: None,
        }
    }
}

fn default_best() -> usize {
    3
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
/// The top-level keys about where artifacts live (left out of the config hash).
const STORE_KEYS: [&str; 3] = ["store", "store_cache_gb", "store_retry_seconds"];

fn default_store_cache_gb() -> f64 {
    20.0
}
fn default_store_retry_seconds() -> f64 {
    60.0
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    /// The SF2 used to synthesize MIDI.
    #[serde(default = "default_soundfont")]
    pub soundfont: PathBuf,
    #[serde(default = "default_render_rate")]
    pub sample_rate: u32,
    /// Release tail kept after the last note-off or pedal release, seconds.
    #[serde(default = "default_tail")]
    pub tail_seconds: f32,
    /// Linear output gain.
    #[serde(default = "default_gain")]
    pub gain: f32,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            soundfont: default_soundfont(),
            sample_rate: default_render_rate(),
            tail_seconds: default_tail(),
            gain: default_gain(),
        }
    }
}

fn default_soundfont() -> PathBuf {
    PathBuf::from("data/soundfont/piano.sf2")
}
fn default_render_rate() -> u32 {
    44_100
}
fn default_tail() -> f32 {
    1.0
}
fn default_gain() -> f32 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Shorter clips are rejected: MERT's receptive field is 400 samples at 24 kHz (16.7 ms)
    /// and MuQ needs more than 1024 samples; 25 ms covers the first, the encoder checks the rest.
    #[serde(default = "default_min_seconds")]
    pub min_seconds: f64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            min_seconds: default_min_seconds(),
        }
    }
}

fn default_min_seconds() -> f64 {
    0.025
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResampleConfig {
    /// The encoders' input rate.
    #[serde(default = "default_encoder_rate")]
    pub sample_rate: u32,
    #[serde(default)]
    pub quality: crate::audio::ResampleQuality,
}

impl Default for ResampleConfig {
    fn default() -> Self {
        ResampleConfig {
            sample_rate: default_encoder_rate(),
            quality: Default::default(),
        }
    }
}

fn default_encoder_rate() -> u32 {
    24_000
}

impl Config {
    /// Reads and validates `path`; relative paths inside become relative to its folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let base = base_of(path);
        let mut cfg =
            Config::parse(&text, base).with_context(|| format!("in {}", path.display()))?;
        // A machine of a sharded run keeps its cache where it has room (a
        // node's scratch disk); the config, and so its hash, stays the same.
        if let Some(dir) = std::env::var_os("PIPE_DATA_DIR").filter(|d| !d.is_empty()) {
            cfg.data_dir = PathBuf::from(dir);
        }
        Ok(cfg)
    }

    /// Parses `text` (templates expanded: [`template`]); every error names
    /// the key's full path and its line (and for a generated entry, its
    /// file, template and expansion).
    pub fn parse(text: &str, base: &Path) -> Result<Config> {
        let expanded = template::expand(text, base)?;
        let (mut cfg, locate): (Config, Locate) = if expanded.templated {
            // Parsed from the expansion written out, so an error has a
            // key path: placed at the line that wrote that key.
            let generated = toml::to_string(&expanded.tree)?;
            let keys = keys::KeyLines::new(&generated);
            let mut cfg: Config = toml::from_str(&generated).map_err(|e| {
                let msg = e.message().trim_end();
                let placed = expanded
                    .locate(msg)
                    .or_else(|| {
                        let (path, shown) = keys.error_key(&e)?;
                        expanded.place(&path, &format!("{shown}: {msg}"))
                    })
                    .unwrap_or_else(|| msg.to_string());
                anyhow::anyhow!("{placed}")
            })?;
            cfg.hash = canonical_hash_of(Value::Table(expanded.tree.clone()))?;
            (cfg, Box::new(move |m: &str| expanded.locate(m)))
        } else {
            let keys = keys::KeyLines::new(text);
            let mut cfg: Config = toml::from_str(text).map_err(|e| keys.toml_error(&e))?;
            cfg.hash = canonical_hash(text)?;
            let text = text.to_string();
            (
                cfg,
                Box::new(move |m: &str| keys::KeyLines::new(&text).locate(m)),
            )
        };
        cfg.resolve_paths(base);
        for exp in cfg.experiments.values_mut() {
            exp.head.validation = exp.validation.unwrap_or(cfg.evaluation.validation);
            if exp.splits.is_none() {
                exp.splits = Some(cfg.evaluation.splits.clone());
            }
            if let Some(&first) = exp.seeds.first() {
                exp.head.seed = first;
            }
        }
        cfg.validate().map_err(|e| {
            let msg = format!("{e:#}");
            anyhow::anyhow!("{}", locate(&msg).unwrap_or(msg))
        })?;
        Ok(cfg)
    }

    /// `path`'s configuration written out as one plain `pipeline.toml`:
    /// includes, defaults and matrices expanded, every path absolute, so
    /// it runs as it is from any folder (`pipe config --expand`).
    pub fn expand_file(path: &Path) -> Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let base = std::path::absolute(base_of(path))?;
        let wrap = |e: anyhow::Error| e.context(format!("in {}", path.display()));
        let mut cfg = Config::parse(&text, &base).map_err(wrap)?;
        let mut tree = template::expand(&text, &base).map_err(wrap)?.tree;
        for (keys, p) in cfg.paths_mut() {
            let Some((last, parents)) = keys.split_last() else {
                continue;
            };
            let mut t = &mut tree;
            for k in parents {
                t = match t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Table(toml::Table::new()))
                {
                    Value::Table(sub) => sub,
                    _ => anyhow::bail!("{}: expected a table", keys.join(".")),
                };
            }
            t.insert(
                last.clone(),
                Value::String(p.to_string_lossy().into_owned()),
            );
        }
        Ok(format!(
            "# {}, expanded by `pipe config --expand`: every include, default and matrix\n\
             # written out, every path absolute. Runs as it is from any folder.\n\n{}",
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display(),
            toml::to_string(&tree)?
        ))
    }

    /// Every path the configuration holds, by its key path (the one list
    /// that both resolving and `--expand` go through).
    fn paths_mut(&mut self) -> Vec<(Vec<String>, &mut PathBuf)> {
        let key = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut out = vec![
            (key(&["data_dir"]), &mut self.data_dir),
            (key(&["render", "soundfont"]), &mut self.render.soundfont),
        ];
        for (name, enc) in self.encoders.iter_mut() {
            if let Some(w) = &mut enc.weights {
                out.push((key(&["encoders", name, "weights"]), w));
            }
        }
        let (files, folds): (Vec<(&str, &mut PathBuf)>, _) = match &mut self.dataset {
            DatasetConfig::Percepiano {
                labels,
                metadata,
                midi_dir,
                folds,
                ..
            } => (
                vec![
                    ("labels", labels),
                    ("metadata", metadata),
                    ("midi_dir", midi_dir),
                ],
                folds,
            ),
            DatasetConfig::AudioFolder {
                audio_dir,
                labels,
                folds,
            } => (vec![("audio_dir", audio_dir), ("labels", labels)], folds),
        };
        for (k, p) in files {
            out.push((key(&["dataset", k]), p));
        }
        if let Some(p) = &mut folds.performer_split {
            out.push((key(&["dataset", "folds", "performer_split"]), p));
        }
        out
    }

    fn resolve_paths(&mut self, base: &Path) {
        for (_, p) in self.paths_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// A head's input kind must match its feature sets: sequence heads on
    /// frame sets, pooled heads on pooled sets, two-input heads on two frame sets.
    fn check_head_inputs(&self, id: &str, exp: &ExperimentConfig) -> Result<()> {
        use crate::head::InputKind;
        let arch = exp.head.arch;
        let fs = &self.features[&exp.features];
        let describe = |f: &FeatureSetConfig| {
            f.pooling.clone().unwrap_or_else(|| {
                if weight_free_names().contains(&f.encoder.as_str()) {
                    "statistics".into()
                } else {
                    "mean".into()
                }
            })
        };
        match arch.input() {
            InputKind::Pooled if fs.is_frames() => anyhow::bail!(
                "experiments.{id}.features = {:?}: that set stores frame sequences (pooling = \"frames\"); \
                 head.arch = {:?} trains on pooled vectors (sequence heads: attention, bilstm, transformer, per_dim, mel_cnn)",
                exp.features,
                arch.name()
            ),
            InputKind::Frames | InputKind::TwoFrames if !fs.is_frames() => anyhow::bail!(
                "experiments.{id}.head.arch = {:?} needs a frame-sequence feature set (pooling = \"frames\"), \
                 but features = {:?} is pooled ({})",
                arch.name(),
                exp.features,
                describe(fs)
            ),
            _ => {}
        }
        match (arch.input(), &exp.second_features) {
            (InputKind::TwoFrames, None) => anyhow::bail!(
                "experiments.{id}: head.arch = {:?} takes two feature sets: set second_features",
                arch.name()
            ),
            (InputKind::TwoFrames, Some(second)) => {
                let Some(fs2) = self.features.get(second) else {
                    let known: Vec<&str> = self.features.keys().map(String::as_str).collect();
                    anyhow::bail!(
                        "experiments.{id}.second_features = {second:?}: no such feature set (known: {})",
                        known.join(", ")
                    );
                };
                if !fs2.is_frames() {
                    anyhow::bail!(
                        "experiments.{id}.second_features = {second:?} is pooled ({}); head.arch = {:?} needs frame sequences (pooling = \"frames\")",
                        describe(fs2),
                        arch.name()
                    );
                }
            }
            (_, Some(second)) => anyhow::bail!(
                "experiments.{id}.second_features = {second:?}: only the two-input heads (ensemble, concat, gated) take a second feature set, head.arch is {:?}",
                arch.name()
            ),
            (_, None) => {}
        }
        Ok(())
    }

    /// Checks what serde cannot: ranges, references between tables. Each
    /// message starts with the key's full path (then placed at its line).
    fn validate(&self) -> Result<()> {
        bounds::check("store_cache_gb", self.store_cache_gb, &bounds::CACHE_GB)?;
        bounds::check(
            "store_retry_seconds",
            self.store_retry_seconds,
            &bounds::SECONDS,
        )?;
        let folds = self.dataset.folds();
        bounds::check("dataset.folds.k", folds.k, &bounds::FOLDS)?;
        if folds.strategy == FoldStrategy::Performer && folds.performer_split.is_none() {
            anyhow::bail!(
                "dataset.folds.strategy = \"performer\" needs dataset.folds.performer_split (a performer4fold.json)"
            );
        }
        if folds.performer_split.is_none() {
            let published = Split::PerformerPublished;
            if self.evaluation.splits.contains(&published) {
                anyhow::bail!(
                    "evaluation.splits names \"performer_published\", which needs dataset.folds.performer_split (a performer4fold.json)"
                );
            }
            if let Some((id, _)) =
                (self.experiments.iter()).find(|(_, e)| e.splits().contains(&published))
            {
                anyhow::bail!(
                    "experiments.{id}.splits names \"performer_published\", which needs dataset.folds.performer_split (a performer4fold.json)"
                );
            }
        }
        if let DatasetConfig::Percepiano {
            limit: Some(limit), ..
        } = &self.dataset
        {
            bounds::check("dataset.limit", *limit, &bounds::LIMIT)?;
        }
        bounds::check(
            "resample.sample_rate",
            self.resample.sample_rate,
            &bounds::SAMPLE_RATE,
        )?;
        bounds::check(
            "render.sample_rate",
            self.render.sample_rate,
            &bounds::RENDER_RATE,
        )?;
        bounds::check(
            "render.tail_seconds",
            f64::from(self.render.tail_seconds),
            &(0.0..=60.0),
        )?;
        if !self.render.gain.is_finite() {
            anyhow::bail!(
                "render.gain = {}: expected a finite number",
                self.render.gain
            );
        }
        bounds::check(
            "decode.min_seconds",
            self.decode.min_seconds,
            &bounds::SECONDS,
        )?;
        for (name, enc) in &self.encoders {
            if let Some(w) = enc.window_frames {
                // MuQ's window needs 2 frames (its conv subsampling).
                let lo = if enc.arch == "muq" { 2 } else { 1 };
                bounds::check(
                    &format!("encoders.{name}.window_frames"),
                    w,
                    &(lo..=*bounds::WINDOW_FRAMES.end()),
                )?;
            }
            if enc.arch != "mert" && enc.arch != "muq" {
                anyhow::bail!(
                    "encoders.{name}.arch = {:?}: expected \"mert\" or \"muq\"",
                    enc.arch
                );
            }
            match (&enc.weights, &enc.random) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => anyhow::bail!(
                    "encoders.{name}: set exactly one of `weights` (a folder) or `random` (mert: control, control_330m, 95m, 330m; muq: control, large)"
                ),
            }
            if weight_free_names().contains(&name.as_str()) {
                anyhow::bail!(
                    "encoders.{name}: that name is reserved for a weight-free feature set"
                );
            }
            if let Some(layers) = &enc.cache_states {
                layers
                    .parse::<crate::features::LayerSelection>()
                    .map_err(|e| anyhow::anyhow!("encoders.{name}.cache_states: {e}"))?;
            }
        }
        for (name, fs) in &self.features {
            if !self.encoders.contains_key(&fs.encoder)
                && !weight_free_names().contains(&fs.encoder.as_str())
            {
                let mut known: Vec<&str> = self.encoders.keys().map(String::as_str).collect();
                known.extend(weight_free_names());
                anyhow::bail!(
                    "features.{name}.encoder = {:?}: no such encoder (known: {})",
                    fs.encoder,
                    known.join(", ")
                );
            }
            bounds::check(
                &format!("features.{name}.max_frames"),
                fs.max_frames,
                &bounds::MAX_FRAMES,
            )?;
        }
        for (id, exp) in &self.experiments {
            if !self.features.contains_key(&exp.features) {
                let known: Vec<&str> = self.features.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "experiments.{id}.features = {:?}: no such feature set (known: {})",
                    exp.features,
                    known.join(", ")
                );
            }
            self.check_head_inputs(id, exp)?;
            let mut seen = std::collections::BTreeSet::new();
            if let Some(s) = exp.seeds.iter().find(|&&s| !seen.insert(s)) {
                anyhow::bail!(
                    "experiments.{id}.seeds = {:?}: seed {s} is listed twice (each seed is one more training run)",
                    exp.seeds
                );
            }
            exp.head
                .validate()
                .map_err(|e| anyhow::anyhow!("experiments.{id}.{e:#}"))?;
        }
        if let Some(s) = &self.report.scatter
            && !self.experiments.contains_key(s)
        {
            anyhow::bail!("report.scatter = {s:?}: no such experiment");
        }
        let b = self.evaluation.bootstrap();
        bounds::check("evaluation.resamples", b.resamples, &bounds::RESAMPLES)?;
        if !(b.level > 0.0 && b.level < 1.0) {
            anyhow::bail!("evaluation.level = {}: expected a level in (0, 1)", b.level);
        }
        bounds::check("report.best", self.report.best, &(1..=1000))?;
        Ok(())
    }
}

/// blake3 of a config text's canonical form (see [`Config::hash`]).
pub fn canonical_hash(text: &str) -> Result<String> {
    canonical_hash_of(toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?)
}

/// blake3 of a config tree's canonical form: a templated file hashes its
/// expansion, so it and the same study written out by hand are one config.
pub fn canonical_hash_of(mut tree: Value) -> Result<String> {
    // Where the artifacts are kept is not what the run is: a config with a
    // shared store and the same config without one are one config (their
    // records, publications and result tables agree).
    if let Some(top) = tree.as_table_mut() {
        for key in STORE_KEYS {
            top.remove(key);
        }
    }
    // serde_json's maps are sorted (no `preserve_order`), as the DAG's keys assume.
    let json = serde_json::to_string(&serde_json::to_value(tree)?)?;
    Ok(blake3::hash(json.as_bytes()).to_hex().to_string())
}

/// Places a validation message at the line of the key it names.
type Locate = Box<dyn Fn(&str) -> Option<String>>;

/// The folder a config file's relative paths are relative to.
fn base_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::FoldConfig;

    #[test]
    fn config_hash_ignores_layout_and_follows_values() {
        let base = Path::new(".");
        let a = Config::parse(
            &format!("{MINIMAL}\n[resample]\nquality = \"fast\"\n"),
            base,
        )
        .unwrap();
        // Same values: comments, blank lines, key order and number spelling differ.
        let reordered = r#"
# a comment
[resample]
quality   = "fast"
[dataset]
midi_dir = "midi"
metadata = "manifest.csv"
labels = "labels.json"
kind = "percepiano"
"#;
        let b = Config::parse(reordered, base).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.hash.len(), 64);
        let c = Config::parse(
            &format!("{MINIMAL}\n[resample]\nquality = \"high\"\n"),
            base,
        )
        .unwrap();
        assert_ne!(a.hash, c.hash);
        let x = |lr: &str| {
            let t = format!(
                "{MINIMAL}\n[experiments.e]\nfeatures = \"f\"\nhead = {{ lr = {lr} }}\n[features.f]\nencoder = \"raw_stats\"\n"
            );
            Config::parse(&t, base).unwrap().hash
        };
        assert_eq!(x("1e-3"), x("0.001"));
        assert_ne!(x("1e-3"), x("2e-3"));
        // Where the artifacts are kept is not part of it.
        let stored = Config::parse(
            &format!("store = \"s3://b/p\"\nstore_cache_gb = 5\n{MINIMAL}\n[resample]\nquality = \"fast\"\n"),
            base,
        )
        .unwrap();
        assert_eq!(stored.hash, a.hash);
        assert_eq!(stored.store.as_deref(), Some("s3://b/p"));
    }

    #[test]
    fn cache_states_is_checked_when_loading() {
        let enc = "[encoders.m]\narch = \"mert\"\nrandom = \"control\"\n";
        let ok = Config::parse(
            &format!("{MINIMAL}{enc}cache_states = \"7-12\"\n"),
            Path::new("."),
        );
        assert_eq!(
            ok.unwrap().encoders["m"].cache_states.as_deref(),
            Some("7-12")
        );
        let err = Config::parse(
            &format!("{MINIMAL}{enc}cache_states = \"7-x\"\n"),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("encoders.m.cache_states") && err.contains("7-x"),
            "{err}"
        );
    }

    pub(super) const MINIMAL_TEXT: &str = MINIMAL;
    const MINIMAL: &str = r#"
[dataset]
kind = "percepiano"
labels = "labels.json"
metadata = "manifest.csv"
midi_dir = "midi"
"#;

    /// The split `performer_published` needs the published split's file,
    /// and says so naming the key that asked for it.
    #[test]
    fn performer_published_needs_the_performer_split() {
        let exps = "[features.f]\nencoder = \"raw_stats\"\n\
                    [experiments.a]\nfeatures = \"f\"\nsplits = [\"piece\", \"performer_published\"]\n";
        let e = Config::parse(&format!("{MINIMAL}{exps}"), Path::new(".")).unwrap_err();
        assert!(
            format!("{e:#}").contains("experiments.a.splits names \"performer_published\", which needs dataset.folds.performer_split"),
            "{e:#}"
        );
        let with = format!(
            "{}\n[dataset.folds]\nperformer_split = \"split.json\"\n{exps}",
            MINIMAL.trim_end()
        );
        let cfg = Config::parse(&with, Path::new(".")).unwrap();
        assert_eq!(
            cfg.experiments["a"].splits(),
            [Split::Piece, Split::PerformerPublished]
        );
        let e = Config::parse(
            &format!("{MINIMAL}[evaluation]\nsplits = [\"performer_published\"]\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("evaluation.splits names"),
            "{e:#}"
        );
    }

    /// `seeds`: the first becomes the head's seed (the experiment's own
    /// run), and a seed listed twice is an error naming the key.
    #[test]
    fn seeds_set_the_heads_seed_and_repeats_are_errors() {
        let exps = "[features.f]\nencoder = \"raw_stats\"\n\
                    [experiments.a]\nfeatures = \"f\"\nseeds = [7, 8]\n\
                    [experiments.b]\nfeatures = \"f\"\n";
        let cfg = Config::parse(&format!("{MINIMAL}{exps}"), Path::new(".")).unwrap();
        assert_eq!(cfg.experiments["a"].head.seed, 7);
        assert_eq!(cfg.experiments["a"].seeds, [7, 8]);
        assert_eq!(cfg.experiments["b"].head.seed, 42);
        assert!(cfg.experiments["b"].seeds.is_empty());
        let e = Config::parse(
            &format!("{MINIMAL}{}", exps.replace("[7, 8]", "[7, 8, 7]")),
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("experiments.a.seeds = [7, 8, 7]: seed 7 is listed twice"),
            "{e:#}"
        );
    }

    /// `[evaluation] validation` sets every experiment's protocol, an
    /// experiment's own `validation` wins, the protocol is in the train
    /// node's key (the serialised head) only when it is the study's, and a
    /// typo is an error naming the key.
    #[test]
    fn validation_protocol_parses_overrides_and_names_typos() {
        use crate::head::Validation;
        let exps = "[features.f]\nencoder = \"raw_stats\"\n\
                    [experiments.ours]\nfeatures = \"f\"\n\
                    [experiments.ours-studyprotocol]\nfeatures = \"f\"\nvalidation = \"test_fold\"\n";
        let base = Path::new(".");
        let cfg = Config::parse(&format!("{MINIMAL}{exps}"), base).unwrap();
        assert_eq!(cfg.evaluation.validation, Validation::HeldOutPieces);
        let head = |c: &Config, id: &str| c.experiments[id].head.clone();
        assert_eq!(head(&cfg, "ours").validation, Validation::HeldOutPieces);
        assert_eq!(
            head(&cfg, "ours-studyprotocol").validation,
            Validation::TestFold
        );
        let key = |c: &Config, id: &str| serde_json::to_value(head(c, id)).unwrap();
        assert!(key(&cfg, "ours").get("validation").is_none());
        assert_eq!(key(&cfg, "ours-studyprotocol")["validation"], "test_fold");
        let all = Config::parse(
            &format!("{MINIMAL}[evaluation]\nvalidation = \"test_fold\"\n{exps}"),
            base,
        )
        .unwrap();
        assert_eq!(head(&all, "ours").validation, Validation::TestFold);
        assert_eq!(all.evaluation.bootstrap(), Default::default());
        // The two rows are one setup for the report's protocol comparison.
        let setup = |c: &Config, id: &str| {
            let e = &c.experiments[id];
            crate::report::setup_fingerprint(&e.features, e.second_features.as_deref(), &e.head)
        };
        assert_eq!(setup(&cfg, "ours"), setup(&cfg, "ours-studyprotocol"));
        let lr = Config::parse(
            &format!("{MINIMAL}{exps}").replace(
                "[experiments.ours]\nfeatures = \"f\"\n",
                "[experiments.ours]\nfeatures = \"f\"\nhead = { lr = 0.001 }\n",
            ),
            base,
        )
        .unwrap();
        assert_ne!(setup(&lr, "ours"), setup(&lr, "ours-studyprotocol"));

        let err = |extra: &str| {
            format!(
                "{:#}",
                Config::parse(&format!("{MINIMAL}{extra}"), base).unwrap_err()
            )
        };
        let e = err("[evaluation]\nvalidation = \"test_fodl\"\n");
        assert!(
            e.contains("evaluation.validation")
                && e.contains("test_fodl")
                && e.contains("test_fold"),
            "{e}"
        );
        let e = err(
            "[features.f]\nencoder = \"raw_stats\"\n[experiments.e]\nfeatures = \"f\"\nvalidation = \"held_out\"\n",
        );
        assert!(e.contains("experiments.e.validation"), "{e}");
        // Not a head key: one place to set it.
        let e = err(
            "[features.f]\nencoder = \"raw_stats\"\n[experiments.e]\nfeatures = \"f\"\nhead = { validation = \"test_fold\" }\n",
        );
        assert!(e.contains("validation"), "{e}");
    }

    #[test]
    fn defaults_and_relative_paths() {
        let cfg = Config::parse(MINIMAL, Path::new("/proj")).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/proj/data"));
        assert_eq!(cfg.resample.sample_rate, 24_000);
        assert_eq!(cfg.render.sample_rate, 44_100);
        let DatasetConfig::Percepiano { labels, folds, .. } = &cfg.dataset else {
            panic!("kind")
        };
        assert_eq!(labels, &PathBuf::from("/proj/labels.json"));
        assert_eq!(folds, &FoldConfig::default());
        assert_eq!(folds.k, 4);
        assert_eq!(folds.seed, 42);
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let text = format!("{MINIMAL}\n[resample]\nqualty = \"fast\"\n");
        let err = Config::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("qualty"), "{err}");
        assert!(err.contains("line 9"), "{err}");
    }

    #[test]
    fn unknown_key_inside_the_tagged_dataset_is_an_error() {
        let text = MINIMAL.replace("midi_dir", "midi_folder");
        let err = Config::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("midi_folder"), "{err}");
    }

    /// Errors inside `[dataset]` / `[dataset.folds]` pointed at the table's
    /// header and did not name the key ("line 3 … invalid type").
    #[test]
    fn dataset_errors_name_the_full_key_and_its_own_line() {
        let err = |text: &str| format!("{:#}", Config::parse(text, Path::new(".")).unwrap_err());
        let e = err(&format!("{MINIMAL}lables = \"x\"\n"));
        assert!(
            e.starts_with("line 7: dataset.lables: unknown field `lables`"),
            "{e}"
        );
        let e = err(&format!(
            "{MINIMAL}\n[dataset.folds]\nseed = 1\nk = \"four\"\n"
        ));
        assert!(
            e.starts_with("line 10: dataset.folds.k = \"four\": invalid type"),
            "{e}"
        );
        let e = err(&format!("{MINIMAL}audio_dir = \"a\"\n"));
        assert!(
            e.starts_with("line 7: dataset.audio_dir: not a key of kind = \"percepiano\""),
            "{e}"
        );
        let e = err(&MINIMAL.replace("midi_dir = \"midi\"\n", ""));
        assert!(e.starts_with("line 2: dataset.midi_dir: missing"), "{e}");
        let e = err(&MINIMAL.replace("kind = \"percepiano\"\n", ""));
        assert!(
            e.starts_with("line 2: dataset: missing field `kind`"),
            "{e}"
        );
        let e = err(&format!("{MINIMAL}limit = 0\n"));
        assert!(
            e.starts_with("line 7: dataset.limit = 0: outside the allowed range"),
            "{e}"
        );
    }

    /// `resample.sample_rate = 4000000000` aborted the process allocating
    /// 4.8 TB; every size-like setting is bounded at load.
    #[test]
    fn size_settings_are_bounded_with_key_line_and_range() {
        let cases = [
            (
                "[resample]\nsample_rate = 4000000000\n",
                "resample.sample_rate = 4000000000",
            ),
            (
                "[render]\nsample_rate = 8000\n",
                "render.sample_rate = 8000",
            ),
            (
                "[render]\ntail_seconds = 1e9\n",
                "render.tail_seconds = 1000000000",
            ),
            ("[decode]\nmin_seconds = -1.0\n", "decode.min_seconds = -1"),
            ("[dataset.folds]\nk = 100000\n", "dataset.folds.k = 100000"),
            (
                "[encoders.m]\narch = \"mert\"\nrandom = \"control\"\nwindow_frames = 0\n",
                "encoders.m.window_frames = 0",
            ),
            (
                "[encoders.q]\narch = \"muq\"\nrandom = \"control\"\nwindow_frames = 1\n",
                "encoders.q.window_frames = 1",
            ),
            (
                "[features.f]\nencoder = \"raw_stats\"\nmax_frames = 0\n",
                "features.f.max_frames = 0",
            ),
            (
                "[features.f]\nencoder = \"raw_stats\"\n[experiments.e]\nfeatures = \"f\"\nhead = { hidden = 1000000000 }\n",
                "experiments.e.head.hidden = 1000000000",
            ),
            ("[evaluation]\nresamples = 0\n", "evaluation.resamples = 0"),
        ];
        for (extra, want) in cases {
            let text = format!("{MINIMAL}{extra}");
            let e = format!("{:#}", Config::parse(&text, Path::new(".")).unwrap_err());
            assert!(e.contains(want) && e.contains("allowed range"), "{e}");
            // The error sits at the key's own line.
            let key = want.split(' ').next().unwrap();
            let last = key.rsplit('.').next().unwrap();
            let line = text
                .lines()
                .position(|l| l.contains(&format!("{last} = ")))
                .unwrap()
                + 1;
            assert!(e.starts_with(&format!("line {line}: ")), "{e}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::parse(
            &format!("{MINIMAL}\n[resample]\nquality = \"ultra\"\n"),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ultra"), "{err}");
        let err = Config::parse(
            &format!("{MINIMAL}\n[dataset.folds]\nk = 1\n"),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("dataset.folds.k"), "{err}");
        let err = Config::parse(
            &format!("{MINIMAL}\n[dataset.folds]\nstrategy = \"performer\"\n"),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("performer_split"), "{err}");
    }

    /// Feature sets of every kind plus one experiment `X` with `exp` as its body.
    fn with_experiment(exp: &str) -> Result<Config> {
        let text = format!(
            "{MINIMAL}
[encoders.m]
arch = \"mert\"
random = \"control\"
[encoders.q]
arch = \"muq\"
random = \"control\"
[features.pooled]
encoder = \"m\"
[features.frames]
encoder = \"m\"
pooling = \"frames\"
[features.muq_frames]
encoder = \"q\"
pooling = \"frames\"
[features.mel]
encoder = \"mel_frames\"
[experiments.X]
{exp}
"
        );
        Config::parse(&text, Path::new("."))
    }

    fn err(exp: &str) -> String {
        format!("{:#}", with_experiment(exp).unwrap_err())
    }

    #[test]
    fn head_inputs_must_match_their_feature_sets() {
        // Every kind on the right input parses.
        for ok in [
            "features = \"pooled\"",
            "features = \"pooled\"\nhead = { hidden = [512, 512], lr_schedule = \"cosine\", grad_clip = 1.0 }",
            "features = \"frames\"\nhead = { arch = \"bilstm\" }",
            "features = \"mel\"\nhead = { arch = \"mel_cnn\" }",
            "features = \"frames\"\nsecond_features = \"muq_frames\"\nhead = { arch = \"gated\" }",
        ] {
            with_experiment(ok).unwrap_or_else(|e| panic!("{ok}: {e:#}"));
        }
        let e = err("features = \"pooled\"\nhead = { arch = \"attention\" }");
        assert!(
            e.contains("experiments.X.head.arch") && e.contains("frame-sequence"),
            "{e}"
        );
        let e = err("features = \"frames\"");
        assert!(
            e.contains("experiments.X.features") && e.contains("pooled vectors"),
            "{e}"
        );
        let e = err("features = \"frames\"\nhead = { arch = \"concat\" }");
        assert!(
            e.contains("experiments.X") && e.contains("second_features"),
            "{e}"
        );
        let e = err(
            "features = \"frames\"\nsecond_features = \"pooled\"\nhead = { arch = \"ensemble\" }",
        );
        assert!(
            e.contains("experiments.X.second_features") && e.contains("pooled"),
            "{e}"
        );
        let e = err(
            "features = \"frames\"\nsecond_features = \"muq_frames\"\nhead = { arch = \"attention\" }",
        );
        assert!(
            e.contains("experiments.X.second_features") && e.contains("two-input"),
            "{e}"
        );
        let e = err(
            "features = \"frames\"\nhead = { arch = \"per_dim\", per_dim_dims = [\"timing\", \"tempoo\"] }",
        );
        assert!(
            e.contains("experiments.X.head.per_dim_dims") && e.contains("tempoo"),
            "{e}"
        );
        let e = err(
            "features = \"frames\"\nhead = { arch = \"mel_cnn\", cnn_channels = [4], cnn_pools = 2 }",
        );
        assert!(e.contains("experiments.X.head.cnn_pools"), "{e}");
        // The per-dimension MLP trains with the study's optimiser, on one trunk layer.
        with_experiment("features = \"pooled\"\nhead = { arch = \"mlp_per_dim\", grad_clip = 1.0, lr_schedule = \"cosine\" }")
            .unwrap();
        let e = err("features = \"pooled\"\nhead = { arch = \"mlp_per_dim\", hidden = [64, 64] }");
        assert!(e.contains("experiments.X.head.arch"), "{e}");
        assert!(e.contains("one hidden width"), "{e}");
    }
}

/// Templates (`include`, `[defaults]`, `[[matrix.*]]`): the shipped study
/// against the hand-written listing it replaced, `--expand`, and errors.
#[cfg(test)]
mod template_tests {
    use super::*;

    const ROOT: &str = env!("CARGO_MANIFEST_DIR");

    fn without_hash(mut c: Config) -> Config {
        c.hash.clear();
        c
    }

    /// The shipped pipeline.toml (a short main file, the study in
    /// study/*.toml) parses to exactly the configuration of the 772-line
    /// listing it replaced (tests/fixtures/pipeline_d9d88b5.toml, main at
    /// d9d88b5): every encoder, feature set, experiment (head, protocol,
    /// description) and setting. Node keys are functions of this parsed
    /// configuration and the inputs' bytes, so a store made before is fresh.
    /// Since then, the splits each experiment runs on were added (the
    /// listing's are all `["piece"]`) and the seeds some train with (the
    /// first is the listing's `head.seed`): compared with those set aside; and
    /// one experiment, `B0-control-fixedepoch` (B0-control's setup under
    /// `validation = "held_out_epoch"`), and the published performer split
    /// the split `performer_published` reads (`dataset.folds.performer_split`).
    #[test]
    fn shipped_study_is_the_listing_it_replaced() {
        let root = Path::new(ROOT);
        let new = Config::load(&root.join("pipeline.toml")).unwrap();
        let listing =
            std::fs::read_to_string(root.join("tests/fixtures/pipeline_d9d88b5.toml")).unwrap();
        let old = Config::parse(&listing, root).unwrap();
        assert!(
            old.experiments
                .values()
                .all(|e| e.splits() == [Split::Piece])
        );
        let three = [Split::Piece, Split::Performer, Split::PiecePerformer];
        assert_eq!(new.evaluation.splits, three);
        let on_three: Vec<&str> = (new.experiments.iter())
            .filter(|(_, e)| e.splits().starts_with(&three))
            .map(|(id, _)| id.as_str())
            .collect();
        let published: Vec<&str> = (new.experiments.iter())
            .filter(|(_, e)| e.splits().contains(&Split::PerformerPublished))
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(published, ["B0-control", "B0-mert330"]);
        assert_eq!(
            on_three,
            [
                "A2",
                "A3",
                "B0-control",
                "B0-mert330",
                "B1b-control",
                "B1b-mert330",
                "D1a-control",
                "D1a-mert330",
                "D8-muq",
                "D8-muq-control",
                "E3-symbolic",
                "E3-symbolic-notes",
                "logmel_stats-mlp",
                "raw_stats-mlp"
            ]
        );
        let (mut new, mut old) = (new, old);
        for c in [&mut new, &mut old] {
            c.evaluation.splits = vec![Split::Piece];
            for e in c.experiments.values_mut() {
                e.splits = None;
                e.seeds.clear();
            }
        }
        assert_eq!(new.encoders, old.encoders);
        assert_eq!(new.features.len(), 42);
        let fixed = new.experiments.remove("B0-control-fixedepoch").unwrap();
        let b0 = &new.experiments["B0-control"];
        assert_eq!(fixed.head.validation, crate::head::Validation::HeldOutEpoch);
        assert_eq!(
            (&fixed.features, &fixed.head.hidden, fixed.head.max_epochs),
            (&b0.features, &b0.head.hidden, b0.head.max_epochs)
        );
        assert_eq!(new.experiments.len(), 75);
        for (name, f) in &old.features {
            assert_eq!(new.features.get(name), Some(f), "feature set {name}");
        }
        for (id, e) in &old.experiments {
            assert_eq!(new.experiments.get(id), Some(e), "experiment {id}");
        }
        let DatasetConfig::Percepiano { folds, .. } = &mut new.dataset else {
            panic!("the shipped dataset is PercePiano")
        };
        let published = folds.performer_split.take().unwrap();
        assert!(published.ends_with("data/percepiano/splits/performer4fold.json"));
        assert_eq!(without_hash(new), without_hash(old));
    }

    /// `Config::expand_file` writes a plain file (no template key left)
    /// that, saved in another folder, parses to the same configuration.
    #[test]
    fn expanded_file_runs_from_another_folder() {
        let root = Path::new(ROOT);
        let text = Config::expand_file(&root.join("pipeline.toml")).unwrap();
        let tree: toml::Table = toml::from_str(&text).unwrap();
        for key in ["include", "defaults", "matrix"] {
            assert!(!tree.contains_key(key), "{key} left in the expansion");
        }
        let elsewhere = tempfile::tempdir().unwrap();
        let copy = elsewhere.path().join("variant.toml");
        std::fs::write(&copy, &text).unwrap();
        let moved = Config::parse(&text, elsewhere.path()).unwrap();
        let here = Config::parse(
            &std::fs::read_to_string(root.join("pipeline.toml")).unwrap(),
            root,
        )
        .unwrap();
        assert_eq!(moved.data_dir, root.join("data"));
        assert_eq!(without_hash(moved), without_hash(here));
        // Expanding the expansion changes nothing but its header.
        let again = Config::expand_file(&copy).unwrap();
        let body = |t: &str| t.split_once("\n\n").unwrap().1.to_string();
        assert_eq!(body(&again), body(&text));
    }

    /// A plain file (no template key) keeps its canonical hash: its
    /// expansion is itself.
    #[test]
    fn a_plain_file_is_its_own_expansion() {
        let listing =
            std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/pipeline_d9d88b5.toml"))
                .unwrap();
        let ex = template::expand(&listing, Path::new(ROOT)).unwrap();
        assert!(!ex.templated);
        assert_eq!(
            canonical_hash_of(Value::Table(ex.tree)).unwrap(),
            canonical_hash(&listing).unwrap()
        );
    }

    /// A folder with `pipeline.toml` (MINIMAL + `extra`) and `study/x.toml`.
    fn study(extra: &str, included: &str) -> (tempfile::TempDir, Result<Config>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("study")).unwrap();
        std::fs::write(dir.path().join("study/x.toml"), included).unwrap();
        let main = format!(
            "include = [\"study/*.toml\"]\n{}{extra}",
            tests::MINIMAL_TEXT
        );
        std::fs::write(dir.path().join("pipeline.toml"), &main).unwrap();
        let cfg = Config::load(&dir.path().join("pipeline.toml"));
        (dir, cfg)
    }

    const BLOCK: &str = r#"
[features.a]
encoder = "raw_stats"

[features.b]
encoder = "logmel_stats"

[[matrix.experiments]]
name = "${row.id}-${set.id}"
features = "${set.id}"
description = "${row.what} on ${set.id}"
head = { hidden = [64] }
axes.set = [{ id = "a" }, { id = "b", with = { head = { max_epochs = 7 } } }]
axes.row = [
  { id = "B0", what = "the baseline" },
  { id = "C1b", what = "1 - CCC", with = { head = { loss = "ccc" } } },
]
"#;

    #[test]
    fn a_matrix_makes_every_combination_and_defaults_fill_the_rest() {
        let main = "\n[defaults.head]\nlr_schedule = \"cosine\"\nmax_epochs = 50\n";
        let (_dir, cfg) = study(main, BLOCK);
        let cfg = cfg.unwrap();
        let ids: Vec<&str> = cfg.experiments.keys().map(String::as_str).collect();
        assert_eq!(ids, ["B0-a", "B0-b", "C1b-a", "C1b-b"]);
        let e = &cfg.experiments["C1b-b"];
        assert_eq!(e.features, "b");
        assert_eq!(e.description, "1 - CCC on b");
        assert_eq!(e.head.loss, crate::head::LossKind::Ccc);
        assert_eq!(e.head.hidden.0, vec![64]);
        // The axis's own value wins over [defaults.head]; defaults fill the rest.
        assert_eq!(e.head.max_epochs, 7);
        assert_eq!(cfg.experiments["B0-a"].head.max_epochs, 50);
        assert_eq!(e.head.lr_schedule, crate::head::LrSchedule::Cosine);
        assert_eq!(
            cfg.experiments["B0-a"].head.loss,
            crate::head::LossKind::Mse
        );
    }

    #[test]
    fn inherit_false_takes_no_defaults() {
        let main = "\n[defaults.head]\nmax_epochs = 50\n";
        let plain = "[features.a]\nencoder = \"raw_stats\"\n[experiments.x]\nfeatures = \"a\"\ninherit = false\n";
        let (_dir, cfg) = study(main, plain);
        assert_eq!(cfg.unwrap().experiments["x"].head.max_epochs, 200);
        let (_dir, cfg) = study(main, &plain.replace("false", "\"no\""));
        let err = format!("{:#}", cfg.unwrap_err());
        assert!(
            err.contains(
                "study/x.toml line 5: experiments.x.inherit = \"no\": expected true or false"
            ),
            "{err}"
        );
    }

    #[test]
    fn template_errors_name_the_file_line_template_and_expansion() {
        let (_d, cfg) = study("", &BLOCK.replace("${row.what} on", "${row.wat} on"));
        let err = format!("{:#}", cfg.unwrap_err());
        assert!(
            err.contains("study/x.toml line 11: matrix.experiments.0.description"),
            "{err}"
        );
        assert!(
            err.contains("row has no field `wat` (fields: id, what)"),
            "{err}"
        );
        assert!(err.contains("with row = B0, set = a"), "{err}");

        // A wrong head value set by one axis value: placed at that value's line.
        let (_d, cfg) = study("", &BLOCK.replace("loss = \"ccc\"", "loss = \"cc\""));
        let err = format!("{:#}", cfg.unwrap_err());
        assert!(err.contains("study/x.toml line 16:"), "{err}");
        assert!(err.contains("experiments.C1b-a.head.loss"), "{err}");
        assert!(err.contains("unknown variant `cc`"), "{err}");
        assert!(err.contains("made by matrix.experiments.0 `${row.id}-${set.id}` in study/x.toml with row = C1b, set = a"), "{err}");

        // A validation error (a feature set that does not exist), from the body.
        let (_d, cfg) = study(
            "",
            &BLOCK.replace("features = \"${set.id}\"", "features = \"x${set.id}\""),
        );
        let err = format!("{:#}", cfg.unwrap_err());
        assert!(
            err.contains("study/x.toml line 10: experiments.B0-a.features"),
            "{err}"
        );

        // Two entries of one name.
        let (_d, cfg) = study("\n[experiments.B0-a]\nfeatures = \"a\"\n", BLOCK);
        let err = format!("{:#}", cfg.unwrap_err());
        assert!(err.contains("experiments.B0-a already exists"), "{err}");

        // What belongs in the main file, in an included one.
        let (_d, cfg) = study("", "[decode]\nmin_seconds = 1.0\n");
        let err = format!("{:#}", cfg.unwrap_err());
        assert!(
            err.contains("study/x.toml line 1: decode: an included file may set"),
            "{err}"
        );

        // An include that matches nothing.
        let dir = tempfile::tempdir().unwrap();
        let main = format!("include = [\"none/*.toml\"]\n{}", tests::MINIMAL_TEXT);
        let err = format!("{:#}", Config::parse(&main, dir.path()).unwrap_err());
        assert!(
            err.contains("line 1: include: \"none/*.toml\": no file matches"),
            "{err}"
        );
    }

    /// A relative path in an included file is relative to that file.
    #[test]
    fn included_paths_are_relative_to_their_file() {
        let enc = "[encoders.m]\narch = \"mert\"\nweights = \"../models/m\"\n";
        let (dir, cfg) = study("", enc);
        let cfg = cfg.unwrap();
        assert_eq!(
            cfg.encoders["m"].weights.as_deref(),
            Some(dir.path().join("study/../models/m").as_path())
        );
    }
}
