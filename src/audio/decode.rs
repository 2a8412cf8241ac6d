//! Decode an audio file (WAV, FLAC, MP3, OGG/Vorbis) to mono f32 with symphonia.
//!
//! Policy: our inputs are finished recordings, so anything symphonia cannot decode
//! cleanly is an error, never skipped. A corrupt packet (`DecodeError`), a stream
//! that ends before the frame count its header promises, and a mid-stream
//! `ResetRequired` (a chained stream whose parameters change) all fail the file
//! rather than silently yielding audio with a gap or a jump.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail, ensure};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

use super::Pcm;

const EXPECTED: &str = "expected WAV, FLAC, MP3 or OGG/Vorbis audio";

/// Decode `path` and downmix it to mono (mean of the channels).
pub fn decode_file(path: &Path) -> Result<Pcm> {
    let open = || -> Result<(Box<dyn MediaSource>, Option<String>)> {
        let file = File::open(path).context("cannot open file")?;
        let len = file.metadata().context("cannot stat file")?.len();
        ensure!(len > 0, "file is empty; {EXPECTED}");
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_string);
        Ok((Box::new(file), ext))
    };
    guarded(|| {
        let (source, ext) = open()?;
        decode_inner(source, ext.as_deref())
    })
    .with_context(|| format!("decoding {}", path.display()))
}

/// Decode an audio file held in memory (an upload); `ext` hints the format.
pub fn decode_bytes(bytes: Vec<u8>, ext: Option<&str>) -> Result<Pcm> {
    ensure!(!bytes.is_empty(), "file is empty; {EXPECTED}");
    guarded(|| decode_inner(Box::new(std::io::Cursor::new(bytes)), ext))
}

/// Runs a decode, turning a decoder panic into an error. symphonia can panic
/// on a hostile header (e.g. an arithmetic overflow on a WAV channel count
/// with one bit flipped, in builds with overflow checks): that file's error,
/// not the process's end.
fn guarded(decode: impl FnOnce() -> Result<Pcm>) -> Result<Pcm> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(anyhow!(
            "the decoder crashed on this file ({msg}); {EXPECTED}"
        ))
    })
}

fn decode_inner(source: Box<dyn MediaSource>, ext: Option<&str>) -> Result<Pcm> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| anyhow!("not a recognised audio file ({e}); {EXPECTED}"))?;

    let track = format
        .default_track(TrackType::Audio)
        .context("file has no audio track")?;
    let track_id = track.id;
    let promised_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .context("audio track has no codec parameters")?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| anyhow!("unsupported codec ({e}); {EXPECTED}"))?;

    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut layout: Option<(u32, usize)> = None; // (sample rate, channels) of the first packet
    let mut packet_index = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymError::ResetRequired) => {
                bail!("stream parameters change mid-file (chained stream); not supported")
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                bail!(
                    "file is truncated: stream ends inside packet {packet_index} \
                     after {} frames",
                    mono.len()
                )
            }
            Err(e) => bail!("corrupt container at packet {packet_index}: {e}"),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder.decode(&packet).map_err(|e| match e {
            SymError::ResetRequired => {
                anyhow!("stream parameters change mid-file (chained stream); not supported")
            }
            e => anyhow!(
                "corrupt audio data in packet {packet_index} (after {} frames): {e}",
                mono.len()
            ),
        })?;
        packet_index += 1;
        if buf.frames() == 0 {
            continue;
        }
        let rate = buf.spec().rate();
        let channels = buf.spec().channels().count();
        match layout {
            None => layout = Some((rate, channels)),
            Some(first) => ensure!(
                first == (rate, channels),
                "stream changes from {} Hz/{} ch to {rate} Hz/{channels} ch at packet {packet_index}",
                first.0,
                first.1
            ),
        }
        ensure!(channels > 0, "audio has zero channels");
        buf.copy_to_vec_interleaved(&mut interleaved);
        check_samples(&interleaved, channels, mono.len(), rate)?;
        downmix_into(&interleaved, channels, &mut mono);
    }

    let (sample_rate, _) = layout.context("file decodes to zero samples")?;
    ensure!(sample_rate > 0, "sample rate is 0");
    ensure!(!mono.is_empty(), "file decodes to zero samples");
    if let Some(n) = promised_frames {
        // Only the lossless containers state an exact count; a shortfall means truncation.
        ensure!(
            mono.len() as u64 >= n,
            "file is truncated: header promises {n} frames, only {} decoded",
            mono.len()
        );
    }
    Ok(Pcm {
        sample_rate,
        samples: mono,
    })
}

/// Largest sample magnitude accepted. Decoded audio is nominally in [-1, 1];
/// float files may exceed it a little (headroom), but 60 dB over full scale is
/// not a recording, and such values would turn into inf/NaN features downstream.
pub const MAX_ABS_SAMPLE: f32 = 1e3;

/// Every sample of a packet (interleaved, starting at frame `first_frame`)
/// is finite and within ±[`MAX_ABS_SAMPLE`], checked per channel before the
/// downmix (which could cancel +x and −x).
fn check_samples(
    interleaved: &[f32],
    channels: usize,
    first_frame: usize,
    rate: u32,
) -> Result<()> {
    let Some(i) = interleaved
        .iter()
        .position(|s| s.is_nan() || s.abs() > MAX_ABS_SAMPLE)
    else {
        return Ok(());
    };
    let (x, frame) = (interleaved[i], first_frame + i / channels.max(1));
    let at = format!(
        "at frame {frame} ({:.3} s), channel {}",
        frame as f64 / f64::from(rate.max(1)),
        i % channels.max(1)
    );
    if x.is_finite() {
        bail!(
            "sample {x:e} {at} is outside ±{MAX_ABS_SAMPLE} (audio is nominally in [-1, 1]): not audio data"
        )
    }
    let what = if x.is_nan() { "NaN" } else { "infinite" };
    bail!("{what} sample {at}")
}

/// Append the per-frame mean of `interleaved` (with `channels` channels) to `out`.
fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

#[cfg(test)]
mod tests {
    use super::downmix_into;

    #[test]
    fn samples_beyond_the_sane_range_are_errors_with_their_place() {
        use super::check_samples;
        check_samples(&[0.5, -1.5, 999.0, -1000.0], 2, 0, 10).unwrap();
        let e = check_samples(&[0.0, 0.0, 0.0, 1e30], 2, 10, 10).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("1e30") && e.contains("frame 11") && e.contains("1.100 s"),
            "{e}"
        );
        assert!(e.contains("channel 1"), "{e}");
        let e = check_samples(&[f32::NAN], 1, 0, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN sample at frame 0"), "{e}");
        let e = check_samples(&[f32::NEG_INFINITY], 1, 0, 10).unwrap_err();
        assert!(e.to_string().contains("infinite"), "{e}");
    }

    #[test]
    fn downmix_is_channel_mean() {
        let mut out = vec![9.0];
        downmix_into(&[1.0, 0.0, 0.5, -0.5, -1.0, -0.5], 2, &mut out);
        assert_eq!(out, vec![9.0, 0.5, 0.0, -0.75]);
        let mut out = Vec::new();
        downmix_into(&[0.25, 0.5, 1.0], 3, &mut out);
        assert!((out[0] - 1.75 / 3.0).abs() < 1e-7);
    }
}
