//! Audio domain logic: decode, resample and MIDI rendering for the stages of
//! the same names, WAV artifacts, and the signal processing the encoders and
//! feature baselines share (STFT, mel filterbanks, chroma and tuning).
//!
//! Plain functions over one in-memory type, [`Pcm`] (mono f32). The stage wrappers
//! own caching and file placement; nothing here knows about the DAG (must not
//! import `dag`, `stages`, `encoder`, `features`).

pub mod chroma;
pub mod decode;
pub mod mel;
pub mod render;
pub mod resample;
pub mod stft;
pub mod wav;

/// Mono PCM audio, f32 in [-1, 1] nominal.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

impl Pcm {
    /// Length in seconds (0 for an empty clip; a zero sample rate also gives 0).
    pub fn duration_seconds(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

pub use decode::{decode_bytes, decode_file};
pub use render::{RenderParams, SoundFont, render_midi};
pub use resample::{ResampleQuality, resample};

#[cfg(test)]
mod tests {
    use super::Pcm;

    #[test]
    fn duration_is_len_over_rate() {
        let pcm = Pcm {
            sample_rate: 8000,
            samples: vec![0.0; 12000],
        };
        assert_eq!(pcm.duration_seconds(), 1.5);
        let empty = Pcm {
            sample_rate: 0,
            samples: vec![],
        };
        assert_eq!(empty.duration_seconds(), 0.0);
    }
}
