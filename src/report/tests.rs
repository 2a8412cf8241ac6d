use super::*;
use crate::dims::{DIMENSIONS, N_DIMS, STUDY_CATEGORIES};
use crate::experiment::TrainOutput;
use crate::head::Validation;
use crate::metrics::{BootstrapConfig, DimSummary, Pearson};
use arrow_array::{Array, Float32Array, Float64Array, Int32Array, RecordBatch, StringArray};

fn dim(r2: f64, pearson_r: Option<f64>) -> DimSummary {
    DimSummary {
        r2,
        mae: 0.1,
        pearson_r,
        dispersion: 0.5,
        pooled_pearson: pearson_r.map(|r| Pearson { r, p: 0.01 }),
    }
}

/// An experiment whose predictions are the labels plus `noise` · a fixed pattern.
fn ran(id: &str, noise: f32, control: bool) -> Ran {
    let n = 40;
    let folds: Vec<usize> = (0..n).map(|i| i % 4).collect();
    let y_true: Vec<f32> = (0..n * N_DIMS)
        .map(|k| 0.3 + 0.4 * ((k * 7919) % 101) as f32 / 101.0)
        .collect();
    let y_pred: Vec<f32> = y_true
        .iter()
        .enumerate()
        .map(|(k, y)| y + noise * (((k * 31) % 17) as f32 / 17.0 - 0.5))
        .collect();
    let train = TrainOutput {
        clip_ids: (0..n).map(|i| format!("c{i}")).collect(),
        split: Default::default(),
        folds,
        y_true,
        y_pred,
        d_in: 3,
        train_seconds: 1.5,
        fold_reports: Vec::new(),
        failed: Vec::new(),
        heads: Vec::new(),
        seeds: Vec::new(),
        seed_predictions: Vec::new(),
    };
    let eval = train.evaluate(&BootstrapConfig::default()).unwrap();
    Ran {
        info: ExperimentInfo {
            id: id.into(),
            description: format!("{id} head"),
            features: "f".into(),
            encoder: "e".into(),
            control,
            not_run: None,
            failed: false,
            validation: Validation::HeldOutPieces,
            setup: String::new(),
            split: Default::default(),
            label_only: false,
            symbolic: false,
        },
        train,
        eval,
    }
}

fn results() -> Results {
    let missing = ExperimentInfo {
        id: "Z9".into(),
        description: "needs weights".into(),
        features: "g".into(),
        encoder: "real".into(),
        control: false,
        not_run: Some("no weights in models/x".into()),
        failed: false,
        validation: Validation::HeldOutPieces,
        setup: String::new(),
        split: Default::default(),
        label_only: false,
        symbolic: false,
    };
    Results::new(
        vec![ran("worse", 0.4, false), ran("better", 0.1, true)],
        vec![missing],
    )
}

fn table(name: &str, r: &Results) -> RecordBatch {
    tables::build(name, std::slice::from_ref(r))
        .unwrap()
        .batch()
        .unwrap()
}

#[test]
fn summary_ranks_by_r2_and_lists_what_did_not_run() {
    let r = results();
    assert_eq!(r.ran[0].info.id, "better");
    let b = table("summary", &r);
    let exp = crate::table::column::<StringArray>(&b, "experiment").unwrap();
    let r2 = crate::table::column::<Float64Array>(&b, "r2").unwrap();
    let rank = crate::table::column::<Int32Array>(&b, "rank").unwrap();
    assert_eq!(
        (0..3).map(|i| exp.value(i)).collect::<Vec<_>>(),
        ["better", "worse", "Z9"]
    );
    assert_eq!(r2.value(0), r.ran[0].eval.r2);
    assert!(r2.value(0) > r2.value(1));
    assert!(r2.is_null(2) && rank.is_null(2) && rank.value(1) == 2);
    let lo = crate::table::column::<Float64Array>(&b, "r2_ci_low").unwrap();
    assert_eq!(lo.value(1), r.ran[1].eval.r2_ci.lo);
    // Clip-level evaluations: the unit says so, and no second CI.
    let unit = crate::table::column::<StringArray>(&b, "ci_unit").unwrap();
    let clip_lo = crate::table::column::<Float64Array>(&b, "r2_ci_clip_low").unwrap();
    assert_eq!((unit.value(0), unit.is_null(2)), ("clip", true));
    assert!(clip_lo.is_null(0) && clip_lo.is_null(2));
}

