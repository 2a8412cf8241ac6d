//! Bounds of the size-like settings (sample rates, frame counts, widths,
//! depths, counts), checked where each is read: `pipeline.toml`, a weights
//! folder's `config.json`, `pipe encode`'s flags. A value outside its range is
//! an error naming the key and the range, never an allocation that aborts the
//! process or a run that crawls for days.
//!
//! The ranges are wide (every published MERT/MuQ size and every sane audio
//! rate fits with room) and exist only to turn typos and hostile files into
//! errors.

use anyhow::{Result, ensure};
use std::fmt::Display;
use std::ops::RangeInclusive;

/// Audio sample rates, Hz (8 kHz telephone .. 384 kHz studio).
pub const SAMPLE_RATE: RangeInclusive<u32> = 8_000..=384_000;
/// The synthesiser's rates (rustysynth accepts 16 kHz .. 192 kHz).
pub const RENDER_RATE: RangeInclusive<u32> = 16_000..=192_000;
/// Frames of one encoder forward pass (attention is quadratic in it: 4096
/// frames are 55 s of MERT, 164 s of MuQ).
pub const WINDOW_FRAMES: RangeInclusive<usize> = 1..=4096;
/// Frames that enter pooling (a clip's own length bounds it again).
pub const MAX_FRAMES: RangeInclusive<usize> = 1..=10_000_000;
/// Clips kept by `dataset.limit`.
pub const LIMIT: RangeInclusive<usize> = 1..=10_000_000;
/// The local cache of a remote store, GB.
pub const CACHE_GB: RangeInclusive<f64> = 0.0..=1e6;
/// Cross-validation folds.
pub const FOLDS: RangeInclusive<usize> = 2..=1000;
/// Seconds (min clip length, render tail).
pub const SECONDS: RangeInclusive<f64> = 0.0..=3600.0;
/// Widths of an encoder (hidden size, FFN size, conv channels) from a `config.json`.
pub const WIDTH: RangeInclusive<usize> = 1..=65_536;
/// Transformer / Conformer blocks.
pub const DEPTH: RangeInclusive<usize> = 1..=256;
/// Attention heads.
pub const HEADS: RangeInclusive<usize> = 1..=1024;
/// Conv kernel sizes and strides, positional-conv width.
pub const KERNEL: RangeInclusive<usize> = 1..=4096;
/// Conv layers of MERT's feature encoder.
pub const CONV_LAYERS: RangeInclusive<usize> = 1..=32;
/// Mel bands.
pub const MELS: RangeInclusive<usize> = 4..=1024;
/// Head widths (`head.hidden`, `head.head_hidden`).
pub const HEAD_WIDTH: RangeInclusive<usize> = 1..=65_536;
/// Mini-batch rows.
pub const BATCH: RangeInclusive<usize> = 1..=1_000_000;
/// Training epochs (and patience).
pub const EPOCHS: RangeInclusive<usize> = 1..=1_000_000;
/// Bootstrap resamples.
pub const RESAMPLES: RangeInclusive<usize> = 1..=1_000_000;

/// `key = value` must lie in `range`; the error names both.
pub fn check<T: PartialOrd + Display>(
    key: &str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<()> {
    ensure!(
        range.contains(&value),
        "{key} = {value}: outside the allowed range {}..={}",
        range.start(),
        range.end()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_names_key_value_and_range() {
        check("resample.sample_rate", 24_000, &SAMPLE_RATE).unwrap();
        let e = check("resample.sample_rate", 4_000_000_000, &SAMPLE_RATE)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "resample.sample_rate = 4000000000: outside the allowed range 8000..=384000"
        );
        assert!(
            check("x", f64::NAN, &SECONDS).is_err(),
            "NaN is in no range"
        );
        assert!(check("k", 1, &FOLDS).is_err());
    }
}
