//! Reading HF `model.safetensors` checkpoints: tensors by name, converted to f32, with shape checks.
//!
//! MERT-v1 is published as `pytorch_model.bin`. Convert it once, keeping the
//! tensor names (run in a Python with torch and safetensors):
//!
//! ```text
//! python -c "import torch; from safetensors.torch import save_file; sd = torch.load('pytorch_model.bin', map_location='cpu', weights_only=True); save_file({k: v.contiguous() for k, v in sd.items()}, 'model.safetensors')"
//! ```
//!
//! The positional-conv weight norm may be stored in any of the three spellings
//! ([`weight_norm_conv`]); it is fused once here, at load time.

use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// One tensor's place in the file.
#[derive(Clone, Debug)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A safetensors checkpoint held as raw bytes; tensors are converted to f32 on lookup,
/// so a large checkpoint is not held twice. Or only its header
/// ([`WeightStore::open_header`]): names, dtypes and shapes to check a model
/// against before any work, without reading the values.
pub struct WeightStore {
    label: String,
    bytes: Vec<u8>,
    data_start: usize,
    entries: HashMap<String, Entry>,
    header_only: bool,
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WeightStore({}, {} tensors)",
            self.label,
            self.entries.len()
        )
    }
}

impl WeightStore {
    /// Read a `.safetensors` file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_bytes(bytes, &path.display().to_string())
    }

    /// Parse a safetensors buffer; `label` names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, label: &str) -> Result<Self> {
        let (header_len, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| anyhow::anyhow!("{label}: not a safetensors file: {e:?}"))?;
        Ok(Self::indexed(label, bytes, 8 + header_len, &meta, false))
    }

    /// Read only the header of a `.safetensors` file (its names, dtypes,
    /// shapes and offsets, checked against the file's length), not its data.
    pub fn open_header(path: &Path) -> Result<Self> {
        use std::io::Read;
        let label = path.display().to_string();
        let mut file = std::fs::File::open(path).with_context(|| format!("reading {label}"))?;
        let file_len = file
            .metadata()
            .with_context(|| format!("reading {label}"))?
            .len();
        let not_st = |why: String| anyhow::anyhow!("{label}: not a safetensors file: {why}");
        let mut n = [0u8; 8];
        file.read_exact(&mut n)
            .map_err(|e| not_st(format!("no 8-byte header length ({e})")))?;
        let n = u64::from_le_bytes(n);
        // safetensors' own limit on the header (100 MB)
        if n > 100_000_000 || n + 8 > file_len {
            return Err(not_st(format!(
                "header length {n} does not fit the file ({file_len} bytes)"
            )));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .map_err(|e| not_st(format!("reading the header: {e}")))?;
        let meta: safetensors::tensor::Metadata =
            serde_json::from_slice(&header).map_err(|e| not_st(format!("bad header: {e}")))?;
        let data_len = meta
            .tensors()
            .values()
            .map(|t| t.data_offsets.1)
            .max()
            .unwrap_or(0) as u64;
        if 8u64.checked_add(n).and_then(|x| x.checked_add(data_len)) != Some(file_len) {
            return Err(not_st(format!(
                "the header describes {} bytes of tensors, the file holds {} (truncated or padded)",
                data_len,
                file_len - 8 - n
            )));
        }
        Ok(Self::indexed(
            &label,
            Vec::new(),
            8 + n as usize,
            &meta,
            true,
        ))
    }

    fn indexed(
        label: &str,
        bytes: Vec<u8>,
        data_start: usize,
        meta: &safetensors::tensor::Metadata,
        header_only: bool,
    ) -> Self {
        let entries = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let e = Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start.saturating_add(info.data_offsets.0),
                    end: data_start.saturating_add(info.data_offsets.1),
                };
                (name, e)
            })
            .collect();
        Self {
            label: label.to_string(),
            bytes,
            data_start,
            entries,
            header_only,
        }
    }

    /// Where the store came from (file path), for error messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// All tensor names in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The file's name for `name`, tolerating an extra or missing `model.` prefix.
    fn resolve(&self, name: &str) -> Option<&str> {
        let alt = match name.strip_prefix("model.") {
            Some(s) => s.to_string(),
            None => format!("model.{name}"),
        };
        [name, alt.as_str()]
            .into_iter()
            .find_map(|n| self.entries.get_key_value(n).map(|(k, _)| k.as_str()))
    }

    /// Whether the file has `name` (modulo the `model.` prefix).
    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// Shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.resolve(name).map(|n| self.entries[n].shape.as_slice())
    }

    /// The tensor `name` as f32, checked to have exactly `shape` and only
    /// finite values (a NaN weight would make every output NaN).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (key, e) = self.entry(name, shape)?;
        if self.header_only {
            bail!("{}: opened for its header only", self.label);
        }
        let values = self.convert(key, e)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: tensor {key} holds {} at flat index {i}; only finite values are usable",
                self.label,
                values[i]
            );
        }
        Ok(values)
    }

    /// Checks that the file has tensor `name` with exactly `shape`, a
    /// supported dtype and the bytes that shape needs, reading no values.
    pub fn check(&self, name: &str, shape: &[usize]) -> Result<()> {
        self.entry(name, shape).map(|_| ())
    }

    fn entry(&self, name: &str, shape: &[usize]) -> Result<(&str, &Entry)> {
        let Some(key) = self.resolve(name) else {
            bail!(
                "{}: missing tensor {name} (expected shape {shape:?})",
                self.label
            );
        };
        let e = &self.entries[key];
        if e.shape != shape {
            bail!(
                "{}: tensor {key} has shape {:?}, expected {shape:?}",
                self.label,
                e.shape
            );
        }
        let width = match e.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            other => bail!(
                "{}: tensor {key} has dtype {other:?}; only F32, F16 and BF16 are supported",
                self.label
            ),
        };
        let bytes = shape
            .iter()
            .try_fold(width, |a: usize, &d| a.checked_mul(d));
        if e.start < self.data_start || bytes != e.end.checked_sub(e.start) {
            bail!(
                "{}: tensor {key} has {} bytes for shape {:?}",
                self.label,
                e.end.saturating_sub(e.start),
                e.shape
            );
        }
        Ok((key, e))
    }

    fn convert(&self, key: &str, e: &Entry) -> Result<Vec<f32>> {
        let raw = self
            .bytes
            .get(e.start..e.end)
            .with_context(|| format!("{}: tensor {key} lies outside the file", self.label))?;
        Ok(match e.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        })
    }
}

