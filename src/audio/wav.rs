//! The per-clip artifact format: plain mono RIFF/WAVE that any audio tool reads.
//!
//! `write_f32` / `read_f32` are the lossless round trip between stages (bit-exact);
//! `write_i16` is for rendered "recordings" meant to be listened to or shared.
//! The reader only accepts what `write_f32` writes (mono, 32-bit IEEE float), so it
//! needs no codec library; anything else goes through [`super::decode_file`].

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::Pcm;

const FORMAT_PCM: u16 = 1;
const FORMAT_IEEE_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Write `pcm` as a WAV with 32-bit IEEE-float mono samples (bit-exact round trip).
pub fn write_f32(path: &Path, pcm: &Pcm) -> Result<()> {
    check_writable(path, pcm)?;
    if let Some(i) = pcm.samples.iter().position(|s| !s.is_finite()) {
        bail!(
            "{}: refusing to write non-finite sample {} at index {i}",
            path.display(),
            pcm.samples[i]
        );
    }
    let mut data = Vec::with_capacity(pcm.samples.len() * 4);
    for s in &pcm.samples {
        data.extend_from_slice(&s.to_le_bytes());
    }
    write_wav(path, FORMAT_IEEE_FLOAT, 32, pcm, &data)
}

/// Write `pcm` as 16-bit PCM mono. Samples are scaled by 32768 (the convention
/// decoders use when reading back), rounded, and clipped to the i16 range.
pub fn write_i16(path: &Path, pcm: &Pcm) -> Result<()> {
    check_writable(path, pcm)?;
    let mut data = Vec::with_capacity(pcm.samples.len() * 2);
    for (i, &s) in pcm.samples.iter().enumerate() {
        ensure!(
            !s.is_nan(),
            "{}: refusing to write NaN sample at index {i}",
            path.display()
        );
        let q = (f64::from(s) * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        data.extend_from_slice(&q.to_le_bytes());
    }
    write_wav(path, FORMAT_PCM, 16, pcm, &data)
}

/// Read a mono 32-bit float WAV as written by [`write_f32`].
pub fn read_f32(path: &Path) -> Result<Pcm> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_f32(&bytes).with_context(|| {
        format!(
            "{}: expected a mono 32-bit float WAV artifact (use decode_file for other audio)",
            path.display()
        )
    })
}

fn check_writable(path: &Path, pcm: &Pcm) -> Result<()> {
    ensure!(
        pcm.sample_rate > 0,
        "{}: cannot write a WAV with sample rate 0",
        path.display()
    );
    Ok(())
}