#[test]
fn long_predictions_are_in_id_order_whatever_the_rank() {
    let r = results();
    let b = table("predictions", &r);
    assert_eq!(b.num_rows(), 2 * 40 * N_DIMS);
    let exp = crate::table::column::<StringArray>(&b, "experiment").unwrap();
    let dim = crate::table::column::<StringArray>(&b, "dimension").unwrap();
    let clip = crate::table::column::<StringArray>(&b, "clip_id").unwrap();
    let y_pred = crate::table::column::<Float32Array>(&b, "y_pred").unwrap();
    assert_eq!(
        (exp.value(0), dim.value(0), dim.value(1)),
        ("better", "timing", "articulation_length")
    );
    // Row 3 · 19 + 5 of "better" (ranked first, listed first) is clip c3, dimension 5.
    let row = 3 * N_DIMS + 5;
    assert_eq!((clip.value(row), dim.value(row)), ("c3", DIMENSIONS[5]));
    assert_eq!(y_pred.value(row), r.ran[0].train.y_pred[row]);
    assert_eq!(exp.value(b.num_rows() - 1), "worse");
}

#[test]
fn per_category_means_match_a_hand_computed_case() {
    // R² of dimension d is d/100; Pearson r defined only for even d.
    let mut r = results();
    r.ran[0].eval.per_dim = (0..N_DIMS)
        .map(|d| dim(d as f64 / 100.0, (d % 2 == 0).then_some(d as f64 / 10.0)))
        .collect();
    let b = table("per_category", &r);
    assert_eq!(b.num_rows(), 2 * 7);
    let cat = crate::table::column::<StringArray>(&b, "category").unwrap();
    let n = crate::table::column::<Int32Array>(&b, "n_dimensions").unwrap();
    let r2 = crate::table::column::<Float64Array>(&b, "r2").unwrap();
    let pearson = crate::table::column::<Float64Array>(&b, "pearson").unwrap();
    assert_eq!((cat.value(0), n.value(0)), ("Timing", 2));
    assert!((r2.value(0) - 0.055).abs() < 1e-12);
    assert_eq!(pearson.value(0), 0.0);
    assert_eq!((cat.value(3), n.value(3)), ("Timbre", 4));
    assert!((r2.value(3) - 0.065).abs() < 1e-12);
    assert!((pearson.value(3) - 0.7).abs() < 1e-12);
    assert!((r2.value(4) - 0.10).abs() < 1e-12);
    assert_eq!((0..7).map(|i| n.value(i)).sum::<i32>(), N_DIMS as i32);
    // Pace is the only dimension of Timing without r: a category with none is null.
    r.ran[0].eval.per_dim[0].pearson_r = None;
    r.ran[0].eval.per_dim[11].pearson_r = None;
    let b = table("per_category", &r);
    assert!(
        crate::table::column::<Float64Array>(&b, "pearson")
            .unwrap()
            .is_null(0)
    );
    // Summed left to right, as everything else in pipe sums: R² 0.1, 0.2,
    // 0.3, 0 over Timbre's four dimensions give 0.6000000000000001 / 4,
    // where a compensated sum would give 0.6 / 4 = 0.15.
    let (_, timbre) = STUDY_CATEGORIES[3];
    for (k, d) in timbre.iter().enumerate() {
        let i = DIMENSIONS.iter().position(|x| x == d).unwrap();
        r.ran[0].eval.per_dim[i].r2 = [0.1, 0.2, 0.3, 0.0][k];
    }
    let b = table("per_category", &r);
    let r2 = crate::table::column::<Float64Array>(&b, "r2").unwrap();
    assert_eq!(r2.value(3), (0.1 + 0.2 + 0.3 + 0.0) / 4.0);
    assert_ne!(r2.value(3), 0.15);
}

