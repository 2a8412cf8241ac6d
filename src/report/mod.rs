//! The study's results from trained experiments: Parquet tables
//! ([`tables`], polars queries over the input frames of [`frames`]), the
//! Markdown report ([`markdown`]), PNG plots ([`plots`]) and the quoted
//! published numbers they are compared with ([`published`]).
//!
//! polars (0.55, `default-features = false`: `lazy`, `rank`, `sql`) computes
//! the tables: the ranks, joins, sorts and group means are its expressions.
//! Its `parquet` feature is left out: in 0.55 it turns on the streaming engine
//! and with it the cloud stack (object_store, reqwest, rustls), and polars'
//! writer would mark every column optional and store strings as `Utf8View`
//! (arrow-rs writes `Utf8`), changing the public schemas. So arrow-rs, the
//! stack the artifacts already use, writes the tables ([`crate::frame`] hands
//! the columns over) and reads them back for `pipe query`. polars-core still
//! depends on tokio in 0.55 (no feature turns it off); nothing here uses it.
//!
//! Must not import `dag`, `stages`, `encoder` or `features`: a report reads
//! trained and evaluated experiments and nothing else.

pub mod frames;
pub mod markdown;
#[cfg(test)]
mod oracle;
pub mod plots;
pub mod published;
pub mod tables;

use serde::{Deserialize, Serialize};

use crate::dataset::folds::Split;
use crate::dataset::{FailedClip, failed};
use crate::dims::{N_DIMS, STUDY_CATEGORIES};
use crate::experiment::TrainOutput;
use crate::head::Validation;
use crate::metrics::{
    BootstrapConfig, Ci, Evaluation, OutOfFold, Resampling, clusters_by_fold, paired_delta_ci,
    rows_by_fold,
};

/// What the report says about one configured experiment, run or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentInfo {
    pub id: String,
    pub description: String,
    pub features: String,
    /// The encoder (or weight-free baseline) behind the features.
    pub encoder: String,
    /// Seeded random-init encoder: a control, never a pre-trained result.
    pub control: bool,
    /// `None` if it ran; the reason otherwise.
    pub not_run: Option<String>,
    /// It was run and failed (`not_run` says where and why).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Its validation protocol (the study's is optimistic by construction).
    #[serde(default, skip_serializing_if = "is_held_out")]
    pub validation: Validation,
    /// Fingerprint of everything but the protocol (feature sets and head):
    /// two experiments with the same `setup` differ only in `validation`,
    /// and the report shows how much the study's protocol inflates R².
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub setup: String,
    /// The split it was cross-validated on (one info per experiment and split).
    #[serde(default, skip_serializing_if = "is_piece")]
    pub split: Split,
    /// A label-only baseline: no audio, no MIDI.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub label_only: bool,
    /// Its features read the performance MIDI, not the audio.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub symbolic: bool,
}

impl ExperimentInfo {
    /// Its train and evaluate nodes' item.
    pub fn item(&self) -> String {
        self.split.item(&self.id)
    }
}

fn is_piece(s: &Split) -> bool {
    *s == Split::Piece
}

fn is_held_out(v: &Validation) -> bool {
    *v == Validation::HeldOutPieces
}

/// [`ExperimentInfo::setup`] of an experiment: blake3 of its feature sets
/// and head settings with the protocol left out.
pub fn setup_fingerprint(
    features: &str,
    second_features: Option<&str>,
    head: &crate::head::HeadConfig,
) -> String {
    let head = crate::head::HeadConfig {
        validation: Validation::HeldOutPieces,
        ..head.clone()
    };
    let json = serde_json::json!({
        "features": features,
        "second_features": second_features,
        "head": head,
    });
    blake3::hash(json.to_string().as_bytes()).to_hex()[..16].to_string()
}

/// One of the study's validated claims: "better beats worse" for each
/// pair of row stems (an id without its encoder suffix, see [`Family`]).
pub struct Claim {
    pub name: &'static str,
    pub pairs: &'static [(&'static str, &'static str)],
}

/// The study's validated claims (STUDY.md), as pairs of its rows.
pub const CLAIMS: &[Claim] = &[
    Claim {
        name: "MLP > linear probe",
        pairs: &[("B0", "A1")],
    },
    Claim {
        name: "foundation model > mel-CNN",
        pairs: &[("B0", "A2")],
    },
    Claim {
        name: "mid > late > early layers",
        pairs: &[("B1b", "B1c"), ("B1c", "B1a")],
    },
    Claim {
        name: "mean > attention > LSTM pooling",
        pairs: &[("B1c", "B2b"), ("B2b", "B2c")],
    },
    Claim {
        name: "MSE > hybrid > CCC loss",
        pairs: &[("B0", "C1a"), ("C1a", "C1b")],
    },
    Claim {
        name: "mean+std > mean pooling",
        pairs: &[("D1a", "B0")],
    },
    Claim {
        name: "audio > symbolic",
        pairs: &[("E3-audio", "E3-symbolic")],
    },
    Claim {
        name: "MuQ > MERT",
        pairs: &[("D7:muq", "B0")],
    },
];

