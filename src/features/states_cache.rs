//! The opt-in hidden-state cache (`[encoders.X] cache_states = "7-12"`): the
//! listed hidden states of every clip, stored in f16 as one safetensors file
//! per (encoder, clip) (`hidden_states.<i>`, each `[frames, hidden]`, any
//! safetensors reader opens it), so feature sets within those states pool
//! from disk with no encoder pass.
//!
//! A set the cache covers is always pooled from the f16-rounded states, on
//! the encoder pass that fills the cache as on every later hit, so its
//! vector does not depend on whether the cache was warm; the features stage
//! keys such sets apart from encoder-pooled ones. Rounding to f16 moves each
//! state value by at most 2^-11 of its magnitude (round to nearest, 11
//! significant bits), and every pooling is 1-Lipschitz in the max norm (mean,
//! min, max; std through |σ(a) − σ(b)| ≤ rms(a − b)), so each pooled value
//! moves by at most 2^-11 · max |x| over the values it pools (plus f32
//! rounding): `tests/states_cache.rs` measures it.

use anyhow::{Context, Result, bail, ensure};
use half::f16;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::layers::{HiddenStates, LayerSelection};
use super::spec::{FeatureSetSpec, pool_many};
use crate::encoder::EncoderOutput;
use crate::encoder::checkpoint::WeightStore;

/// Bumped when the file layout changes: every cache file re-keys.
const FORMAT: &str = "pipe-states-v1";

/// Largest finite f16.
const F16_MAX: f32 = 65504.0;

/// One encoder's cache: which states it holds and where its files go (no
/// folder: the states are rounded to f16 in memory and never stored, as
/// `pipe predict` pools them).
#[derive(Clone, Debug)]
pub struct StatesCache {
    dir: Option<PathBuf>,
    /// Cached hidden-state indices, ascending.
    indices: Vec<usize>,
    n_states: usize,
}

impl StatesCache {
    /// The cache of `selection`'s states (its spelling as in `layers`; each
    /// state is kept, whatever the spelling combines) of an encoder with
    /// `n_states` hidden states, files under `dir`.
    pub fn new(
        dir: Option<PathBuf>,
        selection: &LayerSelection,
        n_states: usize,
    ) -> Result<StatesCache> {
        let mut indices = selection.indices(n_states)?;
        indices.sort_unstable();
        indices.dedup();
        Ok(StatesCache {
            dir,
            indices,
            n_states,
        })
    }

    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Whether every state `spec` reads is cached.
    pub fn covers(&self, spec: &FeatureSetSpec) -> bool {
        spec.layers
            .indices(self.n_states)
            .is_ok_and(|idx| idx.iter().all(|i| self.indices.binary_search(i).is_ok()))
    }

