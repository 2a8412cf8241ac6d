//! render: performance MIDI -> 16-bit WAV "recording", with the SoundFont.

use anyhow::{Result, anyhow};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::RENDER;
use crate::audio::{self, RenderParams, SoundFont};
use crate::config::RenderConfig;
use crate::dag::{Node, NodeSpec, Source, Stage, StageDecl};
use crate::dataset::{Dataset, SourceKind};

pub struct Render {
    dataset: Arc<Dataset>,
    cfg: RenderConfig,
    /// Loaded on first use, shared by all worker threads.
    soundfont: OnceLock<std::result::Result<SoundFont, String>>,
}

impl Render {
    pub fn new(dataset: Arc<Dataset>, cfg: RenderConfig) -> Render {
        Render {
            dataset,
            cfg,
            soundfont: OnceLock::new(),
        }
    }

    fn params(&self) -> RenderParams {
        RenderParams {
            sample_rate: self.cfg.sample_rate,
            tail_seconds: self.cfg.tail_seconds,
            gain: self.cfg.gain,
        }
    }

    fn soundfont(&self, path: &Path) -> Result<&SoundFont> {
        self.soundfont
            .get_or_init(|| SoundFont::load(path).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }
}

impl Stage for Render {
    fn decl(&self) -> &'static StageDecl {
        &RENDER
    }
    fn describe(&self) -> String {
        format!(
            "synthesize performance MIDI with {} (16-bit WAV)",
            self.cfg.soundfont.display()
        )
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let params = serde_json::to_value(self.params())?;
        Ok(self
            .dataset
            .clips
            .iter()
            .filter(|c| c.source_kind == SourceKind::Midi)
            .map(|c| {
                let inputs = vec![
                    ("midi".into(), Source::File(c.source.clone())),
                    ("soundfont".into(), Source::File(self.cfg.soundfont.clone())),
                ];
                NodeSpec::new(c.id.clone(), params.clone(), inputs).per_clip(&c.id)
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let sf = self.soundfont(&node.input("soundfont")?.path)?;
        let pcm = audio::render_midi(&node.input("midi")?.path, sf, &self.params())?;
        audio::wav::write_i16(out, &pcm)
    }
}