/// Configured experiments that exercise every ordering rule: two with the
/// same R² (ranked by id), undefined Pearson r in places, two that did not
/// run (kept in configuration order, after the ranked ones).
fn awkward_results() -> Results {
    let mut tie_b = ran("tie_b", 0.25, false);
    tie_b.eval.per_dim[3].pearson_r = None;
    tie_b.eval.per_dim[3].pooled_pearson = None;
    tie_b.eval.folds[1].pearson_r = None;
    let mut tie_a = tie_b.clone();
    tie_a.info.id = "tie_a".into();
    tie_a.eval.per_dim[6].pearson_r = None;
    tie_a.eval.pearson_r = None;
    let not_run = |id: &str, failed: bool| ExperimentInfo {
        id: id.into(),
        description: format!("{id} needs weights"),
        features: "g".into(),
        encoder: "real".into(),
        control: false,
        not_run: Some(format!("no weights for {id}")),
        failed,
        validation: Validation::HeldOutPieces,
        setup: String::new(),
        split: Default::default(),
        label_only: false,
        symbolic: false,
    };
    // Two clips failed before training (listed by two experiments, once each).
    let failed_clip = |id: &str, stage: &str| crate::dataset::FailedClip {
        clip_id: id.into(),
        file: format!("midi/{id}.mid"),
        stage: stage.into(),
        reason: format!("{stage} of {id} failed"),
    };
    let mut mid = ran("mid", 0.2, true);
    mid.train.failed = vec![failed_clip("c7", "decode"), failed_clip("c2", "render")];
    let mut worse = ran("worse", 0.4, false);
    worse.train.failed = vec![failed_clip("c7", "decode")];
    Results::new(
        vec![worse, tie_b, ran("better", 0.1, true), tie_a, mid],
        vec![
            not_run("Z9", false),
            not_run("F1", true),
            not_run("A0", false),
        ],
    )
}

/// The f64 columns' bit patterns (nulls as None), for exact comparison.
fn float_bits(b: &RecordBatch) -> Vec<Vec<Option<u64>>> {
    b.columns()
        .iter()
        .filter_map(|c| c.as_any().downcast_ref::<Float64Array>())
        .map(|a| a.iter().map(|x| x.map(f64::to_bits)).collect())
        .collect()
}

