//! The feature sets that need no encoder: a weight-free [`Baseline`] on the
//! clip's audio, or a [`Symbolic`] set on the clip's performance MIDI.

use anyhow::Result;
use std::path::Path;

use crate::audio::Pcm;

/// A feature set that needs no encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// 18 raw audio statistics ([`super::baseline`]).
    RawStats,
    /// 128-band log-mel mean + std ([`super::mel`]).
    LogmelStats,
    /// The study's mel spectrogram, first `max_frames` frames (the mel-CNN's input).
    MelFrames,
    /// The study's 49 librosa statistics ([`super::librosa49`]).
    Librosa49,
}

impl Baseline {
    pub const ALL: [Baseline; 4] = [
        Baseline::RawStats,
        Baseline::LogmelStats,
        Baseline::MelFrames,
        Baseline::Librosa49,
    ];

    /// The name that stands for it in `features.NAME.encoder`.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::RawStats => "raw_stats",
            Baseline::LogmelStats => "logmel_stats",
            Baseline::MelFrames => "mel_frames",
            Baseline::Librosa49 => "librosa49",
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
            Baseline::Librosa49 => super::librosa49::librosa49_stats(pcm),
        }
    }
}

/// A feature set computed from the clip's performance MIDI, not its audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symbolic {
    /// 39 note, timing, velocity, pedal and polyphony statistics ([`super::midi_stats`]).
    MidiStats,
    /// One row per note ([`super::midi_notes`]), a `frames` set.
    MidiNotes,
}

impl Symbolic {
    pub const ALL: [Symbolic; 2] = [Symbolic::MidiStats, Symbolic::MidiNotes];

    /// The name that stands for it in `features.NAME.encoder`.
    pub fn name(self) -> &'static str {
        match self {
            Symbolic::MidiStats => "midi_stats",
            Symbolic::MidiNotes => "midi_notes",
        }
    }

    pub fn parse(name: &str) -> Option<Symbolic> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Values of the MIDI file at `midi` (`max_frames` caps a sequence).
    pub fn compute(self, midi: &Path, max_frames: usize) -> Result<Vec<f32>> {
        match self {
            Symbolic::MidiStats => super::midi_stats::midi_stats(midi),
            Symbolic::MidiNotes => super::midi_notes::midi_notes(midi, max_frames),
        }
    }
}

/// Names that need no `[encoders]` entry: the baselines and symbolic sets.
pub fn weight_free_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = Baseline::ALL.map(Baseline::name).to_vec();
    v.extend(Symbolic::ALL.map(Symbolic::name));
    v
}
