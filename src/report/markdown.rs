//! `data/out/report.md`: the study's tables in Markdown.

use std::fmt::Write;

use super::published::{
    CI_MISS_MARK, Defect, FEWER_FOLDS_MARK, HAN_OVERALL, QUOTED, STUDY_ROWS_SOURCE, han_symbolic,
    study_row,
};
use super::{Results, category_of};
use crate::dataset::folds::Split;
use crate::dims::{DIMENSIONS, STUDY_CATEGORIES};
use crate::head::{Validation, mean_best_val_r2};

/// Heading of the ranked table; `pipe run` prints that section at the end.
pub const RANKED_HEADING: &str = "## Ranked summary";

fn f3(x: f64) -> String {
    format!("{x:.3}")
}

fn opt3(x: Option<f64>) -> String {
    x.map_or("–".into(), f3)
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation other than
/// `-` and `_` dropped, spaces to `-`.
pub fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A link to a section of the repository's README.md from `data/out/report.md`.
fn readme(heading: &str) -> String {
    format!(
        "[README.md, \"{heading}\"](../../README.md#{})",
        github_anchor(heading)
    )
}

/// README sections the report links to (each must stay a heading there).
pub const METRICS_SECTION: &str = "Metric definitions";
pub const DIMENSIONS_SECTION: &str = "The 19 dimensions and their categories";
pub const PROTOCOL_SECTION: &str = "The study's protocol (`validation`)";

/// README section on the splits.
pub const SPLITS_SECTION: &str = "Splits: which number to read";

/// The whole report: every split's results (the first split's get the
/// detailed sections). `plots` are the file names under `plots/` to link.
pub fn render(all: &[Results], plots: &[(&str, &str)]) -> String {
    let mut md = String::new();
    let results = &all[0];
    let n_clips = results.ran.first().map(|r| r.train.clip_ids.len());
    let k = results.ran.first().map(|r| r.eval.folds.len());
    let _ = writeln!(md, "# pipe report\n");
    if let (Some(n), Some(k)) = (n_clips, k) {
        let failed = match results.failed.len() {
            0 => String::new(),
            f => format!(" ({f} more failed before training: listed under \"Failed clips\")"),
        };
        let _ = writeln!(
            md,
            "{n} clips{failed}, {k}-fold cross-validation on the `{}` split{}; every number below is on out-of-fold predictions. \
             R² is, per fold, the mean over the 19 dimensions of each dimension's R², then the mean over folds; \
             the 95% CI is a percentile bootstrap of exactly that statistic (held-out clusters resampled within each fold). \
             Full definitions: {}; which split to read: {}. Tables: `results/*.parquet` (column `split`).\n",
            results.split,
            if all.len() > 1 {
                format!(
                    " (also: {})",
                    all[1..]
                        .iter()
                        .map(|r| format!("`{}`", r.split))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            },
            readme(METRICS_SECTION),
            readme(SPLITS_SECTION)
        );
    }
    without_listening(&mut md, all);
    md.push_str(&ranked_table(results));
    published_note(&mut md, all, results);
    for other in &all[1..] {
        let table = ranked_table(other);
        let heading = format!("{RANKED_HEADING}: `{}` split", other.split);
        md.push_str(&table.replacen(RANKED_HEADING, &heading, 1));
        published_note(&mut md, all, other);
    }
    claims(&mut md, all);
    seed_noise(&mut md, all);
    study_protocol(&mut md, results);
    per_fold(&mut md, results);
    per_category(&mut md, results);
    if let Some(best) = results.ran.first() {
        per_dimension(&mut md, best);
    }
    audio_vs_symbolic(&mut md, results);
    quoted(&mut md, results);
    failed_clips(&mut md, results);
    if !plots.is_empty() {
        let _ = writeln!(md, "## Plots\n");
        for (file, caption) in plots {
            let _ = writeln!(md, "![{caption}](plots/{file})\n");
        }
    }
    md
}

/// The ranked summary and the list of experiments that did not run.
pub fn ranked_table(results: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "{RANKED_HEADING}\n");
    if results.ran.is_empty() {
        let _ = writeln!(md, "No experiment ran.\n");
    } else {
        let _ = writeln!(
            md,
            "| rank | experiment | description | R² | 95% CI | clip-level CI | ΔR² to best [95% CI] | R² humans | pairwise acc. | study R² | MAE | Pearson r | dispersion | train s | clips |"
        );
        let _ = writeln!(
            md,
            "|---:|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let vs_best = results.vs_best();
        for (i, r) in results.ran.iter().enumerate() {
            let e = &r.eval;
            let mut mark = if r.info.control { " **[control]**" } else { "" }.to_string();
            if r.info.label_only {
                mark.push_str(" **[label-only]**");
            }
            match r.info.validation {
                Validation::TestFold => mark.push_str(" **[study protocol]**"),
                Validation::HeldOutEpoch => mark.push_str(" **[fixed epoch]**"),
                Validation::HeldOutPieces => {}
            }
            let outside = if e.r2_ci.contains_estimate() {
                ""
            } else {
                " (estimate outside)"
            };
            let _ = writeln!(
                md,
                "| {} | {} | {}{mark} | {} | [{}, {}]{outside} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
                i + 1,
                r.info.id,
                r.info.description,
                f3(e.r2),
                f3(e.r2_ci.lo),
                f3(e.r2_ci.hi),
                e.clip_r2_ci.as_ref().map_or("–".into(), |c| format!(
                    "[{}, {}]",
                    f3(c.lo),
                    f3(c.hi)
                )),
                vs_best[i].as_ref().map_or("–".into(), |d| {
                    let tie = if d.lo <= 0.0 { " ≈" } else { "" };
                    format!("{} [{}, {}]{tie}", f3(d.estimate), f3(d.lo), f3(d.hi))
                }),
                opt3(e.r2_humans),
                opt3(e.pairwise.as_ref().and_then(|p| p.mean)),
                study_row(&r.info.id).map_or("–".into(), |s| s.cell()),
                f3(e.mae),
                opt3(e.pearson_r),
                f3(e.dispersion),
                r.train.train_seconds,
                r.train.clip_ids.len()
            );
        }
        let _ = writeln!(md);
        ci_footnote(&mut md, results);
        if results
            .ran
            .iter()
            .any(|r| r.eval.r2_humans.is_some() || r.eval.pairwise.is_some())
        {
            let _ = writeln!(
                md,
                "R² humans: R² on the human performances only (the notation-software renderings \
                 train but are not scored: their labels are not a human performance's). Pairwise \
                 acc.: of the pairs of performances of one segment group whose labels differ by \
                 more than the standard error of the difference (each label's raters' std / \
                 √raters), the share the predictions order the same way, mean over the 19 \
                 dimensions (0.5 is chance; per dimension in `results/per_dimension.parquet`).\n"
            );
        }
        if vs_best.iter().flatten().next().is_some() {
            let ties = vs_best.iter().flatten().filter(|d| d.lo <= 0.0).count();
            let _ = writeln!(
                md,
                "ΔR² to best: R² of the best row validated on held-out pieces ({}) minus this \
                 row's on the same clips and folds, with a paired bootstrap that resamples the same \
                 pieces for both (the difference's own interval, not two CIs side by side). ≈: the \
                 interval reaches 0, so these data cannot tell the row from the best \
                 ({ties} row(s)).\n",
                results
                    .best_held_out()
                    .map_or("none", |b| results.ran[b].info.id.as_str())
            );
        }
        study_footnotes(&mut md, results);
        if results.ran.iter().any(|r| r.info.control) {
            let _ = writeln!(
                md,
                "**[control]**: features from a seeded random-init encoder, not pre-trained weights: \
                 a control for how much pre-training adds, never a pre-trained result.\n"
            );
        }
        if results
            .ran
            .iter()
            .any(|r| r.info.validation == Validation::TestFold)
        {
            let _ = writeln!(
                md,
                "**[study protocol]**: early stopping and the kept epoch chosen on the very fold then scored \
                 (`validation = \"test_fold\"`): optimistic by construction (\"The study's protocol\" below).\n"
            );
        }
        if (results.ran.iter()).any(|r| r.info.validation == Validation::HeldOutEpoch) {
            let _ = writeln!(
                md,
                "**[fixed epoch]**: the study's training clips and criterion, the epoch fixed beforehand on \
                 held-out pieces (`validation = \"held_out_epoch\"`): no peek (\"The inflation, decomposed\" below).\n"
            );
        }
    }
    if !results.not_run.is_empty() {
        let _ = writeln!(md, "Not run:\n");
        // One line per reason (usually: one encoder's weights are absent).
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for i in &results.not_run {
            let why = i.not_run.as_deref().unwrap_or("");
            match reasons.iter_mut().find(|(r, _)| *r == why) {
                Some((_, ids)) => ids.push(&i.id),
                None => reasons.push((why, vec![&i.id])),
            }
        }
        for (why, ids) in reasons {
            let _ = writeln!(md, "- {}: {why}", ids.join(", "));
        }
        let _ = writeln!(md);
    }
    md
}

/// "What a model gets without listening": every label-only baseline and
/// the best audio and symbolic rows, R² [CI] per split.
fn without_listening(md: &mut String, all: &[Results]) {
    if !all.iter().any(|r| r.ran.iter().any(|x| x.info.label_only)) {
        return;
    }
    let _ = writeln!(
        md,
        "## What a model gets without listening
"
    );
    let _ = writeln!(
        md,
        "The label-only baselines read the training clips' labels and who played what, never the audio, \
         the MIDI or the test clip's label; they run on the same folds as every head. On a split where \
         they score well, a model can score the same way by recognising the performer or the excerpt. \
         Which split to read: {}.\n",
        readme(SPLITS_SECTION)
    );
    let mut head = "| row |".to_string();
    let mut rule = "|---|".to_string();
    for r in all {
        let _ = write!(head, " `{}` R² [95% CI] |", r.split);
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    let cell = |r: Option<&super::Ran>| {
        r.map_or("–".to_string(), |r| {
            let e = &r.eval;
            format!("{} [{}, {}]", f3(e.r2), f3(e.r2_ci.lo), f3(e.r2_ci.hi))
        })
    };
    let mut ids: Vec<&str> = Vec::new();
    for r in all {
        for x in r.ran.iter().filter(|x| x.info.label_only) {
            if !ids.contains(&x.info.id.as_str()) {
                ids.push(&x.info.id);
            }
        }
    }
    for id in ids {
        let _ = write!(md, "| {id} |");
        for r in all {
            let _ = write!(md, " {} |", cell(r.get(id)));
        }
        let _ = writeln!(md);
    }
    // The best held-out row of each kind, per split (its id in the cell).
    for (what, symbolic) in [("best audio row", false), ("best symbolic row", true)] {
        let _ = write!(md, "| {what} |");
        for r in all {
            let best = r.ran.iter().find(|x| {
                !x.info.label_only
                    && x.info.symbolic == symbolic
                    && x.info.validation != Validation::TestFold
            });
            let tag = best.map_or(String::new(), |b| {
                let control = if b.info.control { ", control" } else { "" };
                format!(" ({}{control})", b.info.id)
            });
            let _ = write!(md, " {}{tag} |", cell(best));
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);
}

/// "The study's claims": each validated claim on the rows that ran, per
/// split, with the paired ΔR² and whether the data back it.
fn claims(md: &mut String, all: &[Results]) {
    let tests: Vec<(&Results, super::ClaimTest)> = all
        .iter()
        .flat_map(|r| r.claims().into_iter().map(move |t| (r, t)))
        .collect();
    if tests.is_empty() {
        return;
    }
    let _ = writeln!(md, "## The study's claims\n");
    let _ = writeln!(
        md,
        "Each claim the study validated, on the rows of this run that test it: ΔR² = R²(first row) − \
         R²(second row) on the same clips and folds, with a paired bootstrap resampling the split's \
         clusters for both. holds: the interval is above 0; reversed: below 0; undecided: it \
         reaches 0 (these data cannot tell the rows apart).\n"
    );
    let _ = writeln!(md, "| claim | split | rows | ΔR² | 95% CI | holds? |");
    let _ = writeln!(md, "|---|---|---|---:|---|---|");
    let mut any_control = false;
    for (r, t) in &tests {
        let control = t.better.info.control || t.worse.info.control;
        any_control |= control;
        let (delta, ci, verdict) = match &t.delta {
            Some(d) => (
                f3(d.estimate),
                format!("[{}, {}]", f3(d.lo), f3(d.hi)),
                if d.lo > 0.0 {
                    "holds"
                } else if d.hi < 0.0 {
                    "reversed"
                } else {
                    "undecided"
                },
            ),
            None => ("–".into(), "–".into(), "not comparable"),
        };
        let _ = writeln!(
            md,
            "| {}{} | `{}` | {} > {} | {delta} | {ci} | {verdict} |",
            t.claim,
            if control { " **[control]**" } else { "" },
            r.split,
            t.better.info.id,
            t.worse.info.id
        );
    }
    let _ = writeln!(md);
    if any_control {
        let _ = writeln!(
            md,
            "**[control]**: at least one row reads a random-init encoder: the comparison tests the \
             head, pooling or loss on a control, not the study's claim about pre-trained weights.\n"
        );
    }
}

/// Ours vs the study's protocol for every pair of ran experiments that
/// differ only in it: the inflation with its paired CI, and where the
/// fixed-epoch copy ran, the inflation split into peeking and the rest.
fn study_protocol(md: &mut String, results: &Results) {
    let rows = results.protocol_pairs();
    let any_study = results
        .ran
        .iter()
        .any(|r| r.info.validation == Validation::TestFold);
    if rows.is_empty() && !any_study {
        return;
    }
    let _ = writeln!(
        md,
        "## The study's protocol
"
    );
    let _ = writeln!(
        md,
        "The study early-stopped (patience on validation R²) and kept the best epoch by R² on the very fold \
         it then scored, and reported the mean over folds of each fold's best validation R². Ours validates on \
         pieces held out of the training folds and never looks at the test fold while training ({}). \
         Each row below is one setup (same features, head and seed) trained both ways; \
         inflation = R² under the study's protocol − R² under ours, with its paired 95 % CI (both rows \
         scored on the same clips, the split's clusters resampled together). \
         \"Study's aggregate\" is the mean over folds of each fold's best validation R² as the study computed it \
         (under its protocol, the fold's test R² at the epoch chosen on it; under ours, R² on the held-out pieces); \
         \"study's pooled CI\" is its interval: a bootstrap of the pooled out-of-fold predictions, folds ignored, \
         so it is around the pooled R², another statistic.\n",
        readme(PROTOCOL_SECTION)
    );
    if rows.is_empty() {
        let _ = writeln!(
            md,
            "No experiment ran under both protocols with the same setup: add a copy of a row with \
             `validation = \"test_fold\"`.\n"
        );
        return;
    }
    let _ = writeln!(
        md,
        "| experiment (ours) | study-protocol copy | R² ours | R² study's protocol | inflation [95 % CI] | study's aggregate, ours | study's aggregate, study's protocol | study's pooled CI, study's protocol |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
    let mut inflation = Vec::new();
    for r in &rows {
        let (ours, study) = (r.ours, r.study);
        let d = study.eval.r2 - ours.eval.r2;
        inflation.push(d);
        let aggregate = mean_best_val_r2(&study.train.fold_reports);
        let pooled = study
            .eval
            .pooled_r2_ci
            .as_ref()
            .map_or("–".to_string(), |ci| {
                let misses = aggregate.is_some_and(|a| !(ci.lo..=ci.hi).contains(&a));
                format!(
                    "[{}, {}]{}",
                    f3(ci.lo),
                    f3(ci.hi),
                    if misses {
                        " (misses the aggregate)"
                    } else {
                        ""
                    }
                )
            });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {pooled} |",
            ours.info.id,
            study.info.id,
            f3(ours.eval.r2),
            f3(study.eval.r2),
            paired_cell(d, results.paired(study, ours).as_ref()),
            opt3(mean_best_val_r2(&ours.train.fold_reports)),
            opt3(aggregate),
        );
    }
    let n = inflation.len() as f64;
    let mean = inflation.iter().sum::<f64>() / n;
    let (lo, hi) = inflation
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &d| {
            (lo.min(d), hi.max(d))
        });
    let _ = writeln!(
        md,
        "\nOver {} pair(s), the study's protocol inflates R² by {mean:+.3} on average (from {lo:+.3} to {hi:+.3}).\n",
        inflation.len()
    );
    inflation_decomposed(md, results, &rows);
}

/// Under the ranked table of PercePiano's published performer split: which
/// clips it scores and which only train.
fn published_note(md: &mut String, all: &[Results], r: &Results) {
    if r.split != Split::PerformerPublished {
        return;
    }
    let Some(first) = r.ran.first() else { return };
    let scored = first.train.clip_ids.len();
    let all_clips = (all.iter().flat_map(|x| &x.ran))
        .map(|x| x.train.clip_ids.len())
        .max()
        .unwrap_or(scored);
    let k = first.train.folds.iter().max().map_or(0, |f| f + 1);
    let _ = writeln!(
        md,
        "`performer_published` is PercePiano's own performer split (`dataset.folds.performer_split`): \
         {scored} clips in its {k} folds are scored, each by the model that never trained on its performer; \
         the other {} clips (its held-out test performers and its always-train ones) train every model and \
         are **never scored**. So these rows rest on fewer clips and performers than the other splits', and \
         are not comparable with them clip for clip.\n",
        all_clips.saturating_sub(scored)
    );
}

/// Rows trained once per seed: R² of each, their mean and sd, on every
/// split (training noise, which the study never reported).
fn seed_noise(md: &mut String, all: &[Results]) {
    let rows: Vec<(&Results, &crate::report::Ran)> = all
        .iter()
        .flat_map(|r| {
            (r.ran.iter())
                .filter(|x| x.eval.seed_r2.len() > 1)
                .map(move |x| (r, x))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Training noise across seeds\n");
    let _ = writeln!(
        md,
        "Rows with `seeds = [...]` trained every fold once per seed on the same folds, so only the \
         initialisation, shuffling, dropout and held-out pieces differ. The first seed's run is the row's \
         (its R², CI and comparisons above); sd is the sample standard deviation over the runs. A difference \
         between two rows smaller than a few sd can be training noise whatever its CI says.\n"
    );
    let _ = writeln!(md, "| experiment | split | R² per seed | mean | sd |");
    let _ = writeln!(md, "|---|---|---|---:|---:|");
    for (r, x) in rows {
        let per_seed: Vec<String> = (x.eval.seed_r2.iter())
            .map(|s| format!("{}: {}", s.seed, opt3(s.r2)))
            .collect();
        let (mean, sd) = x.eval.seed_r2_mean_sd().unzip();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            x.info.id,
            r.split,
            per_seed.join(", "),
            opt3(mean),
            opt3(sd)
        );
    }
    let _ = writeln!(md);
}

/// `±d.ddd [lo, hi]`, or the bare difference where no paired CI exists.
fn paired_cell(d: f64, ci: Option<&crate::metrics::Ci>) -> String {
    match ci {
        Some(ci) => format!("{d:+.3} [{:+.3}, {:+.3}]", ci.lo, ci.hi),
        None => format!("{d:+.3}"),
    }
}

/// The inflation in two parts, where a `held_out_epoch` copy ran: peeking
/// (study's − fixed epoch: the same training clips and criterion, only the
/// epoch's choice differs) and training-set size plus criterion (fixed
/// epoch − ours: all training folds and R² against 85 % of them and the loss).
fn inflation_decomposed(md: &mut String, results: &Results, rows: &[crate::report::ProtocolRows]) {
    let with_fixed: Vec<_> = rows
        .iter()
        .filter_map(|r| r.fixed_epoch.map(|f| (r, f)))
        .collect();
    if with_fixed.is_empty() {
        let _ = writeln!(
            md,
            "The inflation mixes three differences (the epoch chosen on the scored fold, all training folds \
             training against 85 % of them, R² against the loss as the criterion): a copy with \
             `validation = \"held_out_epoch\"` splits it.\n"
        );
        return;
    }
    let _ = writeln!(md, "### The inflation, decomposed\n");
    let _ = writeln!(
        md,
        "The study's protocol differs from ours in three ways at once: it chooses the epoch on the scored fold \
         (peeking), trains on all the training folds (ours holds 15 % of their pieces out for validation), and \
         stops on R² (ours on the loss). The fixed-epoch copy (`validation = \"held_out_epoch\"`) keeps the \
         study's training clips and criterion and drops only the peek: a first fit finds the epoch with the best \
         R² on held-out pieces, a second fit on all the training folds runs exactly that many epochs and is \
         scored. So **peeking = R²(study's) − R²(fixed epoch)** and **training clips + criterion = R²(fixed \
         epoch) − R²(ours)**; they add up to the inflation. Paired 95 % CIs as above; an interval that reaches 0 \
         cannot tell the part from nothing.\n"
    );
    let _ = writeln!(
        md,
        "| experiment (ours) | fixed-epoch copy | R² ours | R² fixed epoch | R² study's protocol | peeking [95 % CI] | training clips + criterion [95 % CI] | share of the inflation that is peeking |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    let (mut peek_sum, mut rest_sum) = (0.0, 0.0);
    for (r, fixed) in &with_fixed {
        let peek = r.study.eval.r2 - fixed.eval.r2;
        let rest = fixed.eval.r2 - r.ours.eval.r2;
        peek_sum += peek;
        rest_sum += rest;
        let total = peek + rest;
        let share = if total.abs() > 1e-12 {
            format!("{:.0} %", 100.0 * peek / total)
        } else {
            "–".to_string()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {share} |",
            r.ours.info.id,
            fixed.info.id,
            f3(r.ours.eval.r2),
            f3(fixed.eval.r2),
            f3(r.study.eval.r2),
            paired_cell(peek, results.paired(r.study, fixed).as_ref()),
            paired_cell(rest, results.paired(fixed, r.ours).as_ref()),
        );
    }
    let n = with_fixed.len() as f64;
    let _ = writeln!(
        md,
        "\nOver {} setup(s), peeking adds {:+.3} R² on average and training clips + criterion {:+.3}.\n",
        with_fixed.len(),
        peek_sum / n,
        rest_sum / n
    );
}

/// One line for the "study R²" column and one per defect marker it shows.
fn study_footnotes(md: &mut String, results: &Results) {
    let rows: Vec<_> = results
        .ran
        .iter()
        .filter_map(|r| study_row(&r.info.id))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "study R²: the published figure of the study's row named by the id's prefix (before the first `-`), \
         quoted from {STUDY_ROWS_SOURCE}, not computed here: its own audio and clip sets, under its protocol \
         (validated on the scored fold).\n"
    );
    let has = |want: fn(&Defect) -> bool| rows.iter().any(|r| r.defects.iter().any(want));
    if has(|d| matches!(d, Defect::Folds(_))) {
        let _ = writeln!(
            md,
            "{FEWER_FOLDS_MARK}k: the study's figure averages k folds, not 4 (a checkpoint-reloading code path dropped the others).\n"
        );
    }
    if has(|d| matches!(d, Defect::CiMissesEstimate)) {
        let _ = writeln!(
            md,
            "{CI_MISS_MARK}: the study's 95% CI misses its own estimate (it resamples pooled predictions, another statistic).\n"
        );
    }
}

fn per_fold(md: &mut String, results: &Results) {
    let Some(first) = results.ran.first() else {
        return;
    };
    let k = first.eval.folds.len();
    let _ = writeln!(md, "## R² per fold\n");
    let header: String = (0..k).map(|f| format!(" fold {f} |")).collect();
    let _ = writeln!(md, "| experiment |{header} mean |");
    let _ = writeln!(md, "|---|{}---:|", "---:|".repeat(k));
    for r in &results.ran {
        let cells: String = r
            .eval
            .folds
            .iter()
            .map(|f| format!(" {} |", f3(f.r2)))
            .collect();
        let _ = writeln!(md, "| {} |{cells} {} |", r.info.id, f3(r.eval.r2));
    }
    let _ = writeln!(md);
}

fn per_category(md: &mut String, results: &Results) {
    if results.ran.is_empty() {
        return;
    }
    let _ = writeln!(md, "## R² per category\n");
    let _ = writeln!(
        md,
        "The study's 7 categories; each is the mean of its dimensions' R² ({}).\n",
        readme(DIMENSIONS_SECTION)
    );
    let names: String = STUDY_CATEGORIES
        .iter()
        .map(|(c, _)| format!(" {c} |"))
        .collect();
    let _ = writeln!(md, "| experiment |{names}");
    let _ = writeln!(md, "|---|{}", "---:|".repeat(STUDY_CATEGORIES.len()));
    // The means of results/per_category.parquet: one query computes both.
    let table = super::tables::per_category(results)
        .and_then(|q| q.collect())
        .expect("the per-category query runs on any results");
    let experiment = table.column("experiment").and_then(|c| c.str());
    let r2 = table.column("r2").and_then(|c| c.f64());
    let (experiment, r2) = (experiment.expect("per_category"), r2.expect("per_category"));
    for r in &results.ran {
        let cells: String = experiment
            .iter()
            .zip(r2.iter())
            .filter(|(e, _)| *e == Some(r.info.id.as_str()))
            .map(|(_, r2)| format!(" {} |", r2.map_or("–".into(), f3)))
            .collect();
        let _ = writeln!(md, "| {} |{cells}", r.info.id);
    }
    let _ = writeln!(md);
}

fn per_dimension(md: &mut String, r: &super::Ran) {
    let _ = writeln!(
        md,
        "## Per dimension: {} (best)\n\nEvery experiment's are in `results/per_dimension.parquet`. \
         Pearson p is from all out-of-fold predictions pooled.\n",
        r.info.id
    );
    let _ = writeln!(
        md,
        "| dimension | category | R² | MAE | Pearson r | p | dispersion |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|");
    for (d, s) in r.eval.per_dim.iter().enumerate() {
        let p = s
            .pooled_pearson
            .map_or("–".to_string(), |p| format!("{:.1e}", p.p));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {p} | {} |",
            DIMENSIONS[d],
            category_of(DIMENSIONS[d]),
            f3(s.r2),
            f3(s.mae),
            opt3(s.pearson_r),
            f3(s.dispersion)
        );
    }
    let _ = writeln!(md);
}

/// "Audio vs symbolic (E3)": per dimension, R² of every ran (audio,
/// symbolic) pair on the same folds, the winner, and the study's HAN figure.
fn audio_vs_symbolic(md: &mut String, results: &Results) {
    let pairs = results.e3_pairs();
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Audio vs symbolic (E3)\n");
    let (han, (han_lo, han_hi)) = HAN_OVERALL;
    let _ = writeln!(
        md,
        "R² per dimension (mean over folds) of an audio and a symbolic (performance-MIDI) experiment on the \
         same clips and folds. \"study's HAN\" is the study's symbolic model (PercePiano's HAN, re-run by the \
         study) quoted from {STUDY_ROWS_SOURCE}, E3: overall {han:.3} [{han_lo:.3}, {han_hi:.3}]; its audio \
         and split are its own.\n"
    );
    for (a, s) in pairs {
        let _ = writeln!(md, "### {} vs {}\n", a.info.id, s.info.id);
        let _ = writeln!(
            md,
            "| dimension | audio R² | symbolic R² | winner | study's HAN (symbolic) R² |"
        );
        let _ = writeln!(md, "|---|---:|---:|---|---:|");
        let mut wins = (0, 0);
        for (d, name) in DIMENSIONS.iter().enumerate() {
            let (ra, rs) = (a.eval.per_dim[d].r2, s.eval.per_dim[d].r2);
            let winner = if ra > rs {
                wins.0 += 1;
                "audio"
            } else if rs > ra {
                wins.1 += 1;
                "symbolic"
            } else {
                "tie"
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {winner} | {} |",
                f3(ra),
                f3(rs),
                opt3(han_symbolic(name))
            );
        }
        let _ = writeln!(
            md,
            "| **overall** | {} | {} | {} | {han:.3} |\n",
            f3(a.eval.r2),
            f3(s.eval.r2),
            match a.eval.r2.total_cmp(&s.eval.r2) {
                std::cmp::Ordering::Greater => "audio",
                std::cmp::Ordering::Less => "symbolic",
                std::cmp::Ordering::Equal => "tie",
            }
        );
        let _ = writeln!(
            md,
            "Audio wins {} of {} dimensions, symbolic {}.\n",
            wins.0,
            DIMENSIONS.len(),
            wins.1
        );
    }
}

fn quoted(md: &mut String, results: &Results) {
    let _ = writeln!(md, "## Published results (quoted, not computed here)\n");
    let _ = writeln!(
        md,
        "These numbers are copied from the publication named in each row, on its own audio \
         renderings and split; they are not outputs of this run.\n"
    );
    let _ = writeln!(md, "| published result | R² | 95% CI | source |");
    let _ = writeln!(md, "|---|---:|---|---|");
    for q in QUOTED {
        let ci =
            q.ci.map_or("–".to_string(), |(lo, hi)| format!("[{lo:.3}, {hi:.3}]"));
        let _ = writeln!(md, "| {} | {:.3} | {ci} | {} |", q.what, q.r2, q.source);
    }
    let _ = writeln!(md);
    match results.ran.iter().find(|r| !r.info.control) {
        Some(best) => {
            let _ = writeln!(
                md,
                "Best experiment of this run that is not a random-init control: {} (R² {}).\n",
                best.info.id,
                f3(best.eval.r2)
            );
        }
        None if !results.ran.is_empty() => {
            let _ = writeln!(
                md,
                "Every experiment of this run is a random-init control, so none is comparable with the published rows.\n"
            );
        }
        None => {}
    }
}

/// Every clip that failed before training: file, stage, reason.
fn failed_clips(md: &mut String, results: &Results) {
    if results.failed.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Failed clips\n\n{} clip(s) failed and are in no number above (also `results/failed.parquet`); \
         fix them and run again, or run with `--strict` to stop at the first failure.\n",
        results.failed.len()
    );
    let _ = writeln!(md, "| clip | file | stage | reason |");
    let _ = writeln!(md, "|---|---|---|---|");
    for f in &results.failed {
        let reason = f.reason.replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {reason} |",
            f.clip_id, f.file, f.stage
        );
    }
    let _ = writeln!(md);
}

/// The ranked section of a rendered report (for printing after a run).
pub fn ranked_section(report: &str) -> Option<&str> {
    let start = report.find(RANKED_HEADING)?;
    let rest = &report[start..];
    let end = rest[RANKED_HEADING.len()..]
        .find("\n## ")
        .map_or(rest.len(), |i| i + RANKED_HEADING.len() + 1);
    Some(rest[..end].trim_end())
}

/// What the 95% CI resamples, and why the clip-level one is beside it.
fn ci_footnote(md: &mut String, results: &Results) {
    let clustered: Vec<&crate::metrics::Evaluation> = (results.ran.iter())
        .map(|r| &r.eval)
        .filter(|e| e.ci_unit.is_some())
        .collect();
    let Some(first) = clustered.first() else {
        let _ = writeln!(
            md,
            "95% CI: percentile bootstrap of R², resampling held-out clips within folds.\n"
        );
        return;
    };
    let unit = first.ci_unit.as_deref().unwrap_or("clip");
    let ratio = clustered
        .iter()
        .filter_map(|e| {
            let clip = e.clip_r2_ci.as_ref()?;
            Some((e.r2_ci.hi - e.r2_ci.lo) / (clip.hi - clip.lo).max(1e-12))
        })
        .sum::<f64>()
        / clustered.len() as f64;
    let n = first.n_clusters.unwrap_or(0);
    let how = match results.split {
        Split::Piece => format!(
            "resampling whole pieces within folds ({n} pieces; the cluster bootstrap: a piece's \
             performances share their score and most of their label variance, so they are not \
             independent draws)"
        ),
        Split::Performer | Split::PerformerPublished => format!(
            "resampling whole performers within folds ({n} performers; the cluster bootstrap: a \
             performer's clips share the player and the raters' view of them)"
        ),
        Split::PiecePerformer => format!(
            "resampling pieces within folds ({n} piece-fold clusters) and performers across folds, \
             crossed: a clip enters as often as its piece times its performer was drawn (the \
             pigeonhole bootstrap, Owen 2007, Ann. Appl. Stat. 1(2)), since its error shares both"
        ),
    };
    let _ = writeln!(
        md,
        "95% CI: percentile bootstrap of R², {how}. The clip-level CI resamples clips as if \
         they were independent: on average the {unit} CI is {ratio:.1}x as wide.\n"
    );
}