    /// The file of the clip whose states are determined by `what` (the
    /// encoder's key params and input keys, canonical); the cached indices
    /// are part of the key. `None` for a cache with no folder.
    pub fn path(&self, what: &str) -> Option<PathBuf> {
        let mut h = blake3::Hasher::new();
        for field in [FORMAT.as_bytes(), what.as_bytes()] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field);
        }
        for i in &self.indices {
            h.update(&(*i as u64).to_le_bytes());
        }
        let file = format!("{}.safetensors", h.finalize().to_hex());
        self.dir.as_ref().map(|d| d.join(file))
    }

    /// The cached states of `pass` rounded to f16 and back: what
    /// [`Self::write`] stores and returns.
    pub fn round(&self, pass: &EncoderOutput) -> Result<EncoderOutput> {
        round_states(pass, &self.indices)
    }

    /// The cached states in `path`, as f32 (exactly the f16 values).
    pub fn read(&self, path: &Path) -> Result<EncoderOutput> {
        let store = WeightStore::open(path)?;
        let mut out = EncoderOutput {
            frames: 0,
            hidden: 0,
            states: vec![None; self.n_states],
        };
        for &i in &self.indices {
            let name = format!("hidden_states.{i}");
            let shape = store
                .shape(&name)
                .with_context(|| format!("{}: no tensor {name}", path.display()))?
                .to_vec();
            ensure!(
                shape.len() == 2 && (out.hidden == 0 || shape == [out.frames, out.hidden]),
                "{}: tensor {name} has shape {shape:?}, expected [frames, hidden] like the others",
                path.display()
            );
            (out.frames, out.hidden) = (shape[0], shape[1]);
            out.states[i] = Some(store.get(&name, &shape)?);
        }
        Ok(out)
    }

    /// Rounds the cached states of `pass` to f16, writes them to `path`
    /// atomically and returns them as f32 (what [`Self::read`] will return).
    pub fn write(&self, path: &Path, pass: &EncoderOutput) -> Result<EncoderOutput> {
        let Some(dir) = &self.dir else {
            bail!("the states cache has no folder to write {}", path.display());
        };
        let rounded = self.round(pass)?;
        let bytes: Vec<(String, Vec<u8>)> = self
            .indices
            .iter()
            .map(|&i| {
                let s = rounded.states[i].as_ref().expect("rounded above");
                let b = s.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes());
                (format!("hidden_states.{i}"), b.collect())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(k, b)| {
                TensorView::new(Dtype::F16, vec![pass.frames, pass.hidden], b)
                    .map(|v| (k.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("building the states cache tensors: {e:?}"))?;
        let meta = HashMap::from([("format".to_string(), FORMAT.to_string())]);
        let buf = safetensors::serialize(views, Some(meta))
            .map_err(|e| anyhow::anyhow!("serialising the states cache: {e:?}"))?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Temporary file in the same folder, then rename: a killed run leaves
        // the whole file or none.
        let tmp = dir.join(format!(
            ".tmp-{}-{:?}.safetensors",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&tmp, buf).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(rounded)
    }
}

/// Pools cached (f16-valued) states for every spec: the host pooling of
/// [`pool_many`], the oracle the device pooling is tested against.
pub fn pool_cached(specs: &[FeatureSetSpec], states: &EncoderOutput) -> Result<Vec<Vec<f32>>> {
    let hs = HiddenStates::new(states.frames, states.hidden, &states.states)?;
    pool_many(specs, &hs)
}

/// States `indices` of `pass` rounded to f16 and back (the others dropped):
/// what the cache holds of a pass. An error for a state beyond f16's range.
fn round_states(pass: &EncoderOutput, indices: &[usize]) -> Result<EncoderOutput> {
    let mut rounded = EncoderOutput {
        frames: pass.frames,
        hidden: pass.hidden,
        states: vec![None; pass.states.len()],
    };
    for &i in indices {
        let s = pass
            .states
            .get(i)
            .and_then(Option::as_ref)
            .with_context(|| format!("hidden state {i} was not downloaded for the states cache"))?;
        ensure!(
            s.len() == pass.frames * pass.hidden,
            "hidden state {i}: {} values for [{} frames, {} hidden]",
            s.len(),
            pass.frames,
            pass.hidden
        );
        if let Some((k, x)) = s
            .iter()
            .enumerate()
            .find(|(_, x)| x.is_nan() || x.abs() > F16_MAX)
        {
            bail!(
                "hidden state {i} holds {x} at frame {}, beyond f16's range (±65504): \
                 this encoder's states cannot be cached; remove its cache_states",
                k / pass.hidden.max(1)
            );
        }
        rounded.states[i] = Some(round_f16(s));
    }
    Ok(rounded)
}

/// `v` rounded to f16 and back: what the cache stores of each value.
pub fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Pooling;

    fn spec(layers: &str) -> FeatureSetSpec {
        FeatureSetSpec {
            layers: layers.parse().unwrap(),
            pooling: Pooling::MeanStd,
            max_frames: 1000,
        }
    }

    fn cache(dir: &Path, layers: &str) -> StatesCache {
        StatesCache::new(Some(dir.join("states")), &layers.parse().unwrap(), 13).unwrap()
    }

    #[test]
    fn covers_exactly_the_sets_within_its_states() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), "7-12");
        assert_eq!(c.indices(), [7, 8, 9, 10, 11, 12]);
        for inside in ["7-12", "9-12", "12", "7,9,12", "8-9"] {
            assert!(c.covers(&spec(inside)), "{inside}");
        }
        for outside in ["6-12", "1-4", "6,9,12", "all", "all-concat", "13"] {
            assert!(!c.covers(&spec(outside)), "{outside}");
        }
        let all = cache(dir.path(), "all");
        assert!(all.covers(&spec("all-concat")) && all.covers(&spec("0")));
        let e = StatesCache::new(Some(dir.path().into()), &"7-13".parse().unwrap(), 13)
            .unwrap_err()
            .to_string();
        assert!(e.contains("13 hidden states"), "{e}");
    }

    #[test]
    fn keys_follow_the_clip_and_the_cached_states() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (cache(dir.path(), "7-12"), cache(dir.path(), "6-12"));
        assert_eq!(a.path("x"), a.path("x"));
        assert_ne!(a.path("x"), a.path("y"));
        assert_ne!(a.path("x"), b.path("x"));
        let memory = StatesCache::new(None, &"7-12".parse().unwrap(), 13).unwrap();
        assert_eq!(memory.path("x"), None);
    }

    #[test]
    fn written_states_read_back_as_their_f16_values() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), "11-12");
        let (frames, hidden) = (3, 2);
        let mut pass = EncoderOutput {
            frames,
            hidden,
            states: vec![None; 13],
        };
        let vals = |k: f32| {
            (0..6)
                .map(|j| k + 0.1 * j as f32 + 1e-4)
                .collect::<Vec<f32>>()
        };
        pass.states[11] = Some(vals(1.0));
        pass.states[12] = Some(vals(-300.0));
        pass.states[3] = Some(vals(9.0)); // not cached: not written
        let path = c.path("clip").unwrap();
        let rounded = c.write(&path, &pass).unwrap();
        assert_eq!(c.round(&pass).unwrap().states, rounded.states);
        let back = c.read(&path).unwrap();
        assert_eq!((back.frames, back.hidden), (frames, hidden));
        assert_eq!(back.states, rounded.states);
        assert!(back.states[3].is_none());
        for i in [11, 12] {
            let (orig, got) = (
                pass.states[i].as_ref().unwrap(),
                back.states[i].as_ref().unwrap(),
            );
            assert_eq!(got, &round_f16(orig));
            for (x, y) in orig.iter().zip(got) {
                assert!((x - y).abs() <= x.abs() * 2f32.powi(-11), "{x} -> {y}");
            }
            assert_ne!(orig, got, "these values are not all f16-exact");
        }
        // Pooling the cache = pooling the rounded states.
        let pooled = pool_cached(&[spec("11-12")], &back).unwrap();
        assert_eq!(pooled[0].len(), 2 * hidden);
        let e = format!("{:#}", pool_cached(&[spec("3")], &back).unwrap_err());
        assert!(e.contains("hidden_states[3]"), "{e}");
    }

    #[test]
    fn out_of_range_states_and_torn_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), "12");
        let mut pass = EncoderOutput {
            frames: 2,
            hidden: 1,
            states: vec![None; 13],
        };
        pass.states[12] = Some(vec![1.0, 7e4]);
        let e = c
            .write(&c.path("c").unwrap(), &pass)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("beyond f16's range") && e.contains("frame 1"),
            "{e}"
        );
        let torn = c.path("t").unwrap();
        std::fs::create_dir_all(torn.parent().unwrap()).unwrap();
        std::fs::write(&torn, b"12345").unwrap();
        assert!(c.read(&torn).is_err());
        assert!(c.read(&c.path("missing").unwrap()).is_err());
    }
}
