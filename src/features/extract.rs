//! What computes a feature set's vector for one clip: a weight-free
//! [`Baseline`] on the clip's audio, or one pass of an encoder pooled for
//! every feature set of that encoder ([`encode_and_pool`]). The features
//! stage calls only this.

use anyhow::{Result, bail};

use super::backend_pool::{PoolAll, PoolAndKeep};
use super::spec::FeatureSetSpec;
use crate::audio::Pcm;
use crate::encoder::{EncoderOutput, EncoderRuntime};

/// A feature set that needs no encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// 18 raw audio statistics ([`super::baseline`]).
    RawStats,
    /// 128-band log-mel mean + std ([`super::mel`]).
    LogmelStats,
}

impl Baseline {
    pub const ALL: [Baseline; 2] = [Baseline::RawStats, Baseline::LogmelStats];

    /// The name that stands for it in `features.NAME.encoder`.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::RawStats => "raw_stats",
            Baseline::LogmelStats => "logmel_stats",
        }
    }

    pub fn parse(name: &str) -> Option<Baseline> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    pub fn compute(self, pcm: &Pcm) -> Result<Vec<f32>> {
        match self {
            Baseline::RawStats => super::baseline::audio_stats(pcm),
            Baseline::LogmelStats => super::mel::logmel_stats(pcm),
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
    check_rate(encoder, name, pcm)?;
    encoder.run(&pcm.samples, PoolAll(specs))
}

/// [`encode_and_pool`] that also downloads the hidden states in `keep`
/// whole, for the states cache ([`super::states_cache`]).
pub fn encode_pool_keep(
    encoder: &EncoderRuntime,
    name: &str,
    pcm: &Pcm,
    specs: &[FeatureSetSpec],
    keep: &[usize],
) -> Result<(Vec<Vec<f32>>, EncoderOutput)> {
    check_rate(encoder, name, pcm)?;
    encoder.run(&pcm.samples, PoolAndKeep { specs, keep })
}

fn check_rate(encoder: &EncoderRuntime, name: &str, pcm: &Pcm) -> Result<()> {
    let rate = encoder.config().sample_rate();
    if pcm.sample_rate != rate {
        bail!(
            "clip audio is at {} Hz but encoder `{name}` takes {rate} Hz: set [resample] sample_rate = {rate}",
            pcm.sample_rate
        );
    }
    Ok(())
}
