//! Clips that did not make it: which file, at which stage, and why. Tables
//! built on the good clips carry this list in their metadata
//! (`pipe.failed`), so training and the report can say what every number
//! rests on and what was left out.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Metadata key of the failed-clip list in a table.
pub const META_KEY: &str = "pipe.failed";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedClip {
    pub clip_id: String,
    /// The clip's source file (MIDI or audio).
    pub file: String,
    /// The stage that failed (the first one, for a clip that failed early).
    pub stage: String,
    pub reason: String,
}

/// The list as table metadata (JSON).
pub fn to_meta(failed: &[FailedClip]) -> String {
    serde_json::to_string(failed).expect("plain strings serialize")
}

/// The list back from table metadata; none when the key is absent.
pub fn from_meta(meta: Option<&String>, table: &str) -> Result<Vec<FailedClip>> {
    meta.map_or(Ok(Vec::new()), |m| {
        serde_json::from_str(m)
            .with_context(|| format!("{table}: metadata {META_KEY} is not a failed-clip list"))
    })
}

/// `a` then the clips of `b` not already in it (a clip counts once, at the
/// first stage it failed).
pub fn merge(a: &[FailedClip], b: &[FailedClip]) -> Vec<FailedClip> {
    let mut out = a.to_vec();
    for f in b {
        if !out.iter().any(|g| g.clip_id == f.clip_id) {
            out.push(f.clone());
        }
    }
    out.sort_by(|x, y| x.clip_id.cmp(&y.clip_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, stage: &str) -> FailedClip {
        FailedClip {
            clip_id: id.into(),
            file: format!("{id}.wav"),
            stage: stage.into(),
            reason: "bad".into(),
        }
    }

    #[test]
    fn lists_round_trip_and_merge_once_per_clip() {
        let a = vec![f("c2", "decode")];
        let back = from_meta(Some(&to_meta(&a)), "t").unwrap();
        assert_eq!(back, a);
        assert!(from_meta(None, "t").unwrap().is_empty());
        let m = merge(&a, &[f("c2", "decode"), f("c1", "features")]);
        assert_eq!(m, vec![f("c1", "features"), f("c2", "decode")]);
    }
}
