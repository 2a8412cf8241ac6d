//! From a recording to 19 scores with one bundle: decode and resample as
//! the pipeline's decode and resample stages do, compute each input feature
//! set with the features stage's own [`Extractor`], and average the fold
//! heads.
//! A long recording is scored per segment ([`Segmenting`]) and overall.

use anyhow::{Context, Result, bail, ensure};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::bundle::{Bundle, EncoderCard, ModelCard};
use crate::audio::{self, Pcm};
use crate::dims::N_DIMS;
use crate::encoder::{Device, EncoderConfig};
use crate::features::{ClipInput, Extractor, FeatureSet};
use crate::head::{FrameSet, HeadInput};

/// How the encoder of a bundle is loaded.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Folder of the real weights when they are not where the bundle says
    /// (a bundle copied to another machine); their hash must still match.
    pub weights: Option<PathBuf>,
    /// Overrides the encoder's `device`.
    pub device: Option<Device>,
}

/// A bundle ready to score: its encoders loaded once, shared by every call
/// (a GPU encoder takes one clip at a time), its input sets computed by the
/// pipeline's own [`Extractor`].
pub struct Scorer {
    pub bundle: Bundle,
    inputs: Vec<FeatureSet>,
    extractor: Extractor,
}

/// Seconds spent in each step of scoring (summed over segments).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    pub decode_s: f64,
    pub resample_s: f64,
    /// Encoder pass and pooling (or a baseline's statistics).
    pub features_s: f64,
    pub head_s: f64,
}

impl Timings {
    pub fn total(&self) -> f64 {
        self.decode_s + self.resample_s + self.features_s + self.head_s
    }
}

/// How a recording is cut before scoring.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Segmenting {
    /// Whole when no longer than the longest training clip, else windows of
    /// the median training clip length (hop = window).
    Auto,
    /// Always one segment: the whole file.
    Whole,
    /// Windows of `seconds`, starting every `hop` seconds; the last window
    /// ends at the end of the file.
    Windows { seconds: f64, hop: f64 },
}

/// One scored stretch of a recording (scores on the labels' scale).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: f64,
    pub scores: Vec<f32>,
}

/// A recording's scores: per segment, and overall (the segments' mean,
/// weighted by their lengths; the one segment's scores when whole).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Scores {
    pub duration_s: f64,
    pub overall: Vec<f32>,
    pub segments: Vec<Segment>,
}

impl Scorer {
    /// Loads the encoders the bundle's inputs need, checking real weights
    /// against the hashes in the card.
    pub fn load(bundle: Bundle, opts: &LoadOptions) -> Result<Scorer> {
        let mut inputs = Vec::new();
        let mut encoders = BTreeMap::new();
        for ic in &bundle.card.inputs {
            let set = FeatureSet::from_config(&ic.feature_set, &ic.config)
                .with_context(|| format!("{}: input {}", bundle.path.display(), ic.feature_set))?;
            if set.is_symbolic() {
                bail!(
                    "experiment {} reads feature set `{}` ({}), computed from performance MIDI, \
                     not audio: pipe predict scores recordings; choose an audio experiment",
                    bundle.card.experiment,
                    ic.feature_set,
                    ic.config.encoder
                );
            }
            if let Some(e) = &ic.encoder
                && !encoders.contains_key(&e.name)
            {
                encoders.insert(e.name.clone(), encoder_config(&bundle, e, opts)?);
            }
            inputs.push(set);
        }
        let extractor = Extractor::new(encoders, None)?;
        for (ic, set) in bundle.card.inputs.iter().zip(&inputs) {
            let Some(e) = &ic.encoder else { continue };
            extractor.encoder(&e.name).with_context(|| {
                format!(
                    "loading encoder `{}` for feature set `{}`",
                    e.name, set.name
                )
            })?;
            // The states the pipeline pooled this set from (its states cache):
            // the encoder's entry decides, and the card recorded it.
            let pools_from = set
                .spec()
                .and_then(|spec| extractor.cached_states(&e.name, spec));
            ensure!(
                pools_from == ic.f16_states,
                "{}: input {} was pooled from f16 states {:?}, but its encoder's cache_states give {:?}",
                bundle.path.display(),
                ic.feature_set,
                ic.f16_states,
                pools_from
            );
        }
        Ok(Scorer {
            bundle,
            inputs,
            extractor,
        })
    }

    pub fn card(&self) -> &ModelCard {
        &self.bundle.card
    }

    /// Decodes a file and resamples it to the encoders' rate.
    pub fn audio_file(&self, path: &Path, t: &mut Timings) -> Result<Pcm> {
        let start = Instant::now();
        let pcm = audio::decode_file(path)?;
        t.decode_s += start.elapsed().as_secs_f64();
        self.prepare(pcm, &path.display().to_string(), t)
    }

