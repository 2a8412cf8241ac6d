//! The per-clip feature artifact: one f32 vector (or a frame sequence,
//! row-major), raw little-endian, nothing else.

use anyhow::{Context, Result, bail};
use std::path::Path;

pub fn write_vector(path: &Path, v: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub fn read_vector(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() % 4 != 0 {
        bail!(
            "{} is not a f32 vector ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_a_torn_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.f32");
        let v = [1.5f32, -0.0, f32::MIN_POSITIVE, 3e38];
        write_vector(&p, &v).unwrap();
        assert_eq!(read_vector(&p).unwrap(), v);
        std::fs::write(&p, [0u8; 7]).unwrap();
        let e = read_vector(&p).unwrap_err().to_string();
        assert!(e.contains("v.f32") && e.contains("7 bytes"), "{e}");
    }
}