/// Fuse weight norm over `dim=2`: `w[o,i,k] = g[k]·v[o,i,k] / ‖v[:,:,k]‖₂`
/// (one norm per kernel tap over all output and input channels), `v` `[c_out, c_in, k]`.
pub fn fuse_weight_norm_dim2(g: &[f32], v: &[f32], k: usize) -> Vec<f32> {
    assert_eq!(g.len(), k, "weight norm: g is not [1, 1, k]");
    assert_eq!(v.len() % k, 0, "weight norm: v is not [.., .., k]");
    let mut sq = vec![0.0f64; k];
    for (i, &x) in v.iter().enumerate() {
        sq[i % k] += (x as f64) * (x as f64);
    }
    v.iter()
        .enumerate()
        .map(|(i, &x)| (g[i % k] as f64 * x as f64 / sq[i % k].sqrt()) as f32)
        .collect()
}

/// The weight of a weight-normed conv at `prefix` (e.g. `encoder.pos_conv_embed.conv`),
/// shape `[c_out, c_in, k]`, fused. Accepts `weight_g`/`weight_v`,
/// `parametrizations.weight.original0`/`original1` (torch ≥ 2.1), or a fused `weight`.
pub fn weight_norm_conv(
    store: &WeightStore,
    prefix: &str,
    c_out: usize,
    c_in: usize,
    k: usize,
) -> Result<Vec<f32>> {
    match weight_norm_spelling(store, prefix, c_out, c_in, k)? {
        WeightNorm::Split { g, v } => {
            let g = store.get(&g, &[1, 1, k])?;
            let v = store.get(&v, &[c_out, c_in, k])?;
            Ok(fuse_weight_norm_dim2(&g, &v, k))
        }
        WeightNorm::Fused(w) => store.get(&w, &[c_out, c_in, k]),
    }
}

