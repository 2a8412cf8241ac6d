//! resample: mono f32 at the source rate -> the encoders' rate (rubato sinc).

use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

use super::{DECODE, RESAMPLE};
use crate::audio;
use crate::config::ResampleConfig;
use crate::dag::{Node, NodeSpec, Source, Stage, StageDecl};
use crate::dataset::Dataset;

pub struct Resample {
    dataset: Arc<Dataset>,
    cfg: ResampleConfig,
}

impl Resample {
    pub fn new(dataset: Arc<Dataset>, cfg: ResampleConfig) -> Resample {
        Resample { dataset, cfg }
    }
}

impl Stage for Resample {
    fn decl(&self) -> &'static StageDecl {
        &RESAMPLE
    }
    fn describe(&self) -> String {
        format!(
            "resample to {} Hz ({:?} sinc, rubato)",
            self.cfg.sample_rate, self.cfg.quality
        )
        .to_lowercase()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let params = serde_json::to_value(&self.cfg)?;
        Ok(self
            .dataset
            .clips
            .iter()
            .map(|c| {
                let inputs = vec![("pcm".into(), Source::node(&DECODE, c.id.clone()))];
                NodeSpec::new(c.id.clone(), params.clone(), inputs).per_clip(&c.id)
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let pcm = audio::wav::read_f32(&node.input("pcm")?.path)?;
        let resampled = audio::resample(&pcm, self.cfg.sample_rate, self.cfg.quality)?;
        audio::wav::write_f32(out, &resampled)
    }
}
