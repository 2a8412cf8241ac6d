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

/// A defect of a published row, as STUDY.md lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// A code path that reloads checkpoints dropped folds from the mean:
    /// the figure averages this many folds, not 4.
    Folds(u8),
    /// The 95% CI (a bootstrap of pooled predictions, another statistic)
    /// misses its own estimate.
    CiMissesEstimate,
}

/// One of the study's rows as it published it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StudyRow {
    /// The study's row id (A1, B1a, D10d …).
    pub id: &'static str,
    pub r2: f64,
    /// What STUDY.md says beside the figure, if anything.
    pub note: Option<&'static str>,
    pub defects: &'static [Defect],
}

/// Where [`STUDY_ROWS`] come from.
pub const STUDY_ROWS_SOURCE: &str = "J. Dhiman, arXiv:2601.19029 (2026), its published figures \
as its notebook computed them (the project's STUDY.md, \"Published figures\")";

const fn row(id: &'static str, r2: f64, defects: &'static [Defect]) -> StudyRow {
    StudyRow {
        id,
        r2,
        note: None,
        defects,
    }
}

use Defect::{CiMissesEstimate as CI, Folds};

/// The study's published R² per row, quoted (STUDY.md, "Published figures
/// quoted as the study reports them"), with the defects STUDY.md lists.
pub const STUDY_ROWS: [StudyRow; 30] = [
    row("A1", 0.175, &[Folds(2)]),
    row("A2", 0.191, &[CI]),
    row("A3", -12.6, &[Folds(3)]),
    row("B0", 0.405, &[]),
    row("B1a", 0.397, &[]),
    row("B1b", 0.433, &[Folds(2)]),
    row("B1c", 0.426, &[]),
    row("B1d", 0.410, &[]),
    row("B2a", 0.316, &[]),
    row("B2b", 0.369, &[]),
    row("B2c", 0.327, &[]),
    row("C1a", 0.377, &[]),
    row("C1b", 0.363, &[Folds(3)]),
    row("D1a", 0.466, &[]),
    row("D1b", 0.420, &[Folds(2), CI]),
    row("D2a", 0.460, &[]),
    row("D2b", 0.431, &[]),
    row("D3", 0.440, &[]),
    row("D4", 0.442, &[]),
    row("D5", 0.442, &[Folds(2), CI]),
    row("D6", 0.455, &[]),
    row("D7", 0.523, &[Folds(2)]),
    StudyRow {
        note: Some("fold 3 only; its 4-fold mean is 0.454"),
        ..row("D8", 0.560, &[Folds(1), CI])
    },
    StudyRow {
        note: Some("another notebook; the result files say 0.471"),
        ..row("D9", 0.490, &[])
    },
    StudyRow {
        note: Some("another notebook; the result files say 0.443"),
        ..row("D9b", 0.471, &[])
    },
    StudyRow {
        note: Some("another notebook; the result files say 0.531"),
        ..row("D9c", 0.516, &[])
    },
    row("D10a", 0.419, &[Folds(2)]),
    row("D10b", 0.418, &[]),
    row("D10c", 0.464, &[Folds(1), CI]),
    row("D10d", 0.412, &[]),
];

/// The study's row of an experiment id: its prefix before the first `-`
/// (`B0-control`, `B0-mert330` → B0).
pub fn study_row(experiment_id: &str) -> Option<&'static StudyRow> {
    let prefix = experiment_id.split('-').next().unwrap_or("");
    STUDY_ROWS.iter().find(|r| r.id == prefix)
}

/// Footnote markers of the defects, and the one line explaining each.
pub const FEWER_FOLDS_MARK: &str = "†";
pub const CI_MISS_MARK: &str = "‡";

impl StudyRow {
    /// The quoted figure with its note and defect markers, for a table cell.
    pub fn cell(&self) -> String {
        let mut s = format!("{:.3}", self.r2);
        if self.r2.abs() >= 10.0 {
            s = format!("{:.1}", self.r2);
        }
        if let Some(n) = self.note {
            s.push_str(&format!(" ({n})"));
        }
        for d in self.defects {
            match d {
                Defect::Folds(k) => s.push_str(&format!(" {FEWER_FOLDS_MARK}{k}")),
                Defect::CiMissesEstimate => s.push_str(&format!(" {CI_MISS_MARK}")),
            }
        }
        s
    }
}

/// E3: the study's symbolic model (PercePiano's HAN, re-run by the study)
/// per dimension, quoted from STUDY.md's E3 list (the study's order; our
/// dimension names).
pub const HAN_SYMBOLIC: [(&str, f64); 19] = [
    ("timing", 0.119),
    ("articulation_length", 0.539),
    ("articulation_touch", 0.405),
    ("pedal_amount", 0.373),
    ("pedal_clarity", 0.238),
    ("timbre_variety", 0.307),
    ("timbre_depth", 0.397),
    ("timbre_brightness", 0.242),
    ("timbre_loudness", 0.386),
    ("dynamic_range", 0.392),
    ("pace", 0.217),
    ("space", 0.520),
    ("balance", 0.352),
    ("drama", 0.298),
    ("mood_valence", 0.296),
    ("mood_energy", 0.397),
    ("mood_imagination", 0.338),
    ("dynamic_sophistication", 0.449),
    ("interpretation", 0.324),
];

/// E3: the HAN model's overall R² and 95% CI as the study reports them
/// (the published PercePiano SOTA is 0.397).
pub const HAN_OVERALL: (f64, (f64, f64)) = (0.347, (0.315, 0.375));

/// The HAN model's quoted R² on dimension `dim` (our name).
pub fn han_symbolic(dim: &str) -> Option<f64> {
    HAN_SYMBOLIC
        .iter()
        .find(|(d, _)| *d == dim)
        .map(|(_, r)| *r)
}