fn write_wav(path: &Path, format: u16, bits: u16, pcm: &Pcm, data: &[u8]) -> Result<()> {
    let float = format == FORMAT_IEEE_FLOAT;
    // Non-PCM formats carry cbSize in fmt and a fact chunk (frame count), as the spec asks.
    let fmt_len: u32 = if float { 18 } else { 16 };
    let fact_len: u32 = if float { 12 } else { 0 };
    let data_len = u32::try_from(data.len())
        .ok()
        .filter(|n| n.checked_add(60).is_some())
        .with_context(|| format!("{}: audio too long for a WAV file", path.display()))?;
    let riff_len = 4 + (8 + fmt_len) + fact_len + 8 + data_len + (data_len & 1);
    let block_align = bits / 8;

    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(b"RIFF");
    head.extend_from_slice(&riff_len.to_le_bytes());
    head.extend_from_slice(b"WAVEfmt ");
    head.extend_from_slice(&fmt_len.to_le_bytes());
    head.extend_from_slice(&format.to_le_bytes());
    head.extend_from_slice(&1u16.to_le_bytes()); // mono
    head.extend_from_slice(&pcm.sample_rate.to_le_bytes());
    head.extend_from_slice(&(pcm.sample_rate * u32::from(block_align)).to_le_bytes());
    head.extend_from_slice(&block_align.to_le_bytes());
    head.extend_from_slice(&bits.to_le_bytes());
    if float {
        head.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        head.extend_from_slice(b"fact");
        head.extend_from_slice(&4u32.to_le_bytes());
        head.extend_from_slice(&(pcm.samples.len() as u32).to_le_bytes());
    }
    head.extend_from_slice(b"data");
    head.extend_from_slice(&data_len.to_le_bytes());

    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(file);
    let write = |w: &mut BufWriter<fs::File>| -> std::io::Result<()> {
        w.write_all(&head)?;
        w.write_all(data)?;
        if data_len & 1 == 1 {
            w.write_all(&[0])?; // RIFF chunks are word aligned
        }
        w.flush()
    };
    write(&mut w).with_context(|| format!("writing {}", path.display()))
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_f32(b: &[u8]) -> Result<Pcm> {
    ensure!(!b.is_empty(), "file is empty");
    ensure!(
        b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "not a RIFF/WAVE file"
    );
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let len = le_u32(b, pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            ensure!(len >= 16 && body + len <= b.len(), "truncated fmt chunk");
            let mut tag = le_u16(b, body);
            if tag == FORMAT_EXTENSIBLE && len >= 26 {
                // The sub-format GUID starts with the actual format tag.
                tag = le_u16(b, body + 24);
            }
            fmt = Some((
                tag,
                le_u16(b, body + 2),
                le_u32(b, body + 4),
                le_u16(b, body + 14),
            ));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = fmt.context("data chunk before fmt chunk")?;
            ensure!(
                tag == FORMAT_IEEE_FLOAT && channels == 1 && bits == 32,
                "found format tag {tag}, {channels} channel(s), {bits} bits per sample"
            );
            ensure!(rate > 0, "sample rate is 0");
            ensure!(
                len.is_multiple_of(4) && body + len <= b.len(),
                "truncated data chunk: header says {len} bytes, file has {}",
                b.len().saturating_sub(body)
            );
            let samples = b[body..body + len]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            return Ok(Pcm {
                sample_rate: rate,
                samples,
            });
        }
        pos = body + len + (len & 1);
    }
    bail!("no data chunk")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tricky_pcm() -> Pcm {
        // Values that a lossy or rounding path would change: subnormals, -0, > 1.
        let mut samples: Vec<f32> = (0..1001)
            .map(|i| ((i as f32) * 0.731).sin() * 0.9)
            .collect();
        samples.extend([f32::MIN_POSITIVE / 3.0, -0.0, 1.5, -1.25, 1e-30]);
        Pcm {
            sample_rate: 22050,
            samples,
        }
    }

    #[test]
    fn f32_round_trip_is_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.wav");
        let pcm = tricky_pcm();
        write_f32(&path, &pcm).unwrap();
        let back = read_f32(&path).unwrap();
        assert_eq!(back.sample_rate, 22050);
        assert_eq!(back.samples.len(), pcm.samples.len());
        for (a, b) in pcm.samples.iter().zip(&back.samples) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        // 12 RIFF/WAVE + 26 fmt + 12 fact + 8 data header + payload
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        assert_eq!(len, 58 + 4 * pcm.samples.len());
    }

    #[test]
    fn f32_artifact_is_readable_by_the_general_decoder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.wav");
        let pcm = Pcm {
            sample_rate: 16000,
            samples: vec![0.25, -0.5, 0.125, 0.0, 0.75],
        };
        write_f32(&path, &pcm).unwrap();
        assert_eq!(crate::audio::decode_file(&path).unwrap(), pcm);
    }

    #[test]
    fn i16_round_trip_within_one_lsb_and_clipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.wav");
        let mut pcm = tricky_pcm();
        pcm.samples.extend([1.0, -1.0, 3.0, -3.0]);
        write_i16(&path, &pcm).unwrap();
        let back = crate::audio::decode_file(&path).unwrap();
        assert_eq!(back.sample_rate, pcm.sample_rate);
        assert_eq!(back.samples.len(), pcm.samples.len());
        for (a, b) in pcm.samples.iter().zip(&back.samples) {
            let expect = a.clamp(-1.0, 32767.0 / 32768.0);
            assert!((expect - b).abs() <= 1.0 / 32768.0, "{a} -> {b}");
        }
        let n = back.samples.len();
        assert_eq!(back.samples[n - 2], 32767.0 / 32768.0);
        assert_eq!(back.samples[n - 1], -1.0);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            44 + 2 * n + (n & 1)
        );
    }

    #[test]
    fn writers_reject_nan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nan.wav");
        let pcm = Pcm {
            sample_rate: 8000,
            samples: vec![0.0, f32::NAN],
        };
        let err = format!("{:#}", write_f32(&path, &pcm).unwrap_err());
        assert!(err.contains("nan.wav") && err.contains("index 1"), "{err}");
        let err = format!("{:#}", write_i16(&path, &pcm).unwrap_err());
        assert!(err.contains("nan.wav") && err.contains("index 1"), "{err}");
    }

    #[test]
    fn read_f32_rejects_other_wavs_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pcm16.wav");
        let pcm = Pcm {
            sample_rate: 8000,
            samples: vec![0.5; 10],
        };
        write_i16(&path, &pcm).unwrap();
        let err = format!("{:#}", read_f32(&path).unwrap_err());
        assert!(err.contains("pcm16.wav"), "{err}");
        assert!(err.contains("format tag 1"), "{err}");

        let text = dir.path().join("notes.wav");
        std::fs::write(&text, "just some text, not audio").unwrap();
        let err = format!("{:#}", read_f32(&text).unwrap_err());
        assert!(err.contains("notes.wav") && err.contains("RIFF"), "{err}");

        let missing = dir.path().join("missing.wav");
        let err = format!("{:#}", read_f32(&missing).unwrap_err());
        assert!(err.contains("missing.wav"), "{err}");
    }

    #[test]
    fn read_f32_rejects_truncated_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        write_f32(&path, &tricky_pcm()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = format!("{:#}", read_f32(&path).unwrap_err());
        assert!(
            err.contains("cut.wav") && err.contains("truncated"),
            "{err}"
        );
    }
}
