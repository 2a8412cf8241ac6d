//! decode: any supported audio file -> mono f32 WAV at the source rate.

use anyhow::{Result, bail};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

use super::{DECODE, RENDER};
use crate::audio;
use crate::config::DecodeConfig;
use crate::dag::{Node, NodeSpec, Source, Stage, StageDecl};
use crate::dataset::{Dataset, SourceKind};

pub struct Decode {
    dataset: Arc<Dataset>,
    cfg: DecodeConfig,
}

impl Decode {
    pub fn new(dataset: Arc<Dataset>, cfg: DecodeConfig) -> Decode {
        Decode { dataset, cfg }
    }
}

impl Stage for Decode {
    fn decl(&self) -> &'static StageDecl {
        &DECODE
    }
    fn describe(&self) -> String {
        "decode audio (WAV/FLAC/MP3/OGG via symphonia), downmix to mono f32".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let params = json!({ "min_seconds": self.cfg.min_seconds });
        Ok(self
            .dataset
            .clips
            .iter()
            .map(|c| {
                let source = match c.source_kind {
                    SourceKind::Midi => Source::node(&RENDER, c.id.clone()),
                    SourceKind::Audio => Source::File(c.source.clone()),
                };
                NodeSpec::new(c.id.clone(), params.clone(), vec![("audio".into(), source)])
                    .per_clip(&c.id)
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let input = node.input("audio")?;
        let pcm = audio::decode_file(&input.path)?;
        let seconds = pcm.duration_seconds();
        if seconds < self.cfg.min_seconds {
            bail!(
                "clip {} ({}) is {seconds:.4} s long, shorter than decode.min_seconds = {} (the encoders' receptive field)",
                node.item,
                input.path.display(),
                self.cfg.min_seconds
            );
        }
        audio::wav::write_f32(out, &pcm)
    }
}
