//! Published numbers the report compares with. QUOTED, not computed by
//! `pipe`: each carries its citation, and the report prints them in a
//! separate, labelled block. Only numbers stated in the cited text are here.

/// A published result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quoted {
    pub what: &'static str,
    pub r2: f64,
    /// 95% CI where the source gives one.
    pub ci: Option<(f64, f64)>,
    pub source: &'static str,
}

const STUDY: &str = "J. Dhiman, \"Audio Foundation Models Outperform Symbolic Representations for Piano \
Performance Evaluation\", arXiv:2601.19029 (2026), abstract";

/// The study's symbolic (MIDI) baseline on PercePiano and its best audio model.
pub const QUOTED: [Quoted; 2] = [
    Quoted {
        what: "symbolic (MIDI) baseline on PercePiano, 19 dimensions",
        r2: 0.347,
        ci: None,
        source: STUDY,
    },
    Quoted {
        what: "study's best audio model: MuQ layers 9-12, Pianoteq soundfont augmentation",
        r2: 0.537,
        ci: Some((0.465, 0.575)),
        source: STUDY,
    },
];