#[test]
fn every_table_equals_the_hand_built_one_of_main_to_the_last_bit() {
    let dir = tempfile::tempdir().unwrap();
    for r in [
        awkward_results(),
        results(),
        Results::new(Vec::new(), results().not_run),
    ] {
        for name in tables::TABLES {
            let got = tables::build(name, std::slice::from_ref(&r))
                .unwrap()
                .batch()
                .unwrap();
            let want = oracle::build(name, &r).batch().unwrap();
            // The columns added since: the clustered CI's unit and the
            // clip-level CI, the paired ΔR², the split, label-only, R² on humans.
            let added = [
                "split",
                "label_only",
                "r2_humans",
                "pairwise_acc",
                "n_pairs",
                "ci_unit",
                "r2_ci_clip_low",
                "r2_ci_clip_high",
                "delta_best",
                "delta_best_ci_low",
                "delta_best_ci_high",
                "r2_seeds_mean",
                "r2_seeds_sd",
                "n_seeds",
            ];
            let keep: Vec<usize> = (0..got.num_columns())
                .filter(|&i| !added.contains(&got.schema().field(i).name().as_str()))
                .collect();
            assert_eq!(keep.len() < got.num_columns(), name != "failed", "{name}");
            let got = got.project(&keep).unwrap();
            // Names, types, nullability and key-value metadata.
            assert_eq!(got.schema(), want.schema(), "{name}");
            assert_eq!(float_bits(&got), float_bits(&want), "{name}");
            assert_eq!(got, want, "{name}");
            // And so the same Parquet bytes.
            let (a, b) = (dir.path().join("a"), dir.path().join("b"));
            crate::table::write_batch(&got, &a).unwrap();
            crate::table::write_batch(&want, &b).unwrap();
            assert_eq!(
                std::fs::read(&a).unwrap(),
                std::fs::read(&b).unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn markdown_marks_controls_and_the_ranked_section_can_be_cut_out() {
    let md = markdown::render(
        std::slice::from_ref(&results()),
        &[("scatter.png", "scatter")],
    );
    let section = markdown::ranked_section(&md).unwrap();
    assert!(section.starts_with(markdown::RANKED_HEADING));
    assert!(
        section.contains("| 1 | better | better head **[control]** |"),
        "{section}"
    );
    assert!(section.contains("- Z9: no weights in models/x"));
    assert!(
        !section.contains("## R² per fold"),
        "the section stops at the next heading"
    );
    assert!(md.contains("Best experiment of this run that is not a random-init control: worse"));
    assert!(md.contains("![scatter](plots/scatter.png)"));
}

#[test]
fn plots_are_pngs_of_the_declared_size() {
    let r = results();
    let mut bars = Vec::new();
    plots::r2_by_dimension(&r.ran.iter().collect::<Vec<_>>(), &mut bars).unwrap();
    let mut scatter = Vec::new();
    plots::scatter(&r.ran[0], &mut scatter).unwrap();
    // The bar chart ends in a legend strip of one 24-px row per experiment.
    let legend = 16 + 24 * r.ran.len() as u32;
    for (png, (w, h)) in [
        (&bars, (1100u32, 120 + 34 * 19 + legend)),
        (&scatter, (1500, 1250)),
    ] {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after the chunk header.
        let dims = (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        );
        assert_eq!(dims, (w, h));
    }
}

/// Pieces of 2 clips within each fold of [`ran`] (clips i and i + 4 share a fold).
fn test_piece(i: usize) -> usize {
    (i % 4) * 10 + (i / 4) / 2
}

/// `r` evaluated with [`test_piece`]'s pieces as clusters (what paired
/// comparisons need).
fn clustered(mut r: Ran) -> Ran {
    let t = &r.train;
    let cluster: Vec<usize> = (0..t.clip_ids.len()).map(test_piece).collect();
    let c = crate::metrics::Clusters {
        of_clip: &cluster,
        crossed: None,
        unit: "piece",
    };
    let boot = BootstrapConfig::default();
    r.eval =
        crate::metrics::evaluate(&t.y_true, &t.y_pred, N_DIMS, &t.folds, Some(c), &boot).unwrap();
    r
}

/// `ran` under a protocol and setup, its fold reports holding `val_r2` each.
fn ran_as(id: &str, noise: f32, validation: Validation, setup: &str, val_r2: [f64; 4]) -> Ran {
    let mut r = clustered(ran(id, noise, true));
    r.info.validation = validation;
    r.info.setup = setup.into();
    r.train.fold_reports = val_r2
        .iter()
        .enumerate()
        .map(|(fold, &v)| crate::head::FoldReport {
            fold,
            n_train: 30,
            n_val: 10,
            n_test: 10,
            n_val_pieces: 10,
            fit: crate::head::FitReport {
                epochs_run: 5,
                best_epoch: 3,
                best_val_loss: 0.01,
                best_val_r2: Some(v),
                train_seconds: 0.1,
            },
        })
        .collect();
    r
}

#[test]
fn study_protocol_section_pairs_rows_that_differ_only_in_the_protocol() {
    let results = Results::new(
        vec![
            ran_as(
                "B0-control",
                0.4,
                Validation::HeldOutPieces,
                "s1",
                [0.1, 0.2, 0.3, 0.4],
            ),
            ran_as(
                "B0-control-studyprotocol",
                0.2,
                Validation::TestFold,
                "s1",
                [0.5, 0.6, 0.7, 0.8],
            ),
            // Another setup under the study's protocol only: no pair.
            ran_as(
                "A1-control-studyprotocol",
                0.3,
                Validation::TestFold,
                "s2",
                [0.5; 4],
            ),
        ],
        Vec::new(),
    );
    let pairs: Vec<_> = (results.protocol_pairs().into_iter())
        .map(|r| (r.ours, r.study))
        .collect();
    assert_eq!(pairs.len(), 1);
    let (ours, study) = pairs[0];
    assert_eq!(
        (ours.info.id.as_str(), study.info.id.as_str()),
        ("B0-control", "B0-control-studyprotocol")
    );
    let md = markdown::render(std::slice::from_ref(&results), &[]);
    let inflation = study.eval.r2 - ours.eval.r2;
    assert!(inflation > 0.0);
    // The study's CI: pooled predictions resampled together, around the
    // pooled R² (not the fold mean).
    let ci = study.eval.pooled_r2_ci.clone().unwrap();
    let oof =
        crate::metrics::OutOfFold::new(&study.train.y_true, &study.train.y_pred, N_DIMS).unwrap();
    let pooled = oof.dim_mean_r2(&(0..40).collect::<Vec<_>>()).unwrap();
    assert_eq!(ci.estimate, pooled);
    assert_ne!(pooled, study.eval.r2);
    assert!(ci.lo < ci.hi);
    let misses = if (ci.lo..=ci.hi).contains(&0.65) {
        ""
    } else {
        " (misses the aggregate)"
    };
    // The inflation with its paired CI (same clips and clusters).
    let d = results.paired(study, ours).unwrap();
    assert!((d.estimate - inflation).abs() < 1e-12);
    let row = format!(
        "| B0-control | B0-control-studyprotocol | {:.3} | {:.3} | {inflation:+.3} [{:+.3}, {:+.3}] | 0.250 | 0.650 | [{:.3}, {:.3}]{misses} |",
        ours.eval.r2, study.eval.r2, d.lo, d.hi, ci.lo, ci.hi
    );
    assert!(md.contains("## The study's protocol"), "{md}");
    assert!(md.contains(&row), "{row}\n{md}");
    assert!(
        md.contains(&format!("inflates R² by {inflation:+.3} on average")),
        "{md}"
    );
    assert!(md.contains("| B0-control-studyprotocol | B0-control-studyprotocol head **[control]** **[study protocol]** |"), "{md}");
    // Without a fixed-epoch copy the inflation is not decomposed.
    assert!(!md.contains("### The inflation, decomposed"), "{md}");
    assert!(
        md.contains("`validation = \"held_out_epoch\"` splits it"),
        "{md}"
    );
    // Without a study-protocol row there is no section.
    assert!(
        !markdown::render(std::slice::from_ref(&self::results()), &[])
            .contains("The study's protocol")
    );
}

/// With a fixed-epoch copy of the same setup the inflation splits into
/// peeking (study's − fixed epoch) and training clips + criterion (fixed
/// epoch − ours), each with its paired CI; the two add up to the inflation.
#[test]
fn a_fixed_epoch_copy_decomposes_the_inflation_into_peeking_and_the_rest() {
    let mk = |id: &str, noise: f32, v: Validation| ran_as(id, noise, v, "s1", [0.3; 4]);
    let results = Results::new(
        vec![
            mk("B0-control", 0.4, Validation::HeldOutPieces),
            mk("B0-control-studyprotocol", 0.1, Validation::TestFold),
            mk("B0-control-fixedepoch", 0.3, Validation::HeldOutEpoch),
        ],
        Vec::new(),
    );
    let rows = results.protocol_pairs();
    assert_eq!(rows.len(), 1);
    let r = rows[0];
    let fixed = r.fixed_epoch.expect("the fixed-epoch copy pairs by setup");
    assert_eq!(fixed.info.id, "B0-control-fixedepoch");
    let peek = r.study.eval.r2 - fixed.eval.r2;
    let rest = fixed.eval.r2 - r.ours.eval.r2;
    assert!(peek > 0.0 && rest > 0.0, "{peek} {rest}");
    assert!((peek + rest - (r.study.eval.r2 - r.ours.eval.r2)).abs() < 1e-12);
    let (cp, cr) = (
        results.paired(r.study, fixed).unwrap(),
        results.paired(fixed, r.ours).unwrap(),
    );
    assert!((cp.estimate - peek).abs() < 1e-12 && (cr.estimate - rest).abs() < 1e-12);
    let md = markdown::render(std::slice::from_ref(&results), &[]);
    let row = format!(
        "| B0-control | B0-control-fixedepoch | {:.3} | {:.3} | {:.3} | {peek:+.3} [{:+.3}, {:+.3}] | {rest:+.3} [{:+.3}, {:+.3}] | {:.0} % |",
        r.ours.eval.r2,
        fixed.eval.r2,
        r.study.eval.r2,
        cp.lo,
        cp.hi,
        cr.lo,
        cr.hi,
        100.0 * peek / (peek + rest)
    );
    assert!(md.contains("### The inflation, decomposed"), "{md}");
    assert!(md.contains(&row), "{row}\n{md}");
    assert!(md.contains("**[fixed epoch]**"), "{md}");
}

/// Every `README.md#anchor` link of the report names a heading of README.md.
#[test]
fn report_links_to_readme_sections_resolve() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let anchors: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| markdown::github_anchor(l.trim_start_matches('#')))
        .collect();
    assert!(anchors.contains(&"metric-definitions".to_string()));
    assert!(anchors.contains(&"the-19-dimensions-and-their-categories".to_string()));
    let results = Results::new(
        vec![
            ran_as("x", 0.4, Validation::HeldOutPieces, "s", [0.1; 4]),
            ran_as("x-studyprotocol", 0.2, Validation::TestFold, "s", [0.2; 4]),
        ],
        Vec::new(),
    );
    let md = markdown::render(std::slice::from_ref(&results), &[]);
    let links: Vec<&str> = md
        .split("README.md#")
        .skip(1)
        .map(|rest| &rest[..rest.find(')').unwrap()])
        .collect();
    assert!(links.len() >= 3, "{md}");
    for link in links {
        assert!(
            anchors.iter().any(|a| a == link),
            "README.md#{link} is no heading of README.md"
        );
    }
}

/// The ranked summary quotes the study's figure of each row by id prefix,
/// marks its defects and explains each marker once; summary.parquet
/// carries the figure as `study_r2`.
#[test]
fn ranked_summary_quotes_the_study_figures_with_their_defects() {
    let results = Results::new(
        vec![
            ran("B0-control", 0.1, true),
            ran("D8-control", 0.2, true),
            ran("mine", 0.3, true),
        ],
        Vec::new(),
    );
    let md = markdown::render(std::slice::from_ref(&results), &[]);
    let line = |id: &str| {
        md.lines()
            .find(|l| l.contains(&format!("| {id} |")))
            .unwrap()
            .to_string()
    };
    assert!(line("B0-control").contains("| 0.405 |"), "{md}");
    let d8 = line("D8-control");
    assert!(
        d8.contains("| 0.560 (fold 3 only; its 4-fold mean is 0.454) †1 ‡ |"),
        "{d8}"
    );
    // No study row named "mine".
    assert!(line("mine").contains("| – |"), "{}", line("mine"));
    assert!(md.contains("†k: the study's figure averages k folds, not 4"));
    assert!(md.contains("‡: the study's 95% CI misses its own estimate"));
    assert!(md.contains("arXiv:2601.19029"));
    let b = table("summary", &results);
    let exp = crate::table::column::<StringArray>(&b, "experiment").unwrap();
    let study = crate::table::column::<Float64Array>(&b, "study_r2").unwrap();
    for i in 0..3 {
        match exp.value(i) {
            "B0-control" => assert_eq!(study.value(i), 0.405),
            "D8-control" => assert_eq!(study.value(i), 0.560),
            _ => assert!(study.is_null(i)),
        }
    }
}

#[test]
fn every_study_row_is_quoted_once_and_ids_map_by_prefix() {
    use published::{STUDY_ROWS, study_row};
    let ids: Vec<&str> = STUDY_ROWS.iter().map(|r| r.id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    assert_eq!(study_row("D10c-control").unwrap().r2, 0.464);
    assert_eq!(study_row("B1a").unwrap().r2, 0.397);
    assert!(study_row("B0s-control").is_none());
    assert_eq!(study_row("A3-raw").unwrap().cell(), "-12.6 †3");
}

/// E3: an `E3-audio*` and an `E3-symbolic*` row give the per-dimension
/// table with the winner and the study's HAN figure beside.
#[test]
fn audio_vs_symbolic_table_from_a_hand_made_pair() {
    let mut audio = ran("E3-audio-control", 0.1, true);
    let mut symbolic = ran("E3-symbolic", 0.2, false);
    for d in 0..N_DIMS {
        audio.eval.per_dim[d].r2 = if d % 2 == 0 { 0.3 } else { 0.1 };
        symbolic.eval.per_dim[d].r2 = 0.2;
    }
    let md = markdown::render(
        std::slice::from_ref(&Results::new(vec![audio, symbolic], Vec::new())),
        &[],
    );
    assert!(md.contains("## Audio vs symbolic (E3)"), "{md}");
    assert!(md.contains("### E3-audio-control vs E3-symbolic"), "{md}");
    assert!(
        md.contains("| timing | 0.300 | 0.200 | audio | 0.119 |"),
        "{md}"
    );
    assert!(
        md.contains("| articulation_length | 0.100 | 0.200 | symbolic | 0.539 |"),
        "{md}"
    );
    // Our order puts dynamic_sophistication 10th; the HAN figure goes by name.
    assert!(
        md.contains("| dynamic_sophistication | 0.100 | 0.200 | symbolic | 0.449 |"),
        "{md}"
    );
    assert!(
        md.contains("Audio wins 10 of 19 dimensions, symbolic 9."),
        "{md}"
    );
    for (dim, _) in published::HAN_SYMBOLIC {
        assert!(crate::dims::DIMENSIONS.contains(&dim), "{dim}");
    }
    // One side alone: no table.
    let alone = Results::new(vec![ran("E3-audio-control", 0.1, true)], Vec::new());
    assert!(!markdown::render(std::slice::from_ref(&alone), &[]).contains("Audio vs symbolic"));
}

#[test]
fn rows_are_compared_with_the_best_by_a_paired_piece_bootstrap() {
    let (piece, clustered) = (test_piece, clustered);
    let best = clustered(ran("best", 0.05, false));
    // As good overall, better on some pieces and worse on others.
    let mut close = ran("close", 0.05, false);
    let t = &mut close.train;
    for (k, p) in t.y_pred.iter_mut().enumerate() {
        let scale = if piece(k / N_DIMS).is_multiple_of(2) {
            0.8
        } else {
            1.18
        };
        *p = t.y_true[k] + scale * (*p - t.y_true[k]);
    }
    let (close, far) = (clustered(close), clustered(ran("far", 0.3, false)));
    let r = Results::new(vec![far, close, best.clone()], Vec::new());
    // `best` and `close` rank first in either order; `far` last.
    assert_eq!(r.ran[2].info.id, "far");
    let d = r.vs_best();
    assert!(d[0].is_none(), "the best row is not compared with itself");
    let (close, far) = (d[1].as_ref().unwrap(), d[2].as_ref().unwrap());
    assert_eq!(far.estimate, r.ran[0].eval.r2 - r.ran[2].eval.r2);
    assert!(far.lo > 0.0, "far is told apart: {far:?}");
    assert!(
        close.lo <= 0.0 && close.hi >= 0.0,
        "close is not: {close:?}"
    );
    // The summary carries the same numbers; the report marks the tie.
    let b = table("summary", &r);
    let lo = crate::table::column::<Float64Array>(&b, "delta_best_ci_low").unwrap();
    assert!(lo.is_null(0));
    assert_eq!((lo.value(1), lo.value(2)), (close.lo, far.lo));
    let md = markdown::ranked_table(&r);
    assert!(md.contains(" ≈ |") && md.contains("(1 row(s))"), "{md}");
    // A clip-level row is not comparable: no pairs of pieces to resample.
    let r = Results::new(vec![best.clone(), ran("clip", 0.3, false)], Vec::new());
    assert!(r.vs_best()[1].is_none());
    // A study-protocol row may rank first but is no yardstick: the best
    // held-out row is, and the peeking row's ΔR² is negative.
    let mut peek = clustered(ran("peek", 0.0, false));
    peek.info.validation = Validation::TestFold;
    let r = Results::new(vec![best, peek], Vec::new());
    assert_eq!(
        (r.ran[0].info.id.as_str(), r.best_held_out()),
        ("peek", Some(1))
    );
    let d = r.vs_best();
    assert!(d[1].is_none() && d[0].as_ref().unwrap().hi < 0.0, "{d:?}");
    assert!(markdown::ranked_table(&r).contains("held-out pieces (best) minus"));

    // The study's claims on control rows: "MLP > linear probe" reads
    // B0-control and A1-control; "MSE > hybrid > CCC" two pairs, of which
    // only the ones that ran are tested. B0 is the better predictor here,
    // C1a as good as B0 (the `close` construction), C1b far worse.
    let named = |mut r: Ran, id: &str| {
        r.info.id = id.into();
        r.info.control = true;
        r
    };
    let b0 = named(clustered(ran("x", 0.05, false)), "B0-control");
    let a1 = named(clustered(ran("x", 0.3, false)), "A1-control");
    let mut c1a = named(clustered(ran("x", 0.05, false)), "C1a-control");
    c1a.train.y_pred = d_close_pred(&c1a.train, &piece);
    let c1a = clustered(c1a);
    let c1b = named(clustered(ran("x", 0.3, false)), "C1b-control");
    let r = Results::new(vec![a1, b0, c1a, c1b], Vec::new());
    let tests = r.claims();
    let found: Vec<(&str, &str, &str)> = tests
        .iter()
        .map(|t| (t.claim, t.better.info.id.as_str(), t.worse.info.id.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("MLP > linear probe", "B0-control", "A1-control"),
            ("MSE > hybrid > CCC loss", "B0-control", "C1a-control"),
            ("MSE > hybrid > CCC loss", "C1a-control", "C1b-control"),
        ]
    );
    let delta = |i: usize| tests[i].delta.clone().unwrap();
    // Far apart by construction: holds; as good: undecided.
    assert_eq!(
        delta(0).estimate,
        r.get("B0-control").unwrap().eval.r2 - r.get("A1-control").unwrap().eval.r2
    );
    assert!(delta(0).lo > 0.0 && delta(2).lo > 0.0, "{tests:?}");
    assert!(delta(1).lo <= 0.0 && delta(1).hi >= 0.0);
    let md = markdown::render(std::slice::from_ref(&r), &[]);
    assert!(md.contains("## The study's claims"), "{md}");
    assert!(
        md.contains("| MLP > linear probe **[control]** | `piece` | B0-control > A1-control |")
    );
    assert!(
        md.contains("| holds |") && md.contains("| undecided |"),
        "{md}"
    );
}

/// `train`'s predictions moved toward the truth on even pieces and away on
/// odd ones: about as good overall, better or worse piece by piece.
fn d_close_pred(t: &TrainOutput, piece: &dyn Fn(usize) -> usize) -> Vec<f32> {
    (t.y_pred.iter().enumerate())
        .map(|(k, p)| {
            let scale = if piece(k / N_DIMS).is_multiple_of(2) {
                0.8
            } else {
                1.18
            };
            t.y_true[k] + scale * (p - t.y_true[k])
        })
        .collect()
}

/// A row trained once per seed: the summary's mean, sd and count over the
/// seeds, and the report's "Training noise across seeds" row, by hand.
#[test]
fn seeds_give_the_summarys_mean_and_sd_and_a_report_row() {
    use crate::metrics::SeedR2;
    let mut a = ran("B1c-control", 0.1, true);
    a.eval.seed_r2 = [(42, 0.1), (43, 0.2), (44, 0.3)]
        .map(|(seed, r2)| SeedR2 { seed, r2: Some(r2) })
        .to_vec();
    let results = Results::new(vec![a, ran("B0-control", 0.2, true)], Vec::new());
    let s = tables::build("summary", std::slice::from_ref(&results))
        .unwrap()
        .batch()
        .unwrap();
    let exp = crate::table::column::<StringArray>(&s, "experiment").unwrap();
    let mean = crate::table::column::<Float64Array>(&s, "r2_seeds_mean").unwrap();
    let sd = crate::table::column::<Float64Array>(&s, "r2_seeds_sd").unwrap();
    let n = crate::table::column::<Int32Array>(&s, "n_seeds").unwrap();
    for i in 0..s.num_rows() {
        if exp.value(i) == "B1c-control" {
            assert!((mean.value(i) - 0.2).abs() < 1e-12 && (sd.value(i) - 0.1).abs() < 1e-12);
            assert_eq!(n.value(i), 3);
        } else {
            assert!(mean.is_null(i) && sd.is_null(i) && n.is_null(i));
        }
    }
    let md = markdown::render(std::slice::from_ref(&results), &[]);
    assert!(md.contains("## Training noise across seeds"), "{md}");
    assert!(
        md.contains("| B1c-control | piece | 42: 0.100, 43: 0.200, 44: 0.300 | 0.200 | 0.100 |"),
        "{md}"
    );
    let alone = Results::new(vec![ran("B0-control", 0.2, true)], Vec::new());
    assert!(!markdown::render(std::slice::from_ref(&alone), &[]).contains("Training noise"));
}
