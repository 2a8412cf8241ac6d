//! The features stage's encoder work: which batches (one encoder, one clip)
//! need an encoder pass and which pool from the hidden-state cache, how long
//! passes take on this machine, and the `--dry-run` estimate made from that.
//!
//! Pass times are recorded per encoder in `data/cache/encoder-rates.json`
//! (seconds the encoder was busy per second of audio: the union of its
//! passes' intervals, so parallel passes are not counted twice) after each
//! run that encoded; an encoder never timed here is timed when a dry run
//! needs its estimate (one 10 s pass per worker, side by side, as a run
//! encodes clips).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::dag::{Node, Plan};
use crate::encoder::{EncoderConfig, EncoderRuntime, runtime};
use crate::features::states_cache::StatesCache;
use crate::features::{FeatureSet, FeatureSetSpec, LayerSelection};

/// The typed plan of one node: which set, which clip.
pub(super) struct FeatureNode {
    pub(super) set: Arc<FeatureSet>,
    pub(super) clip: String,
    /// Pooled from the encoder's states cache.
    pub(super) covered: bool,
}

/// Length of the synthetic clip a dry run times an encoder on.
const CALIBRATION_SECONDS: f64 = 10.0;

/// Per encoder: its cache (if `cache_states` is set) and how its passes went.
pub struct EncoderPasses {
    data_dir: PathBuf,
    encoders: BTreeMap<String, EncoderConfig>,
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

/// A recorded throughput of one encoder entry on one kind of device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Rate {
    /// The entry's key params: a different model is a different rate.
    params: serde_json::Value,
    gpu: bool,
    backend: String,
    busy_seconds: f64,
    audio_seconds: f64,
    clips: usize,
    /// `runs` (summed over pipeline runs) or `calibration` (one 10 s pass).
    source: String,
}

impl Rate {
    fn per_audio_second(&self) -> f64 {
        self.busy_seconds / self.audio_seconds.max(1e-9)
    }
}

