//! The one place a clip's feature vectors are computed, for the features
//! stage and for `pipe predict` alike: which encoder (loaded once, on the
//! device its entry picks), the rate check, one pass pooled for every set of
//! that encoder, the f16 states cache and its rounding, and how long passes
//! took. The stage plans and stores; `Scorer` decodes and applies heads;
//! neither touches an encoder.

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::backend_pool::PoolAndKeep;
use super::layers::LayerSelection;
use super::set::{FeatureKind, FeatureSet};
use super::spec::FeatureSetSpec;
use super::states_cache::{StatesCache, pool_cached};
use crate::audio::Pcm;
use crate::encoder::{EncoderConfig, EncoderOutput, EncoderRuntime, runtime};

/// What a clip's vectors are computed from.
#[derive(Clone, Copy, Debug)]
pub enum ClipInput<'a> {
    /// The clip's audio at the encoders' rate (baselines and encoded sets).
    Audio(&'a Pcm),
    /// The clip's performance MIDI file (symbolic sets).
    Midi(&'a Path),
}

/// What a clip's hidden states depend on besides its encoder's settings:
/// the (name, content key) of each input (the clip's audio, the weights
/// files). It names the clip's file in a states cache.
pub type StatesOf<'a> = &'a [(&'a str, String)];

/// Computes feature sets for clips; shared by worker threads.
pub struct Extractor {
    encoders: BTreeMap<String, EncoderConfig>,
    /// Loaded on first use, per encoder.
    loaded: BTreeMap<String, OnceLock<std::result::Result<Arc<EncoderRuntime>, String>>>,
    /// Per encoder with `cache_states`: the states its sets pool from in f16.
    caches: BTreeMap<String, StatesCache>,
    clocks: Mutex<BTreeMap<String, Clock>>,
}

/// One encoder's passes and cache hits in this process.
#[derive(Clone, Debug, Default)]
struct Clock {
    backend: String,
    in_flight: usize,
    since: Option<Instant>,
    /// Union of the passes' intervals.
    busy: f64,
    passes: usize,
    /// Sum of the passes' own durations.
    pass_seconds: f64,
    audio_seconds: f64,
    hits: usize,
    hit_seconds: f64,
}

/// One encoder's passes in this process, for the recorded rates.
#[derive(Clone, Debug, PartialEq)]
pub struct PassTotals {
    pub backend: String,
    pub passes: usize,
    /// Seconds the encoder was busy: the union of its passes' intervals,
    /// so parallel passes are not counted twice.
    pub busy_seconds: f64,
    pub audio_seconds: f64,
}

impl Extractor {
    /// The extractor of `encoders` (those the feature sets use: a cache
    /// needs the architecture). With `states_dir`, an encoder's
    /// `cache_states` are files there; without, its covered sets still pool
    /// from f16-rounded states, as the pipeline pooled them, with no file.
    pub fn new(
        encoders: BTreeMap<String, EncoderConfig>,
        states_dir: Option<&Path>,
    ) -> Result<Extractor> {
        let mut caches = BTreeMap::new();
        for (name, enc) in &encoders {
            let Some(layers) = &enc.cache_states else {
                continue;
            };
            let selection: LayerSelection = layers
                .parse()
                .with_context(|| format!("encoders.{name}.cache_states"))?;
            let n_states = runtime::arch_config(name, enc)?.num_hidden_states();
            let cache = StatesCache::new(states_dir.map(Path::to_path_buf), &selection, n_states)
                .with_context(|| format!("encoders.{name}.cache_states = {layers:?}"))?;
            caches.insert(name.clone(), cache);
        }
        let loaded = encoders
            .keys()
            .map(|k| (k.clone(), OnceLock::new()))
            .collect();
        Ok(Extractor {
            encoders,
            loaded,
            caches,
            clocks: Mutex::new(BTreeMap::new()),
        })
    }

    /// The entry of encoder `name`.
    pub fn config(&self, name: &str) -> Option<&EncoderConfig> {
        self.encoders.get(name)
    }

    /// Whether encoder `name` runs on a GPU (one clip at a time).
    pub fn runs_on_gpu(&self, name: &str) -> bool {
        self.encoders.get(name).is_some_and(runtime::runs_on_gpu)
    }

    /// Encoder `name`, loaded on first use (a failed load fails every use).
    pub fn encoder(&self, name: &str) -> Result<Arc<EncoderRuntime>> {
        let cell = self
            .loaded
            .get(name)
            .ok_or_else(|| anyhow!("no encoder `{name}`"))?;
        cell.get_or_init(|| {
            let loaded = EncoderRuntime::load(name, &self.encoders[name])
                .with_context(|| format!("loading encoder `{name}`"));
            if let Ok(rt) = &loaded {
                eprintln!("encoder `{name}` runs on {}", rt.backend_name());
            }
            loaded.map(Arc::new).map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!("{e}"))
    }

    /// Whether `spec` of encoder `encoder` is pooled from its f16 states.
    pub fn covers(&self, encoder: &str, spec: &FeatureSetSpec) -> bool {
        self.caches.get(encoder).is_some_and(|c| c.covers(spec))
    }

    /// The f16 state indices `spec` is pooled from, if its encoder's cache covers it.
    pub fn cached_states(&self, encoder: &str, spec: &FeatureSetSpec) -> Option<Vec<usize>> {
        let cache = self.caches.get(encoder)?;
        cache.covers(spec).then(|| cache.indices().to_vec())
    }

    /// The vectors of `sets` for one clip, in order: a baseline or symbolic
    /// set each on its own, or encoded sets of ONE encoder from one pass
    /// pooled for all of them (those its states cache covers pool from the
    /// f16 states, read from the cache file when `states_of` names one).
    pub fn compute(
        &self,
        sets: &[&FeatureSet],
        clip: ClipInput,
        states_of: Option<StatesOf>,
    ) -> Result<Vec<Vec<f32>>> {
        let Some(first) = sets.first() else {
            return Ok(Vec::new());
        };
        let FeatureKind::Encoded(_) = first.kind else {
            return sets.iter().map(|s| weight_free(s, clip)).collect();
        };
        let ClipInput::Audio(pcm) = clip else {
            bail!(
                "feature set `{}` encodes audio: encoder `{}` got a MIDI file",
                first.name,
                first.cfg.encoder
            );
        };
        let name = &first.cfg.encoder;
        let specs: Vec<FeatureSetSpec> = sets
            .iter()
            .map(|s| match &s.kind {
                FeatureKind::Encoded(spec) if s.cfg.encoder == *name => Ok(spec.clone()),
                _ => bail!(
                    "feature set `{}` is batched with encoder `{name}`'s sets",
                    s.name
                ),
            })
            .collect::<Result<_>>()?;
        let vectors = self.encode(name, pcm, &specs, states_of)?;
        // The pooling checks the states; this catches an f64 statistic
        // beyond f32's range.
        for (v, s) in vectors.iter().zip(sets) {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                bail!(
                    "encoder `{name}`: feature set `{}` value {i} is {} (out of f32 range)",
                    s.name,
                    v[i]
                );
            }
        }
        Ok(vectors)
    }

    /// Whether computing `sets` (of one encoder) for the clip whose states
    /// are `states_of` needs an encoder pass: false for weight-free sets and
    /// when the states cache holds the clip and covers every set.
    pub fn needs_pass(&self, sets: &[&FeatureSet], states_of: StatesOf) -> Result<bool> {
        let Some(first) = sets.first() else {
            return Ok(false);
        };
        if first.spec().is_none() {
            return Ok(false);
        }
        let name = &first.cfg.encoder;
        let all_covered = sets
            .iter()
            .all(|s| s.spec().is_some_and(|spec| self.covers(name, spec)));
        Ok(match self.cache_file(name, Some(states_of))? {
            Some(file) => !(all_covered && file.is_file()),
            None => true,
        })
    }

    /// One pass of encoder `name` over `pcm`, timed: vectors pooled (where
    /// the states are) for `specs`, and the states in `keep` downloaded whole.
    pub fn pass(
        &self,
        name: &str,
        pcm: &Pcm,
        specs: &[FeatureSetSpec],
        keep: &[usize],
    ) -> Result<(Vec<Vec<f32>>, EncoderOutput)> {
        let rt = self.encoder(name)?;
        let rate = rt.config().sample_rate();
        ensure!(
            pcm.sample_rate == rate,
            "clip audio is at {} Hz but encoder `{name}` takes {rate} Hz: set [resample] sample_rate = {rate}",
            pcm.sample_rate
        );
        self.timed_pass(name, &rt, pcm.duration_seconds(), || {
            rt.run(&pcm.samples, PoolAndKeep { specs, keep })
                .with_context(|| format!("encoder `{name}`"))
        })
    }

    /// One pass (or none, when the states cache holds the clip and covers
    /// every spec), pooled for every spec in order.
    fn encode(
        &self,
        name: &str,
        pcm: &Pcm,
        specs: &[FeatureSetSpec],
        states_of: Option<StatesOf>,
    ) -> Result<Vec<Vec<f32>>> {
        let Some(cache) = self.caches.get(name) else {
            return Ok(self.pass(name, pcm, specs, &[])?.0);
        };
        let file = self.cache_file(name, states_of)?;
        let cached = match &file {
            Some(f) if f.is_file() => match cache.read(f) {
                Ok(states) => Some(states),
                Err(e) => {
                    eprintln!("warning: states cache: {e:#}; encoding the clip again");
                    None
                }
            },
            _ => None,
        };
        let covered: Vec<bool> = specs.iter().map(|s| cache.covers(s)).collect();
        let pick = |want: bool| -> Vec<FeatureSetSpec> {
            (specs.iter().zip(&covered))
                .filter(|(_, c)| **c == want)
                .map(|(s, _)| s.clone())
                .collect()
        };
        let (from_cache, from_pass) = (pick(true), pick(false));
        if from_pass.is_empty()
            && let Some(states) = &cached
        {
            return self.timed_hit(name, || pool_cached(specs, states));
        }
        // One pass: the sets outside the cache pool on the device; the cached
        // states come back whole if the cache lacks this clip.
        let keep = if cached.is_none() && (file.is_some() || !from_cache.is_empty()) {
            cache.indices()
        } else {
            &[][..]
        };
        let (pooled, kept) = self.pass(name, pcm, &from_pass, keep)?;
        let states = match (cached, &file) {
            (Some(states), _) => Some(states),
            (None, Some(f)) => Some(cache.write(f, &kept)?),
            (None, None) if from_cache.is_empty() => None,
            (None, None) => Some(cache.round(&kept)?),
        };
        let mut cached_vectors = match &states {
            Some(states) if !from_cache.is_empty() => pool_cached(&from_cache, states)?,
            _ => Vec::new(),
        }
        .into_iter();
        let mut pass_vectors = pooled.into_iter();
        covered
            .iter()
            .map(|&c| {
                let next = if c {
                    cached_vectors.next()
                } else {
                    pass_vectors.next()
                };
                next.ok_or_else(|| anyhow!("encoder `{name}`: a feature set got no vector"))
            })
            .collect()
    }

    /// The states cache file of the clip whose states are `states_of`.
    fn cache_file(
        &self,
        name: &str,
        states_of: Option<StatesOf>,
    ) -> Result<Option<std::path::PathBuf>> {
        let (Some(cache), Some(enc), Some(inputs)) =
            (self.caches.get(name), self.encoders.get(name), states_of)
        else {
            return Ok(None);
        };
        let what = serde_json::to_string(&json!({
            "encoder": enc.output_params(),
            "inputs": inputs,
        }))?;
        Ok(cache.path(&what))
    }

    /// Times `workers` side-by-side passes over `seconds` of synthetic audio
    /// (after a 1 s warm-up pass: thread pools, first allocations), as a run
    /// encodes clips: (wall seconds, backend).
    pub fn time_passes(&self, name: &str, seconds: f64, workers: usize) -> Result<(f64, String)> {
        let rt = self.encoder(name)?;
        let arch = rt.config();
        let rate_hz = arch.sample_rate() as usize;
        let wave: Vec<f32> = crate::rng::pseudo((seconds * rate_hz as f64) as usize, 0)
            .iter()
            .map(|x| 0.1 * x)
            .collect();
        let spec: FeatureSetSpec = serde_json::from_value(json!({
            "layers": (arch.num_hidden_states() - 1).to_string(),
            "pooling": "mean",
        }))?;
        let specs = std::slice::from_ref(&spec);
        let pass = |w: &[f32]| rt.run(w, PoolAndKeep { specs, keep: &[] });
        pass(&wave[..rate_hz.min(wave.len())])?;
        let start = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers).map(|_| s.spawn(|| pass(&wave))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("calibration pass panicked")))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        Ok((start.elapsed().as_secs_f64(), rt.backend_name()))
    }

    fn timed_pass<T>(
        &self,
        encoder: &str,
        rt: &EncoderRuntime,
        audio_seconds: f64,
        pass: impl FnOnce() -> T,
    ) -> T {
        let start = Instant::now();
        {
            let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
            let c = clocks.entry(encoder.to_string()).or_default();
            if c.in_flight == 0 {
                c.since = Some(start);
            }
            c.in_flight += 1;
            if c.backend.is_empty() {
                c.backend = rt.backend_name();
            }
        }
        let out = pass();
        let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        let c = clocks.entry(encoder.to_string()).or_default();
        c.in_flight -= 1;
        c.passes += 1;
        c.pass_seconds += start.elapsed().as_secs_f64();
        c.audio_seconds += audio_seconds;
        if c.in_flight == 0
            && let Some(since) = c.since.take()
        {
            c.busy += since.elapsed().as_secs_f64();
        }
        out
    }

    fn timed_hit<T>(&self, encoder: &str, hit: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = hit();
        let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        let c = clocks.entry(encoder.to_string()).or_default();
        c.hits += 1;
        c.hit_seconds += start.elapsed().as_secs_f64();
        out
    }

    /// (encoder passes, clips pooled from the states cache) of `encoder` in this process.
    pub fn counts(&self, encoder: &str) -> (usize, usize) {
        let clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        clocks.get(encoder).map_or((0, 0), |c| (c.passes, c.hits))
    }

    /// Per encoder that ran a pass in this process: its totals.
    pub fn pass_totals(&self) -> BTreeMap<String, PassTotals> {
        let clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        clocks
            .iter()
            .filter(|(_, c)| c.passes > 0)
            .map(|(name, c)| {
                let t = PassTotals {
                    backend: c.backend.clone(),
                    passes: c.passes,
                    busy_seconds: c.busy,
                    audio_seconds: c.audio_seconds,
                };
                (name.clone(), t)
            })
            .collect()
    }

    /// One line per encoder that ran or hit its cache in this process.
    pub fn summary(&self) -> Vec<String> {
        let clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        clocks
            .iter()
            .map(|(name, c)| {
                let mut line = format!("encoder `{name}`: {} pass(es)", c.passes);
                if c.passes > 0 {
                    line += &format!(
                        " on {} ({:.1} s of audio, {:.3} s per clip, busy {:.1} s = {:.3} s per audio second)",
                        c.backend,
                        c.audio_seconds,
                        c.pass_seconds / c.passes as f64,
                        c.busy,
                        c.busy / c.audio_seconds.max(1e-9)
                    );
                }
                if c.hits > 0 || self.caches.contains_key(name) {
                    line += &format!(", {} clip(s) from the states cache", c.hits);
                    if c.hits > 0 {
                        line += &format!(" ({:.4} s per clip)", c.hit_seconds / c.hits as f64);
                    }
                }
                line
            })
            .collect()
    }
}

/// A baseline's or symbolic set's value for the clip.
fn weight_free(set: &FeatureSet, clip: ClipInput) -> Result<Vec<f32>> {
    match (&set.kind, clip) {
        (FeatureKind::Baseline(b), ClipInput::Audio(pcm)) => b.compute(pcm, set.cfg.max_frames),
        (FeatureKind::Symbolic(s), ClipInput::Midi(midi)) => s.compute(midi, set.cfg.max_frames),
        (FeatureKind::Symbolic(s), ClipInput::Audio(_)) => bail!(
            "feature set `{}` ({}) is computed from a performance MIDI file, not audio",
            set.name,
            s.name()
        ),
        (FeatureKind::Baseline(b), ClipInput::Midi(_)) => bail!(
            "feature set `{}` ({}) is computed from audio, not a MIDI file",
            set.name,
            b.name()
        ),
        (FeatureKind::Encoded(_), _) => bail!(
            "feature set `{}` of encoder `{}` is batched with weight-free sets",
            set.name,
            set.cfg.encoder
        ),
    }
}
