//! A configured feature set (`[features.NAME]`): its name, its config and what
//! computes it (a weight-free baseline, or an encoder's layers × pooling).

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use super::extract::Baseline;
use super::spec::FeatureSetSpec;
use crate::config::FeatureSetConfig;

pub struct FeatureSet {
    pub name: String,
    pub cfg: FeatureSetConfig,
    pub kind: FeatureKind,
}

pub enum FeatureKind {
    Baseline(Baseline),
    /// Layer selection and pooling of the encoder `cfg.encoder`.
    Encoded(FeatureSetSpec),
}

impl FeatureSet {
    /// Checks a `[features.NAME]` entry and parses its layers and pooling.
    pub fn from_config(name: &str, cfg: &FeatureSetConfig) -> Result<FeatureSet> {
        let kind = match Baseline::parse(&cfg.encoder) {
            Some(b) => {
                // A sequence source may say `pooling = "frames"`; nothing else applies.
                let frames_ok = b.is_frames() && cfg.pooling.as_deref() == Some("frames");
                if cfg.layers.is_some() || (cfg.pooling.is_some() && !frames_ok) {
                    bail!(
                        "features.{name}: layers and pooling do not apply to the weight-free baseline `{}`",
                        cfg.encoder
                    );
                }
                FeatureKind::Baseline(b)
            }
            None => {
                let layers = cfg.layers.as_deref().unwrap_or("7-12");
                let pooling = cfg.pooling.as_deref().unwrap_or("mean");
                let spec: FeatureSetSpec = serde_json::from_value(
                    json!({ "layers": layers, "pooling": pooling, "max_frames": cfg.max_frames }),
                )
                .map_err(|e| anyhow!("features.{name}: {e} (layers like \"7-12\", \"6,9,12\", \"12\", \"all\"; pooling one of mean, max, mean_std, stats4, multiscale, frames)"))?;
                FeatureKind::Encoded(spec)
            }
        };
        Ok(FeatureSet {
            name: name.to_string(),
            cfg: cfg.clone(),
            kind,
        })
    }

    /// The layers × pooling of an encoded set; `None` for a baseline.
    pub fn spec(&self) -> Option<&FeatureSetSpec> {
        match &self.kind {
            FeatureKind::Encoded(s) => Some(s),
            FeatureKind::Baseline(_) => None,
        }
    }
}
