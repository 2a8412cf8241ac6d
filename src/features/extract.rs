//! What computes a feature set's vector for one clip: a weight-free
//! [`Baseline`] on the clip's audio, or one pass of an encoder pooled for
//! every feature set of that encoder ([`encode_and_pool`]). The features
//! stage calls only this.

use anyhow::{Result, bail};

use super::backend_pool::PoolAll;
use super::spec::FeatureSetSpec;
use crate::audio::Pcm;
use crate::encoder::EncoderRuntime;

/// A feature set that needs no encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// 18 raw audio statistics ([`super::baseline`]).
    RawStats,
    /// 128-band log-mel mean + std ([`super::mel`]).
    LogmelStats,
    /// The study's mel spectrogram, first `max_frames` frames (the mel-CNN's input).
    MelFrames,
}

impl Baseline {
    pub const ALL: [Baseline; 3] = [
        Baseline::RawStats,
        Baseline::LogmelStats,
        Baseline::MelFrames,
    ];

    /// The name that stands for it in `features.NAME.encoder`.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::RawStats => "raw_stats",
            Baseline::LogmelStats => "logmel_stats",
            Baseline::MelFrames => "mel_frames",
        }
    }

    /// Whether it gives a frame sequence (`pooling = "frames"`) rather than one vector.
    pub fn is_frames(self) -> bool {
        self == Baseline::MelFrames
    }

    /// Width of one frame of a sequence source.
    pub fn frame_dim(self) -> Option<usize> {
        self.is_frames().then_some(super::mel::study::N_MELS)
    }

    pub fn parse(name: &str) -> Option<Baseline> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The clip's vector (or, for a sequence source, its first `max_frames` frames).
    pub fn compute(self, pcm: &Pcm, max_frames: usize) -> Result<Vec<f32>> {
        match self {
            Baseline::RawStats => super::baseline::audio_stats(pcm),
            Baseline::LogmelStats => super::mel::logmel_stats(pcm),
            Baseline::MelFrames => super::mel::mel_frames(pcm, max_frames),
        }
    }
}

/// One pass of `encoder` (the entry called `name`) over `pcm`, pooled for
/// every spec, in order.
pub fn encode_and_pool(
    encoder: &EncoderRuntime,
    name: &str,
    pcm: &Pcm,
    specs: &[FeatureSetSpec],
) -> Result<Vec<Vec<f32>>> {
    let rate = encoder.config().sample_rate();
    if pcm.sample_rate != rate {
        bail!(
            "clip audio is at {} Hz but encoder `{name}` takes {rate} Hz: set [resample] sample_rate = {rate}",
            pcm.sample_rate
        );
    }
    encoder.run(&pcm.samples, PoolAll(specs))
}