/// How a checkpoint stores a weight-normed conv.
pub enum WeightNorm {
    /// Magnitude `g` `[1, 1, k]` and direction `v` `[c_out, c_in, k]`.
    Split { g: String, v: String },
    /// The fused weight `[c_out, c_in, k]`.
    Fused(String),
}

/// Which spelling of the weight-normed conv at `prefix` the file uses, its
/// tensors checked (names, shapes), values not read.
pub fn weight_norm_spelling(
    store: &WeightStore,
    prefix: &str,
    c_out: usize,
    c_in: usize,
    k: usize,
) -> Result<WeightNorm> {
    let spellings = [
        (format!("{prefix}.weight_g"), format!("{prefix}.weight_v")),
        (
            format!("{prefix}.parametrizations.weight.original0"),
            format!("{prefix}.parametrizations.weight.original1"),
        ),
    ];
    for (g, v) in spellings {
        if store.contains(&g) || store.contains(&v) {
            store.check(&g, &[1, 1, k])?;
            store.check(&v, &[c_out, c_in, k])?;
            return Ok(WeightNorm::Split { g, v });
        }
    }
    let fused = format!("{prefix}.weight");
    if store.contains(&fused) {
        store.check(&fused, &[c_out, c_in, k])?;
        return Ok(WeightNorm::Fused(fused));
    }
    bail!(
        "{}: missing tensor {prefix}.weight_g/.weight_v (or .parametrizations.weight.original0/1, or fused .weight), \
         expected v shape {:?}",
        store.label(),
        [c_out, c_in, k]
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// Serialise named f32 tensors into a safetensors buffer (test helper).
    pub(crate) fn to_safetensors(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s, d)| {
                (
                    n.to_string(),
                    s.clone(),
                    d.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views = bytes.iter().map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        });
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn get_checks_name_and_shape() {
        let buf = to_safetensors(&[("a.weight", vec![2, 3], (0..6).map(|v| v as f32).collect())]);
        let s = WeightStore::from_bytes(buf, "test.safetensors").unwrap();
        assert_eq!(
            s.get("a.weight", &[2, 3]).unwrap(),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        let e = s.get("a.weight", &[3, 2]).unwrap_err().to_string();
        assert!(
            e.contains("a.weight") && e.contains("[2, 3]") && e.contains("[3, 2]"),
            "{e}"
        );
        let e = s.get("b.weight", &[4]).unwrap_err().to_string();
        assert!(
            e.contains("missing tensor b.weight") && e.contains("[4]"),
            "{e}"
        );
    }

    /// A NaN weight made `pipe encode` write all-NaN states with exit 0.
    #[test]
    fn non_finite_values_are_refused_naming_the_tensor() {
        let buf = to_safetensors(&[("w", vec![3], vec![1.0, f32::NAN, 2.0])]);
        let s = WeightStore::from_bytes(buf, "m.safetensors").unwrap();
        let e = s.get("w", &[3]).unwrap_err().to_string();
        assert!(
            e.contains("m.safetensors") && e.contains("tensor w holds NaN at flat index 1"),
            "{e}"
        );
    }

    /// The header alone tells a wrong checkpoint from a right one, before
    /// any work; a truncated file is refused by its length.
    #[test]
    fn the_header_is_checked_without_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let buf = to_safetensors(&[
            ("a", vec![2, 3], vec![0.5; 6]),
            ("b", vec![4], vec![1.0; 4]),
        ]);
        std::fs::write(&path, &buf).unwrap();
        let h = WeightStore::open_header(&path).unwrap();
        h.check("a", &[2, 3]).unwrap();
        h.check("model.b", &[4]).unwrap();
        let e = h.check("a", &[3, 2]).unwrap_err().to_string();
        assert!(
            e.contains("tensor a has shape [2, 3], expected [3, 2]"),
            "{e}"
        );
        let e = h.check("c", &[1]).unwrap_err().to_string();
        assert!(e.contains("missing tensor c"), "{e}");
        assert!(
            h.get("a", &[2, 3]).is_err(),
            "no values in a header-only store"
        );
        std::fs::write(&path, &buf[..buf.len() - 3]).unwrap();
        let e = WeightStore::open_header(&path).unwrap_err().to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("truncated"),
            "{e}"
        );
        std::fs::write(&path, b"not a checkpoint at all").unwrap();
        let e = WeightStore::open_header(&path).unwrap_err().to_string();
        assert!(e.contains("not a safetensors file"), "{e}");
    }

    #[test]
    fn model_prefix_is_tolerated_both_ways() {
        let buf = to_safetensors(&[("model.x", vec![1], vec![1.5]), ("y", vec![1], vec![2.5])]);
        let s = WeightStore::from_bytes(buf, "t").unwrap();
        assert_eq!(s.get("x", &[1]).unwrap(), vec![1.5]);
        assert_eq!(s.get("model.y", &[1]).unwrap(), vec![2.5]);
    }

    #[test]
    fn half_precision_converts() {
        let f16 = [half::f16::from_f32(1.5), half::f16::from_f32(-0.25)];
        let bf16 = [half::bf16::from_f32(3.0), half::bf16::from_f32(-2.0)];
        let b16: Vec<u8> = f16.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bb: Vec<u8> = bf16.iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![
            (
                "h".to_string(),
                TensorView::new(Dtype::F16, vec![2], &b16).unwrap(),
            ),
            (
                "b".to_string(),
                TensorView::new(Dtype::BF16, vec![2], &bb).unwrap(),
            ),
        ];
        let s = WeightStore::from_bytes(safetensors::serialize(views, None).unwrap(), "t").unwrap();
        assert_eq!(s.get("h", &[2]).unwrap(), vec![1.5, -0.25]);
        assert_eq!(s.get("b", &[2]).unwrap(), vec![3.0, -2.0]);
    }

    #[test]
    fn weight_norm_fuses_per_tap() {
        // v [2, 1, 2]: tap 0 column (3, 4) has norm 5; tap 1 column (0, 2) has norm 2.
        let v = [3.0, 0.0, 4.0, 2.0];
        let w = fuse_weight_norm_dim2(&[10.0, 0.5], &v, 2);
        assert_eq!(w, vec![6.0, 0.0, 8.0, 0.5]);
    }

    #[test]
    fn three_weight_norm_spellings_agree() {
        let (c_out, c_in, k) = (4, 2, 3);
        let v: Vec<f32> = (0..c_out * c_in * k)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let g = vec![0.5, 1.25, 2.0];
        let fused = fuse_weight_norm_dim2(&g, &v, k);
        let p = "encoder.pos_conv_embed.conv";
        let files = [
            to_safetensors(&[
                (&format!("{p}.weight_g"), vec![1, 1, k], g.clone()),
                (&format!("{p}.weight_v"), vec![c_out, c_in, k], v.clone()),
            ]),
            to_safetensors(&[
                (
                    &format!("{p}.parametrizations.weight.original0"),
                    vec![1, 1, k],
                    g.clone(),
                ),
                (
                    &format!("{p}.parametrizations.weight.original1"),
                    vec![c_out, c_in, k],
                    v.clone(),
                ),
            ]),
            to_safetensors(&[(&format!("{p}.weight"), vec![c_out, c_in, k], fused.clone())]),
        ];
        for buf in files {
            let s = WeightStore::from_bytes(buf, "t").unwrap();
            assert_eq!(weight_norm_conv(&s, p, c_out, c_in, k).unwrap(), fused);
        }
        let empty =
            WeightStore::from_bytes(to_safetensors(&[("other", vec![1], vec![0.0])]), "t").unwrap();
        let e = weight_norm_conv(&empty, p, c_out, c_in, k)
            .unwrap_err()
            .to_string();
        assert!(e.contains("encoder.pos_conv_embed.conv.weight_g"), "{e}");
    }
}