    /// Decodes audio held in memory (an upload) and resamples it.
    pub fn audio_bytes(&self, bytes: Vec<u8>, ext: Option<&str>, t: &mut Timings) -> Result<Pcm> {
        let start = Instant::now();
        let pcm = audio::decode_bytes(bytes, ext)?;
        t.decode_s += start.elapsed().as_secs_f64();
        self.prepare(pcm, "the upload", t)
    }

    /// The decode stage's length check, then the resample stage's resampling.
    fn prepare(&self, pcm: Pcm, what: &str, t: &mut Timings) -> Result<Pcm> {
        let card = &self.bundle.card;
        let secs = pcm.duration_seconds();
        ensure!(
            secs >= card.decode.min_seconds,
            "{what} is {secs:.4} s long, shorter than the {} s the model's decode settings accept (the encoder's receptive field)",
            card.decode.min_seconds
        );
        let start = Instant::now();
        let out = audio::resample(&pcm, card.resample.sample_rate, card.resample.quality)?;
        t.resample_s += start.elapsed().as_secs_f64();
        Ok(out)
    }

    /// Each input feature set's value for `pcm` (encoder-rate audio), as
    /// the pipeline stores it: one pass per encoder, pooled for its inputs.
    pub fn features(&self, pcm: &Pcm) -> Result<Vec<Vec<f32>>> {
        let mut out: Vec<Option<Vec<f32>>> = vec![None; self.inputs.len()];
        for (i, set) in self.inputs.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            // This input and the later ones of the same encoder (or baseline).
            let batch: Vec<usize> = (i..self.inputs.len())
                .filter(|&j| out[j].is_none() && self.inputs[j].cfg.encoder == set.cfg.encoder)
                .collect();
            let sets: Vec<&FeatureSet> = batch.iter().map(|&j| &self.inputs[j]).collect();
            let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
            let vectors = (self.extractor)
                .compute(&sets, ClipInput::Audio(pcm), None)
                .with_context(|| format!("feature set `{}`", names.join("`, `")))?;
            for (j, v) in batch.into_iter().zip(vectors) {
                out[j] = Some(v);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The head input for clips whose features are `clips[c][input]`.
    fn head_input(&self, clips: &[Vec<Vec<f32>>]) -> Result<HeadInput> {
        let dims = self.bundle.heads[0].dims();
        let frames = |j: usize, dim: usize| -> Result<FrameSet> {
            let rows: Vec<&[f32]> = clips.iter().map(|c| c[j].as_slice()).collect();
            FrameSet::new(dim, &rows)
        };
        Ok(match (self.inputs.len(), self.inputs[0].is_sequence()) {
            (1, false) => {
                for c in clips {
                    ensure!(
                        c[0].len() == dims.a,
                        "feature set `{}` gave {} values; the heads read {}",
                        self.inputs[0].name,
                        c[0].len(),
                        dims.a
                    );
                }
                HeadInput::Pooled {
                    values: clips.iter().flat_map(|c| c[0].iter().copied()).collect(),
                    dim: dims.a,
                }
            }
            (1, true) => HeadInput::Frames(frames(0, dims.a)?),
            _ => HeadInput::Two(frames(0, dims.a)?, frames(1, dims.b.unwrap_or(dims.a))?),
        })
    }

    /// The mean of the fold heads' predictions, `[clips, 19]`, labels' scale.
    pub fn apply_heads(&self, clips: &[Vec<Vec<f32>>]) -> Result<Vec<f32>> {
        let input = self.head_input(clips)?;
        let mut sum = vec![0f64; clips.len() * N_DIMS];
        for h in &self.bundle.heads {
            for (s, p) in sum.iter_mut().zip(h.predict(&input)?) {
                *s += p as f64;
            }
        }
        let k = self.bundle.heads.len() as f64;
        Ok(sum.iter().map(|s| (s / k) as f32).collect())
    }

    /// Scores encoder-rate audio: per segment and overall.
    pub fn score(&self, pcm: &Pcm, segmenting: Segmenting, t: &mut Timings) -> Result<Scores> {
        let duration = pcm.duration_seconds();
        let windows = segments(duration, segmenting, &self.bundle.card)?;
        let rate = pcm.sample_rate as f64;
        let mut clips = Vec::with_capacity(windows.len());
        let start = Instant::now();
        for &(a, b) in &windows {
            let (i, j) = ((a * rate).round() as usize, (b * rate).round() as usize);
            let part;
            let clip = if i == 0 && j >= pcm.samples.len() {
                // The whole file: exactly the samples the pipeline encodes.
                pcm
            } else {
                part = Pcm {
                    sample_rate: pcm.sample_rate,
                    samples: pcm.samples[i..j.min(pcm.samples.len())].to_vec(),
                };
                &part
            };
            clips.push(
                self.features(clip)
                    .with_context(|| format!("segment {a:.1}-{b:.1} s"))?,
            );
        }
        t.features_s += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let pred = self.apply_heads(&clips)?;
        t.head_s += start.elapsed().as_secs_f64();
        let segments: Vec<Segment> = windows
            .iter()
            .zip(pred.chunks_exact(N_DIMS))
            .map(|(&(a, b), s)| Segment {
                start_s: a,
                end_s: b,
                scores: s.to_vec(),
            })
            .collect();
        let total: f64 = segments.iter().map(|s| s.end_s - s.start_s).sum();
        let overall = (0..N_DIMS)
            .map(|d| {
                let w: f64 = segments
                    .iter()
                    .map(|s| (s.end_s - s.start_s) * s.scores[d] as f64)
                    .sum();
                (w / total) as f32
            })
            .collect();
        Ok(Scores {
            duration_s: duration,
            overall,
            segments,
        })
    }
}

/// The `(start, end)` seconds of each segment of a `duration`-second recording.
pub fn segments(duration: f64, how: Segmenting, card: &ModelCard) -> Result<Vec<(f64, f64)>> {
    let (seconds, hop) = match how {
        Segmenting::Whole => return Ok(vec![(0.0, duration)]),
        // A little slack: a training clip resampled and decoded again may
        // differ by a sample.
        Segmenting::Auto if duration <= card.clips.max_s + 0.05 => {
            return Ok(vec![(0.0, duration)]);
        }
        Segmenting::Auto => (card.clips.median_s, card.clips.median_s),
        Segmenting::Windows { seconds, hop } => (seconds, hop),
    };
    ensure!(
        seconds.is_finite() && seconds > 0.0 && hop.is_finite() && hop > 0.0,
        "segment length {seconds} s and hop {hop} s must be positive"
    );
    ensure!(
        seconds >= card.decode.min_seconds,
        "segment length {seconds} s is shorter than the {} s the model accepts",
        card.decode.min_seconds
    );
    if duration <= seconds {
        return Ok(vec![(0.0, duration)]);
    }
    let mut out = Vec::new();
    let mut start = 0.0;
    while start + seconds < duration {
        out.push((start, start + seconds));
        start += hop;
    }
    // The last window ends with the file (it may overlap the one before).
    out.push(((duration - seconds).max(0.0), duration));
    out.dedup();
    Ok(out)
}

/// The entry a bundle's encoder loads with: its device as asked, and its
/// real weights where given, checked against the hashes in the card.
fn encoder_config(bundle: &Bundle, e: &EncoderCard, opts: &LoadOptions) -> Result<EncoderConfig> {
    let mut cfg = e.config.clone();
    if let Some(d) = opts.device {
        cfg.device = d;
    }
    if cfg.random.is_some() {
        return Ok(cfg);
    }
    let dir = match (&opts.weights, &cfg.weights) {
        (Some(w), _) => w.clone(),
        (None, Some(w)) => w.clone(),
        (None, None) => bail!(
            "{}: encoder `{}` has neither weights nor a random preset",
            bundle.path.display(),
            e.name
        ),
    };
    for (file, want) in [
        ("config.json", &e.config_hash),
        ("model.safetensors", &e.weights_hash),
    ] {
        let path = dir.join(file);
        ensure!(
            path.is_file(),
            "experiment {} needs encoder `{}`'s {} ({}), which is missing: copy the weights \
             there or pass --weights DIR",
            bundle.card.experiment,
            e.name,
            file,
            path.display()
        );
        if let Some(want) = want {
            // The pipeline's own definition of a file's hash (its keys record it).
            let got = crate::dag::store::hash_file(&path)?.to_string();
            ensure!(
                &got == want,
                "encoder `{}`: {} has blake3 {got}, but experiment {} was trained on {want}: \
                 these are not the weights its heads read (features would silently differ)",
                e.name,
                path.display(),
                bundle.card.experiment
            );
        }
    }
    cfg.weights = Some(dir);
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(median: f64, max: f64) -> ModelCard {
        let mut c = super::super::bundle::sample_card();
        c.clips.median_s = median;
        c.clips.max_s = max;
        c
    }

    #[test]
    fn segments_cover_the_file_and_auto_keeps_training_length_clips_whole() {
        let c = card(10.0, 20.0);
        assert_eq!(segments(15.0, Segmenting::Auto, &c).unwrap(), [(0.0, 15.0)]);
        assert_eq!(
            segments(20.04, Segmenting::Auto, &c).unwrap(),
            [(0.0, 20.04)]
        );
        assert_eq!(
            segments(25.0, Segmenting::Auto, &c).unwrap(),
            [(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)]
        );
        assert_eq!(
            segments(30.0, Segmenting::Auto, &c).unwrap(),
            [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
        );
        let w = Segmenting::Windows {
            seconds: 4.0,
            hop: 2.0,
        };
        assert_eq!(
            segments(9.0, w, &c).unwrap(),
            [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (5.0, 9.0)]
        );
        assert_eq!(segments(3.0, w, &c).unwrap(), [(0.0, 3.0)]);
        assert_eq!(
            segments(300.0, Segmenting::Whole, &c).unwrap(),
            [(0.0, 300.0)]
        );
        let bad = Segmenting::Windows {
            seconds: 0.0,
            hop: 1.0,
        };
        assert!(segments(9.0, bad, &c).is_err());
    }
}