impl EncoderPasses {
    /// The encoders `sets` use; a cache for each that sets `cache_states`
    /// (its states checked against the architecture).
    pub fn new(
        data_dir: &Path,
        encoders: &BTreeMap<String, EncoderConfig>,
        sets: &[Arc<FeatureSet>],
    ) -> Result<EncoderPasses> {
        let mut caches = BTreeMap::new();
        for set in sets {
            let name = &set.cfg.encoder;
            let Some(enc) = encoders.get(name) else {
                continue;
            };
            let Some(layers) = &enc.cache_states else {
                continue;
            };
            if caches.contains_key(name) {
                continue;
            }
            let selection: LayerSelection = layers
                .parse()
                .with_context(|| format!("encoders.{name}.cache_states"))?;
            let n_states = runtime::arch_config(name, enc)?.num_hidden_states();
            let dir = data_dir.join("cache").join("states");
            let cache = StatesCache::new(dir, &selection, n_states)
                .with_context(|| format!("encoders.{name}.cache_states = {layers:?}"))?;
            caches.insert(name.clone(), cache);
        }
        Ok(EncoderPasses {
            data_dir: data_dir.to_path_buf(),
            encoders: encoders.clone(),
            caches,
            clocks: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether `spec` of encoder `encoder` is pooled from its states cache.
    pub fn covers(&self, encoder: &str, spec: &FeatureSetSpec) -> bool {
        self.caches.get(encoder).is_some_and(|c| c.covers(spec))
    }

    /// The cached state indices `spec` is pooled from, if its encoder's cache covers it.
    pub fn cached_states(&self, encoder: &str, spec: &FeatureSetSpec) -> Option<Vec<usize>> {
        let cache = self.caches.get(encoder)?;
        cache.covers(spec).then(|| cache.indices().to_vec())
    }

    /// The cache of the node's encoder and the node's clip file in it.
    pub fn cache_file(&self, node: &Node) -> Result<Option<(&StatesCache, PathBuf)>> {
        let n: &FeatureNode = node.plan()?;
        let name = &n.set.cfg.encoder;
        let (Some(cache), Some(enc)) = (self.caches.get(name), self.encoders.get(name)) else {
            return Ok(None);
        };
        // What determines the states: the encoder's key params and every
        // input of the node (the clip's audio, the weights files), by key.
        let inputs: Vec<(&str, String)> = node
            .inputs
            .iter()
            .map(|i| (i.name.as_str(), i.hash.to_string()))
            .collect();
        let what = serde_json::to_string(&json!({
            "encoder": enc.output_params(),
            "inputs": inputs,
        }))?;
        Ok(Some((cache, cache.path(&what))))
    }

    /// Whether computing these stale nodes (one batch) runs the encoder.
    pub fn needs_pass(&self, nodes: &[&Node]) -> Result<bool> {
        let Some(first) = nodes.first() else {
            return Ok(false);
        };
        let n: &FeatureNode = first.plan()?;
        if n.set.spec().is_none() {
            return Ok(false); // a weight-free baseline
        }
        let all_covered = nodes
            .iter()
            .map(|n| n.plan::<FeatureNode>().map(|p| p.covered))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .all(|c| c);
        Ok(match self.cache_file(first)? {
            Some((_, file)) => !(all_covered && file.is_file()),
            None => true,
        })
    }

    /// Runs one encoder pass of `audio_seconds` of audio, timing it.
    pub fn timed_pass<T>(
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

    /// Runs one batch's pooling from the cache, timing it.
    pub fn timed_hit<T>(&self, encoder: &str, hit: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = hit();
        let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        let c = clocks.entry(encoder.to_string()).or_default();
        c.hits += 1;
        c.hit_seconds += start.elapsed().as_secs_f64();
        out
    }

    /// (encoder passes, batches pooled from the states cache) of `encoder` in this process.
    pub fn counts(&self, encoder: &str) -> (usize, usize) {
        let clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        clocks.get(encoder).map_or((0, 0), |c| (c.passes, c.hits))
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

    fn rates_path(&self) -> PathBuf {
        self.data_dir.join("cache").join("encoder-rates.json")
    }

    fn load_rates(&self) -> BTreeMap<String, Rate> {
        std::fs::read(self.rates_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_rates_map(&self, rates: &BTreeMap<String, Rate>) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(rates)?;
        crate::dag::store::write_atomic(&self.rates_path(), &bytes)
    }

    /// Adds this process's passes to the recorded rates (a calibration is
    /// replaced by the first run's measurement).
    pub fn save_rates(&self) -> Result<()> {
        let clocks = self
            .clocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if clocks.values().all(|c| c.passes == 0) {
            return Ok(());
        }
        let mut rates = self.load_rates();
        for (name, c) in clocks.iter().filter(|(_, c)| c.passes > 0) {
            let Some(enc) = self.encoders.get(name) else {
                continue;
            };
            let new = Rate {
                params: enc.output_params(),
                gpu: runtime::runs_on_gpu(enc),
                backend: c.backend.clone(),
                busy_seconds: c.busy,
                audio_seconds: c.audio_seconds,
                clips: c.passes,
                source: "runs".into(),
            };
            let merged = match rates.get(name) {
                Some(old)
                    if old.source == "runs" && old.params == new.params && old.gpu == new.gpu =>
                {
                    Rate {
                        busy_seconds: old.busy_seconds + new.busy_seconds,
                        audio_seconds: old.audio_seconds + new.audio_seconds,
                        clips: old.clips + new.clips,
                        ..new
                    }
                }
                _ => new,
            };
            rates.insert(name.clone(), merged);
        }
        self.save_rates_map(&rates)
    }

    /// The recorded rate of `name`, or one timed now on synthetic 10 s clips.
    fn rate(&self, name: &str, rates: &mut BTreeMap<String, Rate>) -> Result<Rate> {
        let enc = &self.encoders[name];
        let (params, gpu) = (enc.output_params(), runtime::runs_on_gpu(enc));
        if let Some(r) = rates.get(name)
            && r.params == params
            && r.gpu == gpu
        {
            return Ok(r.clone());
        }
        // As the run would: one pass per worker at a time on the CPU (the
        // clips of a run encode side by side), one at a time on a GPU; after
        // a short warm-up pass (thread pools, first allocations).
        let workers = if gpu {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        eprintln!(
            "timing {workers} side-by-side {CALIBRATION_SECONDS} s pass(es) of encoder `{name}` for the estimate (none recorded on this machine yet) ..."
        );
        let rt = EncoderRuntime::load(name, enc)?;
        let arch = rt.config();
        let rate_hz = arch.sample_rate() as usize;
        let n = (CALIBRATION_SECONDS * rate_hz as f64) as usize;
        let wave: Vec<f32> = crate::rng::pseudo(n, 0).iter().map(|x| 0.1 * x).collect();
        let spec: FeatureSetSpec = serde_json::from_value(json!({
            "layers": (arch.num_hidden_states() - 1).to_string(),
            "pooling": "mean",
        }))?;
        let specs = std::slice::from_ref(&spec);
        let pass = |w: &[f32]| rt.run(w, crate::features::backend_pool::PoolAll(specs));
        pass(&wave[..rate_hz])?;
        let start = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers).map(|_| s.spawn(|| pass(&wave))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("calibration pass panicked")))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let rate = Rate {
            params,
            gpu,
            backend: rt.backend_name(),
            busy_seconds: start.elapsed().as_secs_f64(),
            audio_seconds: CALIBRATION_SECONDS * workers as f64,
            clips: workers,
            source: "calibration".into(),
        };
        rates.insert(name.to_string(), rate.clone());
        self.save_rates_map(rates)?;
        Ok(rate)
    }

    /// What a dry run says about encoder work: per encoder, how many clips
    /// need a pass (and its estimated time), how many pool from the cache.
    pub fn estimate(&self, plan: &Plan) -> Result<Vec<String>> {
        let Some(stage) = plan.stage(super::FEATURES.name) else {
            return Ok(Vec::new());
        };
        // Stale nodes by (encoder, clip): the batches the run will compute.
        let mut batches: BTreeMap<(String, String), Vec<&Node>> = BTreeMap::new();
        for pn in stage.nodes.iter().filter(|n| n.is_stale()) {
            let n: &FeatureNode = pn.node.plan()?;
            if n.set.spec().is_some() {
                let key = (n.set.cfg.encoder.clone(), n.clip.clone());
                batches.entry(key).or_default().push(&pn.node);
            }
        }
        #[derive(Default)]
        struct Work {
            passes: usize,
            known_audio: f64,
            known: usize,
            hits: usize,
        }
        let mut work: BTreeMap<String, Work> = BTreeMap::new();
        for ((encoder, _), nodes) in &batches {
            let w = work.entry(encoder.clone()).or_default();
            if !self.needs_pass(nodes)? {
                w.hits += 1;
                continue;
            }
            w.passes += 1;
            if let Some(s) = audio_seconds(&nodes[0].input("audio")?.path) {
                w.known_audio += s;
                w.known += 1;
            }
        }
        if work.values().all(|w| w.passes == 0) {
            let hits: usize = work.values().map(|w| w.hits).sum();
            return Ok(vec![if hits > 0 {
                format!("encoder work: none ({hits} clip batch(es) pool from the states cache)")
            } else {
                "encoder work: none".to_string()
            }]);
        }
        let mut rates = self.load_rates();
        let mut lines = Vec::new();
        for (name, w) in &work {
            let mut line = format!("encoder work: `{name}`: ");
            if w.passes == 0 {
                line += &format!("none, {} clip(s) from the states cache", w.hits);
                lines.push(line);
                continue;
            }
            let rate = self.rate(name, &mut rates)?;
            let per = rate.per_audio_second();
            let how = match rate.source.as_str() {
                "runs" => format!("measured over {} clip(s) on {}", rate.clips, rate.backend),
                _ => format!(
                    "timed on {} side-by-side {CALIBRATION_SECONDS} s clip(s) on {}",
                    rate.clips, rate.backend
                ),
            };
            line += &format!("{} clip(s) need an encoder pass", w.passes);
            let unknown = w.passes - w.known;
            if unknown == 0 {
                line += &format!(
                    " ({:.1} s of audio): about {} ({per:.3} s per audio second, {how})",
                    w.known_audio,
                    duration(per * w.known_audio)
                );
            } else if w.known > 0 {
                let audio = w.known_audio * w.passes as f64 / w.known as f64;
                line += &format!(
                    " (~{audio:.0} s of audio, {unknown} clip(s) not yet resampled counted at the mean): about {} ({per:.3} s per audio second, {how})",
                    duration(per * audio)
                );
            } else {
                line += &format!(
                    " (durations known once resampled): {per:.3} s per audio second ({how})"
                );
            }
            if w.hits > 0 {
                line += &format!("; {} clip(s) from the states cache", w.hits);
            }
            lines.push(line);
        }
        Ok(lines)
    }
}

/// Seconds of a clip's resampled audio, from its size and header (`None`
/// until it exists): the mono 32-bit float WAV `audio::wav` writes, whose
/// sample rate sits at byte 24 and whose samples follow a 58-byte header.
fn audio_seconds(path: &Path) -> Option<f64> {
    use std::io::Read;
    let mut header = [0u8; 28];
    let mut file = std::fs::File::open(path).ok()?;
    file.read_exact(&mut header).ok()?;
    let len = file.metadata().ok()?.len();
    let rate = u32::from_le_bytes(header[24..28].try_into().ok()?);
    (&header[..4] == b"RIFF" && rate > 0)
        .then(|| len.saturating_sub(58) as f64 / 4.0 / f64::from(rate))
}

/// `42 s`, `3.5 min`, `1.2 h`.
fn duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.1} s")
    } else if seconds < 5400.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}