/// Which rows a claim reads: a stem's id is `<stem>-control` (MERT
/// controls; `<stem>-muq-control` for a `:muq` stem) or `<stem>-mert330`
/// (`<stem>-muq`) on the real weights; weight-free and symbolic stems
/// (A2, E3-symbolic) are the same rows in both.
pub struct Family {
    pub mert: &'static str,
    pub muq: &'static str,
}

pub const FAMILIES: [Family; 2] = [
    Family {
        mert: "-control",
        muq: "-muq-control",
    },
    Family {
        mert: "-mert330",
        muq: "-muq",
    },
];

impl Family {
    fn id(&self, stem: &str) -> String {
        match stem {
            "A2" | "E3-symbolic" => stem.to_string(),
            _ => match stem.strip_suffix(":muq") {
                Some(s) => format!("{s}{}", self.muq),
                None => format!("{stem}{}", self.mert),
            },
        }
    }
}

/// A claim's comparison on one pair of rows that ran.
#[derive(Debug)]
pub struct ClaimTest<'a> {
    pub claim: &'static str,
    pub better: &'a Ran,
    pub worse: &'a Ran,
    /// R²(better) − R²(worse), paired; `None` where not comparable.
    pub delta: Option<Ci>,
}

/// A trained and evaluated experiment.
#[derive(Clone, Debug)]
pub struct Ran {
    pub info: ExperimentInfo,
    pub train: TrainOutput,
    pub eval: Evaluation,
}

/// Every configured experiment: the ones that ran, best R² first, then the rest.
#[derive(Clone, Debug)]
pub struct Results {
    pub ran: Vec<Ran>,
    pub not_run: Vec<ExperimentInfo>,
    /// Clips that failed before training (every experiment's, once each).
    pub failed: Vec<FailedClip>,
    /// The evaluate stage's bootstrap settings, for the paired comparisons.
    pub bootstrap: BootstrapConfig,
    /// The split every row was cross-validated on.
    pub split: Split,
}

impl Results {
    /// Ranks `ran` by R² (ties by id, so the order is stable).
    pub fn new(mut ran: Vec<Ran>, not_run: Vec<ExperimentInfo>) -> Results {
        ran.sort_by(|a, b| {
            b.eval
                .r2
                .total_cmp(&a.eval.r2)
                .then_with(|| a.info.id.cmp(&b.info.id))
        });
        let failed = ran
            .iter()
            .fold(Vec::new(), |acc, r| failed::merge(&acc, &r.train.failed));
        Results {
            ran,
            not_run,
            failed,
            bootstrap: BootstrapConfig::default(),
            split: Split::Piece,
        }
    }

    /// The best row validated on held-out pieces (a study-protocol row's R²
    /// is optimistic by construction, no yardstick), as an index into `ran`.
    pub fn best_held_out(&self) -> Option<usize> {
        (self.ran.iter()).position(|r| r.info.validation != Validation::TestFold)
    }

    /// Per ran experiment, in rank order: ΔR² = R²(best) − R²(it), the best
    /// being [`Self::best_held_out`], with the paired cluster bootstrap CI
    /// ([`crate::metrics::paired_delta_ci`]) where it was scored on the best
    /// row's clips, labels, folds and clusters; `None` for the best row and
    /// where it was not (a clip-level evaluation, other clips). An interval
    /// that reaches 0 means the data cannot tell the row from the best.
    pub fn vs_best(&self) -> Vec<Option<Ci>> {
        let Some(b) = self.best_held_out() else {
            return vec![None; self.ran.len()];
        };
        let best = &self.ran[b];
        (self.ran.iter().enumerate())
            .map(|(i, r)| if i == b { None } else { self.paired(best, r) })
            .collect()
    }

    /// ΔR² = R²(a) − R²(b) with the paired bootstrap of
    /// [`crate::metrics::paired_delta_ci`] (a's clusters resampled for both),
    /// where both were scored on the same clips, labels, folds and clusters;
    /// `None` where not (a clip-level evaluation, other clips).
    pub fn paired(&self, a: &Ran, b: &Ran) -> Option<Ci> {
        let clusters = a.eval.cluster_of_clip.as_ref()?;
        let (t, u) = (&a.train, &b.train);
        let crossed = a.eval.crossed_of_clip.as_deref();
        let same = t.clip_ids == u.clip_ids
            && t.folds == u.folds
            && t.y_true == u.y_true
            && b.eval.cluster_of_clip.as_ref() == Some(clusters)
            && b.eval.crossed_of_clip.as_deref() == crossed;
        if !same {
            return None;
        }
        let oa = OutOfFold::new(&t.y_true, &t.y_pred, N_DIMS).ok()?;
        let ob = OutOfFold::new(&u.y_true, &u.y_pred, N_DIMS).ok()?;
        let resampling = Resampling {
            fold_clusters: clusters_by_fold(&rows_by_fold(&t.folds).ok()?, clusters),
            crossed,
        };
        let (ra, rb) = (
            |x: &[Vec<usize>]| oa.fold_mean_r2(x),
            |x: &[Vec<usize>]| ob.fold_mean_r2(x),
        );
        paired_delta_ci(&resampling, &self.bootstrap, ra, rb).ok()
    }

