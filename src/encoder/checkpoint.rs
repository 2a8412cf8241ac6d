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
/// so a large checkpoint is not held twice.
pub struct WeightStore {
    label: String,
    bytes: Vec<u8>,
    data_start: usize,
    entries: HashMap<String, Entry>,
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
        let data_start = 8 + header_len;
        let entries = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let e = Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + info.data_offsets.0,
                    end: data_start + info.data_offsets.1,
                };
                (name, e)
            })
            .collect();
        Ok(Self {
            label: label.to_string(),
            bytes,
            data_start,
            entries,
        })
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

    /// The tensor `name` as f32, checked to have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
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
        self.convert(key, e)
    }

    fn convert(&self, key: &str, e: &Entry) -> Result<Vec<f32>> {
        let raw = self
            .bytes
            .get(e.start..e.end)
            .filter(|_| e.start >= self.data_start)
            .with_context(|| format!("{}: tensor {key} lies outside the file", self.label))?;
        let n: usize = e.shape.iter().product();
        let width = match e.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            other => bail!(
                "{}: tensor {key} has dtype {other:?}; only F32, F16 and BF16 are supported",
                self.label
            ),
        };
        if raw.len() != n * width {
            bail!(
                "{}: tensor {key} has {} bytes for shape {:?}",
                self.label,
                raw.len(),
                e.shape
            );
        }
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
    let spellings = [
        (format!("{prefix}.weight_g"), format!("{prefix}.weight_v")),
        (
            format!("{prefix}.parametrizations.weight.original0"),
            format!("{prefix}.parametrizations.weight.original1"),
        ),
    ];
    for (g_name, v_name) in &spellings {
        if store.contains(g_name) || store.contains(v_name) {
            let g = store.get(g_name, &[1, 1, k])?;
            let v = store.get(v_name, &[c_out, c_in, k])?;
            return Ok(fuse_weight_norm_dim2(&g, &v, k));
        }
    }
    let fused = format!("{prefix}.weight");
    if store.contains(&fused) {
        return store.get(&fused, &[c_out, c_in, k]);
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
