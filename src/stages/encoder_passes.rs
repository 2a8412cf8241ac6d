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

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dag::{Node, Plan};
use crate::features::{Extractor, FeatureSet};

/// The typed plan of one node: which set, which clip.
pub(super) struct FeatureNode {
    pub(super) set: Arc<FeatureSet>,
    pub(super) clip: String,
}

/// What a node's hidden states depend on besides its encoder's settings:
/// every input (the clip's audio, the weights files), by key.
pub(super) fn states_of(node: &Node) -> Vec<(&str, String)> {
    node.inputs
        .iter()
        .map(|i| (i.name.as_str(), i.hash.to_string()))
        .collect()
}

/// Length of the synthetic clip a dry run times an encoder on.
const CALIBRATION_SECONDS: f64 = 10.0;

/// The extractor the features stage computes with, and the pass times it
/// recorded here before.
pub struct EncoderPasses {
    data_dir: PathBuf,
    extractor: Arc<Extractor>,
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
    pub fn new(data_dir: &Path, extractor: Arc<Extractor>) -> EncoderPasses {
        EncoderPasses {
            data_dir: data_dir.to_path_buf(),
            extractor,
        }
    }

    pub fn extractor(&self) -> &Extractor {
        &self.extractor
    }

    /// Whether computing these stale nodes (one batch) runs the encoder.
    pub fn needs_pass(&self, nodes: &[&Node]) -> Result<bool> {
        let Some(first) = nodes.first() else {
            return Ok(false);
        };
        let plans: Vec<&FeatureNode> = nodes.iter().map(|n| n.plan()).collect::<Result<_>>()?;
        let sets: Vec<&FeatureSet> = plans.iter().map(|p| p.set.as_ref()).collect();
        self.extractor.needs_pass(&sets, &states_of(first))
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
        let totals = self.extractor.pass_totals();
        if totals.is_empty() {
            return Ok(());
        }
        let mut rates = self.load_rates();
        for (name, t) in totals {
            let Some(enc) = self.extractor.config(&name) else {
                continue;
            };
            let new = Rate {
                params: enc.output_params(),
                gpu: self.extractor.runs_on_gpu(&name),
                backend: t.backend,
                busy_seconds: t.busy_seconds,
                audio_seconds: t.audio_seconds,
                clips: t.passes,
                source: "runs".into(),
            };
            let merged = match rates.get(&name) {
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
            rates.insert(name, merged);
        }
        self.save_rates_map(&rates)
    }

    /// The recorded rate of `name`, or one timed now on synthetic 10 s clips.
    fn rate(&self, name: &str, rates: &mut BTreeMap<String, Rate>) -> Result<Rate> {
        let enc = (self.extractor.config(name)).ok_or_else(|| anyhow!("no encoder `{name}`"))?;
        let (params, gpu) = (enc.output_params(), self.extractor.runs_on_gpu(name));
        if let Some(r) = rates.get(name)
            && r.params == params
            && r.gpu == gpu
        {
            return Ok(r.clone());
        }
        // As the run would: one pass per worker at a time on the CPU (the
        // clips of a run encode side by side), one at a time on a GPU.
        let workers = if gpu {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        eprintln!(
            "timing {workers} side-by-side {CALIBRATION_SECONDS} s pass(es) of encoder `{name}` for the estimate (none recorded on this machine yet) ..."
        );
        let (busy_seconds, backend) =
            (self.extractor).time_passes(name, CALIBRATION_SECONDS, workers)?;
        let rate = Rate {
            params,
            gpu,
            backend,
            busy_seconds,
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