    /// The study's validated claims ([`CLAIMS`]) tested on the rows that
    /// ran, for each family of rows (the controls; the real weights): per
    /// comparison the two rows and the paired ΔR² (better − worse).
    pub fn claims(&self) -> Vec<ClaimTest<'_>> {
        let mut out = Vec::new();
        for claim in CLAIMS {
            for family in FAMILIES {
                for &(better, worse) in claim.pairs {
                    let (Some(a), Some(b)) =
                        (self.get(&family.id(better)), self.get(&family.id(worse)))
                    else {
                        continue;
                    };
                    out.push(ClaimTest {
                        claim: claim.name,
                        better: a,
                        worse: b,
                        delta: self.paired(a, b),
                    });
                }
            }
        }
        out
    }

    pub fn get(&self, id: &str) -> Option<&Ran> {
        self.ran.iter().find(|r| r.info.id == id)
    }

    /// E3's (audio, symbolic) pairs: every ran experiment whose id starts
    /// with [`E3_AUDIO`] with every one whose id starts with [`E3_SYMBOLIC`],
    /// in id order.
    pub fn e3_pairs(&self) -> Vec<(&Ran, &Ran)> {
        let of = |prefix: &str| {
            let mut v: Vec<&Ran> = self
                .ran
                .iter()
                .filter(|r| r.info.id.starts_with(prefix))
                .collect();
            v.sort_by(|a, b| a.info.id.cmp(&b.info.id));
            v
        };
        let symbolic = of(E3_SYMBOLIC);
        of(E3_AUDIO)
            .into_iter()
            .flat_map(|a| symbolic.iter().map(move |s| (a, *s)))
            .collect()
    }

    /// One [`ProtocolRows`] per ran study-protocol experiment with a row on
    /// ours of the same [`ExperimentInfo::setup`], by our row's id.
    pub fn protocol_pairs(&self) -> Vec<ProtocolRows<'_>> {
        let with = |setup: &str, v: Validation| {
            (self.ran.iter()).find(|o| o.info.validation == v && o.info.setup == setup)
        };
        let mut rows: Vec<ProtocolRows> = (self.ran.iter())
            .filter(|s| s.info.validation == Validation::TestFold && !s.info.setup.is_empty())
            .filter_map(|study| {
                let ours = with(&study.info.setup, Validation::HeldOutPieces)?;
                Some(ProtocolRows {
                    ours,
                    study,
                    fixed_epoch: with(&study.info.setup, Validation::HeldOutEpoch),
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.ours.info.id, &a.study.info.id).cmp(&(&b.ours.info.id, &b.study.info.id))
        });
        rows
    }
}

/// One setup (features, head, seed) trained under the protocols: ours, the
/// study's, and where it ran the study's without its peek
/// (`held_out_epoch`: the study's training clips and criterion, the epoch
/// fixed on held-out pieces).
#[derive(Clone, Copy, Debug)]
pub struct ProtocolRows<'a> {
    pub ours: &'a Ran,
    pub study: &'a Ran,
    pub fixed_epoch: Option<&'a Ran>,
}

/// E3 prefixes: an `E3-audio*` and an `E3-symbolic*` experiment that ran
/// form an audio-vs-symbolic pair (same clips, same folds).
pub const E3_AUDIO: &str = "E3-audio";
pub const E3_SYMBOLIC: &str = "E3-symbolic";

/// Whether `infos` configure an E3 pair that can run (both sides runnable).
pub fn e3_configured(infos: &[ExperimentInfo]) -> bool {
    let runnable = |prefix: &str| {
        infos
            .iter()
            .any(|i| i.id.starts_with(prefix) && i.not_run.is_none())
    };
    runnable(E3_AUDIO) && runnable(E3_SYMBOLIC)
}

/// The study's category of each dimension (for the per-dimension table).
pub fn category_of(dim: &str) -> &'static str {
    STUDY_CATEGORIES
        .iter()
        .find(|(_, dims)| dims.contains(&dim))
        .map(|(c, _)| *c)
        .unwrap_or("")
}

#[cfg(test)]
pub(crate) mod tests;
