//! pipe's own tensor files: named f32 tensors plus string metadata in one
//! safetensors file (trained heads, model bundles), readable by any
//! safetensors reader. The metadata alone can be read without the tensors
//! ([`read_metadata`]): the train artifact keeps its out-of-fold predictions
//! there, and the report reads only that.
//!
//! Checkpoints of the encoders are read by `encoder::checkpoint`, which also
//! converts dtypes; this module only ever sees f32 written by itself.

use anyhow::{Context, Result, anyhow, bail, ensure};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Named f32 tensors and string metadata, in memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    /// name -> (shape, values).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

/// safetensors' own limit on the header.
const MAX_HEADER: u64 = 100_000_000;

impl TensorFile {
    pub fn new() -> TensorFile {
        TensorFile::default()
    }

    /// Adds `values` as a 1-D tensor. Empty vectors are not stored (a
    /// zero-sized tensor is legal but some readers reject it); [`Self::get_or_empty`]
    /// reads them back as empty.
    pub fn put(&mut self, name: impl Into<String>, values: Vec<f32>) {
        if !values.is_empty() {
            self.tensors
                .insert(name.into(), (vec![values.len()], values));
        }
    }

    pub fn meta(&mut self, key: &str, value: impl Into<String>) {
        self.metadata.insert(key.to_string(), value.into());
    }

    /// The tensor `name` flattened; `what` names the file in the error.
    pub fn get(&self, name: &str, what: &str) -> Result<&[f32]> {
        self.tensors
            .get(name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| anyhow!("{what}: no tensor `{name}`"))
    }

    /// The tensor `name`, or empty when it is absent (empty tensors are not stored).
    pub fn get_or_empty(&self, name: &str) -> Vec<f32> {
        self.tensors
            .get(name)
            .map_or_else(Vec::new, |(_, v)| v.clone())
    }

    /// The metadata entry `key`; `what` names the file in the error.
    pub fn meta_str(&self, key: &str, what: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{what}: no `{key}` in its metadata"))
    }

    /// The safetensors bytes. Written here rather than by
    /// `safetensors::serialize`, whose metadata map is a `HashMap` (its order,
    /// so the bytes, would change from run to run): tensors and metadata in
    /// name order, so the same content gives the same bytes and hash.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::to_value(&self.metadata)?);
        let mut offset = 0usize;
        for (name, (shape, values)) in &self.tensors {
            ensure!(
                shape.iter().product::<usize>() == values.len(),
                "tensor {name}: shape {shape:?} does not hold {} values",
                values.len()
            );
            let end = offset + 4 * values.len();
            header.insert(
                name.clone(),
                serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
            );
            offset = end;
        }
        let mut text = serde_json::to_vec(&header)?;
        // The data starts 8-byte aligned, as safetensors writes it.
        while !text.len().is_multiple_of(8) {
            text.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + text.len() + offset);
        out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        out.extend_from_slice(&text);
        for (_, values) in self.tensors.values() {
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Writes the file (callers in the pipeline write to the engine's
    /// temporary path, which it renames into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_bytes()?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a whole file; every tensor must be f32.
    pub fn read(path: &Path) -> Result<TensorFile> {
        let label = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("reading {label}"))?;
        TensorFile::from_bytes(&bytes, &label)
    }

    /// Parses safetensors bytes; `label` names them in errors.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<TensorFile> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| anyhow!("{label}: not a safetensors file: {e:?}"))?;
        let mut out = TensorFile::new();
        for (name, view) in st.tensors() {
            ensure!(
                view.dtype() == Dtype::F32,
                "{label}: tensor {name} is {:?}, expected F32",
                view.dtype()
            );
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            out.tensors.insert(name, (view.shape().to_vec(), values));
        }
        out.metadata = read_header_metadata(bytes, label)?;
        Ok(out)
    }
}

fn parse_metadata(header: &[u8], label: &str) -> Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: BTreeMap<String, String>,
    }
    let h: Header = serde_json::from_slice(header)
        .map_err(|e| anyhow!("{label}: not a safetensors header: {e}"))?;
    Ok(h.metadata)
}

fn read_header_metadata(bytes: &[u8], label: &str) -> Result<BTreeMap<String, String>> {
    let n = u64::from_le_bytes(
        bytes[..8]
            .try_into()
            .expect("8 bytes, checked by deserialize"),
    );
    parse_metadata(&bytes[8..8 + n as usize], label)
}

/// A file's metadata only: reads its header, not its tensors.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let label = path.display().to_string();
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {label}"))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading {label}"))?
        .len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|e| anyhow!("{label}: not a safetensors file: no header length ({e})"))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n + 8 > len {
        bail!("{label}: not a safetensors file: header length {n} does not fit its {len} bytes");
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .with_context(|| format!("reading the header of {label}"))?;
    parse_metadata(&header, &label)
}

/// The metadata entry `key` of the file at `path`, parsed from JSON.
pub fn read_metadata_json<T: serde::de::DeserializeOwned>(path: &Path, key: &str) -> Result<T> {
    let meta = read_metadata(path)?;
    let text = meta
        .get(key)
        .ok_or_else(|| anyhow!("{}: no `{key}` in its metadata", path.display()))?;
    serde_json::from_str(text).with_context(|| format!("{}: metadata `{key}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_and_metadata_round_trip_and_the_header_reads_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let mut f = TensorFile::new();
        f.put("a.params", vec![1.5, -2.0, f32::MIN_POSITIVE]);
        f.put("a.empty", vec![]);
        f.meta("pipe.x", r#"{"k":[1,2]}"#);
        f.write(&path).unwrap();
        let back = TensorFile::read(&path).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.get_or_empty("a.empty"), Vec::<f32>::new());
        assert_eq!(
            back.get("a.params", "t").unwrap(),
            &[1.5, -2.0, f32::MIN_POSITIVE]
        );
        #[derive(Debug, serde::Deserialize)]
        struct X {
            k: Vec<u32>,
        }
        let x: X = read_metadata_json(&path, "pipe.x").unwrap();
        assert_eq!(x.k, [1, 2]);
        // Same content, same bytes.
        assert_eq!(f.to_bytes().unwrap(), std::fs::read(&path).unwrap());
        let e = read_metadata_json::<X>(&path, "pipe.y").unwrap_err();
        assert!(format!("{e:#}").contains("no `pipe.y`"), "{e:#}");
        std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap();
        let e = read_metadata(&path).unwrap_err();
        assert!(format!("{e:#}").contains("header length"), "{e:#}");
    }
}
