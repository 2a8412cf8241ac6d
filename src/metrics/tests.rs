use super::*;
use crate::rng::Rng;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn hand_computed_small_cases() {
    let t = [1.0, 2.0, 3.0];
    assert_eq!(r2_score(&t, &t), Some(1.0));
    // Predicting the mean gives 0; reversing gives 1 - 8/2 = -3.
    assert_eq!(r2_score(&t, &[2.0, 2.0, 2.0]), Some(0.0));
    assert_eq!(r2_score(&t, &[3.0, 2.0, 1.0]), Some(-3.0));
    assert_eq!(mae(&t, &[2.0, 2.0, 2.0]), Some(2.0 / 3.0));
    let p = pearson(&t, &[3.0, 2.0, 1.0]).unwrap();
    // r = -1 up to rounding; p is then ~1e-8 (dof 1), not exactly 0.
    assert!((p.r + 1.0).abs() < 1e-12 && p.p < 1e-7, "{p:?}");
    // std_pop([1,2,3]) = sqrt(2/3); doubling the spread doubles the ratio.
    assert!((std_pop(&t) - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
    assert_eq!(dispersion_ratio(&t, &[2.0, 4.0, 6.0]), Some(2.0));
    assert_eq!(dispersion_ratio(&t, &[5.0, 5.0, 5.0]), Some(0.0));
}

#[test]
fn degenerate_columns_are_undefined() {
    let c = [0.5, 0.5, 0.5, 0.5];
    let p = [0.1, 0.4, 0.5, 0.9];
    assert_eq!(r2_score(&c, &p), None);
    assert_eq!(dispersion_ratio(&c, &p), None);
    assert_eq!(pearson(&c, &p), None);
    // Constant predictions: r undefined, R² defined.
    assert_eq!(pearson(&p, &c), None);
    assert!(r2_score(&p, &c).is_some());
    // Too few points for a t-test with n-2 dof.
    assert_eq!(pearson(&[1.0, 2.0], &[2.0, 1.0]), None);
    assert_eq!(r2_score(&[], &[]), None);
}

// Fixture shared with the offline computation in the comments below: 10 clips,
// 3 dimensions, values are k/64 (exact in f32), folds [0;5] ++ [1;5].
const YT: [[u8; 3]; 10] = [
    [10, 20, 33],
    [14, 25, 30],
    [22, 18, 41],
    [30, 40, 35],
    [25, 35, 44],
    [12, 60, 20],
    [40, 22, 28],
    [33, 31, 19],
    [28, 45, 36],
    [19, 50, 25],
];
const YP: [[u8; 3]; 10] = [
    [12, 22, 31],
    [15, 20, 33],
    [20, 24, 38],
    [27, 33, 36],
    [29, 30, 40],
    [18, 52, 24],
    [35, 30, 26],
    [30, 28, 23],
    [26, 40, 30],
    [21, 41, 27],
];
const FOLDS: [usize; 10] = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];

fn fixture() -> (Vec<f32>, Vec<f32>) {
    let f = |m: &[[u8; 3]; 10]| m.iter().flatten().map(|&v| v as f32 / 64.0).collect();
    (f(&YT), f(&YP))
}

#[test]
fn evaluate_matches_sklearn_and_scipy() {
    // Computed with numpy 2.4 / scikit-learn 1.9 / scipy 1.17:
    // r2_score, mean_absolute_error, pearsonr per fold and dimension,
    // np.std(yp)/np.std(yt) (ddof=0); experiment R² = mean of fold means.
    let r2 = [
        [
            0.871_601_208_459_214_5,
            0.619_386_637_458_926_6,
            0.707_207_207_207_207_2,
        ],
        [
            0.841_849_148_418_491_5,
            0.735_063_235_935_455_6,
            0.598_308_668_076_11,
        ],
    ];
    let mae_want = [[0.0375, 0.078125, 0.040625], [0.05625, 0.103125, 0.05625]];
    let r = [
        [
            0.935_694_230_760_594_1,
            0.864_603_506_656_143_9,
            0.905_205_205_538_118,
        ],
        [
            0.993_798_849_240_984_8,
            0.944_677_768_489_676_6,
            0.955_677_371_763_417_9,
        ],
    ];
    let p = [
        [
            0.019_385_396_440_775_016,
            0.058_576_317_930_226_75,
            0.034_533_207_022_999_945,
        ],
        [
            0.000_585_649_681_108_705_4,
            0.015_489_817_031_203_919,
            0.011_126_626_506_817_86,
        ],
    ];
    let disp = [
        [
            0.905_671_955_976_831_7,
            0.575_132_729_097_258_8,
            0.631_980_537_199_840_9,
        ],
        [
            0.614_108_258_999_412_6,
            0.637_537_784_382_605_8,
            0.398_198_904_901_424_1,
        ],
    ];
    let pooled = [
        (0.955_179_840_344_164_6, 1.672_321_106_955_254_8e-5),
        (0.936_299_333_303_365_9, 6.667_500_571_880_189e-5),
        (0.931_139_388_074_791_8, 9.047_211_846_840_381e-5),
    ];
    let (yt, yp) = fixture();
    let boot = BootstrapConfig {
        resamples: 200,
        ..Default::default()
    };
    let ev = evaluate(&yt, &yp, 3, &FOLDS, None, &boot).unwrap();
    assert_eq!(ev.folds.len(), 2);
    for f in 0..2 {
        assert_eq!(ev.folds[f].n_clips, 5);
        for d in 0..3 {
            let m = &ev.folds[f].dims[d];
            assert!(close(m.r2, r2[f][d], 1e-12), "r2 f{f} d{d}: {}", m.r2);
            assert!(
                close(m.mae, mae_want[f][d], 1e-12),
                "mae f{f} d{d}: {}",
                m.mae
            );
            let pr = m.pearson.unwrap();
            assert!(close(pr.r, r[f][d], 1e-12), "r f{f} d{d}: {}", pr.r);
            assert!(close(pr.p, p[f][d], 1e-9), "p f{f} d{d}: {}", pr.p);
            assert!(close(m.dispersion, disp[f][d], 1e-12), "disp f{f} d{d}");
        }
        let fold_mean = r2[f].iter().sum::<f64>() / 3.0;
        assert!(close(ev.folds[f].r2, fold_mean, 1e-12));
    }
    assert!(
        close(ev.r2, 0.728_902_684_259_234_2, 1e-12),
        "experiment R² {}",
        ev.r2
    );
    assert_eq!(ev.r2_ci.estimate, ev.r2);
    for d in 0..3 {
        let pp = ev.per_dim[d].pooled_pearson.unwrap();
        assert!(close(pp.r, pooled[d].0, 1e-12));
        assert!(close(pp.p, pooled[d].1, 1e-8), "pooled p d{d}: {:e}", pp.p);
        assert!(close(ev.per_dim[d].r2, (r2[0][d] + r2[1][d]) / 2.0, 1e-12));
    }
}

#[test]
fn evaluate_names_fold_and_dimension_of_a_constant_column() {
    let (mut yt, yp) = fixture();
    for row in 5..10 {
        yt[row * 3 + 2] = 0.5;
    }
    let err = evaluate(&yt, &yp, 3, &FOLDS, None, &BootstrapConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fold 1, dimension 2"), "{msg}");
    assert!(msg.contains("undefined"), "{msg}");
}

#[test]
fn a_constant_percepiano_column_is_named_by_dimension() {
    let n_dims = crate::dims::N_DIMS;
    let folds = [0, 0, 0, 0, 1, 1, 1, 1];
    let mut rng = crate::rng::Rng::new(3, 0);
    let mut yt: Vec<f32> = (0..8 * n_dims).map(|_| rng.uniform_f32()).collect();
    let yp: Vec<f32> = (0..8 * n_dims).map(|_| rng.uniform_f32()).collect();
    for row in 4..8 {
        yt[row * n_dims + 4] = 0.25;
    }
    let err = evaluate(&yt, &yp, n_dims, &folds, None, &BootstrapConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fold 1, dimension `pedal_clarity`"), "{msg}");
}

#[test]
fn evaluate_rejects_bad_shapes() {
    let (yt, yp) = fixture();
    let e = evaluate(&yt, &yp[..27], 3, &FOLDS, None, &BootstrapConfig::default()).unwrap_err();
    assert!(e.to_string().contains("27"), "{e}");
    let e = evaluate(&yt, &yp, 3, &FOLDS[..9], None, &BootstrapConfig::default()).unwrap_err();
    assert!(e.to_string().contains("9 fold ids for 10 clips"), "{e}");
    let e = evaluate(&yt, &yp, 4, &FOLDS, None, &BootstrapConfig::default()).unwrap_err();
    assert!(e.to_string().contains("multiple of 4"), "{e}");
    let mut nan = yp.clone();
    nan[3 * 4 + 1] = f32::NAN;
    let e = evaluate(&yt, &nan, 3, &FOLDS, None, &BootstrapConfig::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("prediction of clip 4, dimension 1 is NaN"),
        "{e}"
    );
    // Fold ids 0 and 2 only: fold 1 is empty.
    let gap: Vec<usize> = FOLDS.iter().map(|&f| f * 2).collect();
    let e = evaluate(&yt, &yp, 3, &gap, None, &BootstrapConfig::default()).unwrap_err();
    assert!(e.to_string().contains("fold 1 of 0..3 has no clips"), "{e}");
}

#[test]
fn percentile_matches_numpy_linear() {
    // np.percentile([3,1,4,1.5,9,2.6,5], q) for q = 2.5, 50, 97.5, 0, 100, 33.3.
    let mut xs = vec![3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0];
    xs.sort_by(f64::total_cmp);
    let want = [
        (0.025, 1.075),
        (0.5, 3.0),
        (0.975, 8.399_999_999_999_999),
        (0.0, 1.0),
        (1.0, 9.0),
        (0.333, 2.5978),
    ];
    for (q, w) in want {
        assert!(
            close(percentile(&xs, q), w, 1e-12),
            "q={q}: {}",
            percentile(&xs, q)
        );
    }
}

/// Realistic out-of-fold data: 4 folds of `per_fold` clips, 19 dims, labels
/// in [1/7, 1], predictions = shrunk truth + noise (R² around 0.5).
fn realistic(per_fold: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed, 0);
    let n = 4 * per_fold;
    let (mut yt, mut yp) = (Vec::new(), Vec::new());
    for _ in 0..n * 19 {
        let t = 1.0 / 7.0 + (6.0 / 7.0) * rng.uniform_f64();
        let noise = (rng.uniform_f64() - 0.5) * 0.45;
        yt.push(t as f32);
        yp.push((0.55 + 0.8 * (t - 0.55) + noise) as f32);
    }
    (yt, yp, (0..n).map(|i| i % 4).collect())
}

#[test]
fn bootstrap_ci_brackets_estimate_on_realistic_data() {
    let (yt, yp, folds) = realistic(150, 3);
    let ev = evaluate(&yt, &yp, 19, &folds, None, &BootstrapConfig::default()).unwrap();
    let ci = &ev.r2_ci;
    assert_eq!(ci.resamples_used, 1000);
    assert_eq!(ci.resamples_undefined, 0);
    assert!(ci.contains_estimate(), "{ci:?}");
    assert!(ev.r2 > 0.3 && ev.r2 < 0.8, "R² {}", ev.r2);
    // With 600 clips the 95% interval is a few hundredths wide, not zero.
    let width = ci.hi - ci.lo;
    assert!(width > 0.01 && width < 0.1, "width {width}");
}

#[test]
fn bootstrap_is_seeded_and_thread_count_independent() {
    let (yt, yp, folds) = realistic(40, 5);
    let oof = OutOfFold::new(&yt, &yp, 19).unwrap();
    let rows = rows_by_fold(&folds).unwrap();
    let cfg = BootstrapConfig {
        resamples: 100,
        ..Default::default()
    };
    let run = |threads: usize, seed: u64| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let cfg = BootstrapConfig {
            seed,
            ..cfg.clone()
        };
        pool.install(|| bootstrap_ci(&rows, &cfg, |r| oof.fold_mean_r2(r)).unwrap())
    };
    let a = run(1, 42);
    let b = run(2, 42);
    assert_eq!(a.lo.to_bits(), b.lo.to_bits());
    assert_eq!(a.hi.to_bits(), b.hi.to_bits());
    let c = run(2, 43);
    assert_ne!(a.lo.to_bits(), c.lo.to_bits());
}

#[test]
fn bootstrap_resamples_within_folds_keeping_sizes() {
    let folds = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2];
    let rows = rows_by_fold(&folds).unwrap();
    let cfg = BootstrapConfig {
        resamples: 300,
        ..Default::default()
    };
    // Undefined (dropped) if any resampled fold has the wrong size or a row
    // from another fold; otherwise the mean row index, which varies.
    let ci = bootstrap_ci(&rows, &cfg, |rs| {
        let ok = rs.len() == 3
            && rs
                .iter()
                .enumerate()
                .all(|(f, r)| r.len() == rows[f].len() && r.iter().all(|&i| folds[i] == f));
        ok.then(|| rs.iter().flatten().sum::<usize>() as f64 / 10.0)
    })
    .unwrap();
    assert_eq!(ci.resamples_undefined, 0);
    assert!(ci.lo < ci.estimate && ci.estimate < ci.hi, "{ci:?}");
}

#[test]
fn bootstrap_drops_and_counts_undefined_resamples() {
    // One fold of 3 clips with true values [a, a, b] in the only dimension:
    // a resample is constant with probability (2/3)³ + (1/3)³ = 1/3.
    let yt = [0.2f32, 0.2, 0.8];
    let yp = [0.3f32, 0.1, 0.7];
    let oof = OutOfFold::new(&yt, &yp, 1).unwrap();
    let rows = vec![vec![0, 1, 2]];
    let cfg = BootstrapConfig {
        resamples: 3000,
        ..Default::default()
    };
    let ci = bootstrap_ci(&rows, &cfg, |r| oof.fold_mean_r2(r)).unwrap();
    assert_eq!(ci.resamples_used + ci.resamples_undefined, 3000);
    // 5 sigma of Binomial(3000, 1/3) is about 129.
    assert!((ci.resamples_undefined as i64 - 1000).abs() < 130, "{ci:?}");
}

#[test]
fn bootstrap_config_toml_defaults_and_unknown_keys() {
    let c: BootstrapConfig = toml::from_str("resamples = 2000\n").unwrap();
    assert_eq!((c.resamples, c.level, c.seed), (2000, 0.95, 42));
    let e = toml::from_str::<BootstrapConfig>("samples = 10\n").unwrap_err();
    assert!(e.to_string().contains("samples"), "{e}");
}

#[test]
fn percentile_ci_can_exclude_a_biased_estimate() {
    // Share of distinct clips: 1 on the data, about 1 - 1/e ≈ 0.63 on a
    // resample. The percentile interval then lies entirely below the
    // estimate, and `contains_estimate` says so instead of hiding it.
    let rows = vec![(0..50).collect::<Vec<usize>>()];
    let cfg = BootstrapConfig {
        resamples: 200,
        ..Default::default()
    };
    let ci = bootstrap_ci(&rows, &cfg, |rs| {
        let distinct: std::collections::BTreeSet<_> = rs[0].iter().collect();
        Some(distinct.len() as f64 / rs[0].len() as f64)
    })
    .unwrap();
    assert_eq!(ci.estimate, 1.0);
    assert!(ci.hi < 0.8 && ci.lo > 0.45, "{ci:?}");
    assert!(!ci.contains_estimate());
}

#[test]
fn cluster_bootstrap_takes_whole_clusters_within_folds() {
    // Two folds; clusters {0,1,2} {3} in fold 0, {4,5} {6,7,8} in fold 1.
    let cluster = [0, 0, 0, 1, 2, 2, 3, 3, 3];
    let folds = [0, 0, 0, 0, 1, 1, 1, 1, 1];
    let grouped = clusters_by_fold(&rows_by_fold(&folds).unwrap(), &cluster);
    assert_eq!(
        grouped,
        [
            vec![vec![0, 1, 2], vec![3]],
            vec![vec![4, 5], vec![6, 7, 8]]
        ]
    );
    let cfg = BootstrapConfig {
        resamples: 400,
        ..Default::default()
    };
    // Undefined (dropped) unless every resampled fold is a multiset of whole
    // clusters of that fold, as many as it has; else the number of rows.
    let whole = |fold: &[usize], f: usize| {
        let mut rest = fold.to_vec();
        let mut drawn = 0;
        while let Some(&r) = rest.first() {
            let c = grouped[f].iter().find(|c| c.contains(&r))?;
            for x in c {
                let i = rest.iter().position(|y| y == x)?;
                rest.remove(i);
            }
            drawn += 1;
        }
        (drawn == grouped[f].len()).then_some(())
    };
    let ci = cluster_bootstrap_ci(&grouped, &cfg, |rs| {
        for (f, r) in rs.iter().enumerate() {
            whole(r, f)?;
        }
        Some(rs.iter().map(Vec::len).sum::<usize>() as f64)
    })
    .unwrap();
    assert_eq!(ci.resamples_undefined, 0);
    assert_eq!(ci.estimate, 9.0);
    // Fold sizes vary with the clusters drawn: 2..6 + 4..6 rows.
    assert!(ci.lo < 9.0 && ci.hi > 9.0, "{ci:?}");
}

/// Clustered out-of-fold data with a known answer: 4 folds of 12 clusters of
/// 6 clips; truth y = u_cluster + e_clip, prediction = y + v_cluster + w_clip
/// (variances 1, 1, 0.6, 0.2), one dimension. The prediction errors of a
/// cluster's clips move together, as a segment group's performances do.
fn clustered(seed: u64) -> (Vec<f32>, Vec<f32>, Vec<usize>, Vec<usize>) {
    let mut rng = Rng::new(seed, 7);
    let mut normal = move || {
        // Box-Muller on two uniforms in (0, 1].
        let (a, b) = (1.0 - rng.uniform_f64(), rng.uniform_f64());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    };
    let (mut yt, mut yp, mut folds, mut cluster) = (vec![], vec![], vec![], vec![]);
    for c in 0..48 {
        let (u, v) = (normal(), 0.6f64.sqrt() * normal());
        for _ in 0..6 {
            let y = u + normal();
            yt.push(y as f32);
            yp.push((y + v + 0.2f64.sqrt() * normal()) as f32);
            folds.push(c % 4);
            cluster.push(c);
        }
    }
    (yt, yp, folds, cluster)
}

/// The statistic's expected value under a design (labels, predictions and
/// folds of seed s), from 2,000 fresh draws: the target a CI should cover.
fn expected_r2(draw: impl Fn(u64) -> (Vec<f32>, Vec<f32>, Vec<usize>)) -> f64 {
    let stat = |s: u64| {
        let (yt, yp, folds) = draw(s);
        let oof = OutOfFold::new(&yt, &yp, 1).unwrap();
        oof.fold_mean_r2(&rows_by_fold(&folds).unwrap()).unwrap()
    };
    (10_000..12_000).map(stat).sum::<f64>() / 2000.0
}

#[test]
fn clustered_ci_covers_where_the_clip_bootstrap_does_not() {
    // The target: the statistic's expected value, from 2,000 fresh draws
    // (the interval is about sampling variability, not the small bias of a
    // fold's R² around its own mean).
    let truth = expected_r2(|s| {
        let (yt, yp, folds, _) = clustered(s);
        (yt, yp, folds)
    });
    let cfg = BootstrapConfig {
        resamples: 400,
        ..Default::default()
    };
    let (mut clip_hits, mut cluster_hits, mut widths) = (0, 0, (0.0, 0.0));
    let replicates = 200;
    for s in 0..replicates {
        let (yt, yp, folds, cluster) = clustered(s);
        let clusters = Clusters {
            of_clip: &cluster,
            crossed: None,
            unit: "cluster",
        };
        let ev = evaluate(&yt, &yp, 1, &folds, Some(clusters), &cfg).unwrap();
        let clip = ev.clip_r2_ci.as_ref().unwrap();
        assert_eq!(
            (ev.ci_unit.as_deref(), ev.n_clusters),
            (Some("cluster"), Some(48))
        );
        clip_hits += usize::from(clip.lo <= truth && truth <= clip.hi);
        cluster_hits += usize::from(ev.r2_ci.lo <= truth && truth <= ev.r2_ci.hi);
        widths.0 += clip.hi - clip.lo;
        widths.1 += ev.r2_ci.hi - ev.r2_ci.lo;
    }
    let (clip, clustered) = (
        clip_hits as f64 / replicates as f64,
        cluster_hits as f64 / replicates as f64,
    );
    eprintln!(
        "95% CI coverage of R² = {truth:.3} over {replicates} replicates: clip bootstrap {clip:.3} \
         (mean width {:.3}), cluster bootstrap {clustered:.3} (mean width {:.3})",
        widths.0 / replicates as f64,
        widths.1 / replicates as f64
    );
    // Binomial(200, 0.95) has sd 0.015: 0.90 is over 3 sd below nominal.
    assert!(clustered >= 0.90, "cluster bootstrap covers {clustered}");
    assert!(
        clip <= 0.85,
        "clip bootstrap covers {clip}: the data are not clustered enough"
    );
    assert!(widths.1 > 1.3 * widths.0, "{widths:?}");
}

#[test]
fn a_paired_difference_has_the_sign_and_interval_it_was_built_with() {
    let (yt, good, folds, cluster) = clustered(3);
    // A worse predictor: the same predictions plus clip noise of variance 0.5.
    let mut rng = Rng::new(9, 1);
    let worse: Vec<f32> = good
        .iter()
        .map(|p| p + (rng.uniform_f32() - 0.5) * 2.45)
        .collect();
    let a = OutOfFold::new(&yt, &good, 1).unwrap();
    let b = OutOfFold::new(&yt, &worse, 1).unwrap();
    let grouped = clusters_by_fold(&rows_by_fold(&folds).unwrap(), &cluster);
    let cfg = BootstrapConfig::default();
    let ra = |r: &[Vec<usize>]| a.fold_mean_r2(r);
    let rb = |r: &[Vec<usize>]| b.fold_mean_r2(r);
    let d = paired_delta_ci(&Resampling::clusters(grouped.clone()), &cfg, ra, rb).unwrap();
    let rows = rows_by_fold(&folds).unwrap();
    let exact = a.fold_mean_r2(&rows).unwrap() - b.fold_mean_r2(&rows).unwrap();
    assert_eq!(d.estimate, exact);
    // Added noise of variance 0.5 against labels of variance ~2: ΔR² near 0.25, all positive.
    assert!(d.estimate > 0.15 && d.lo > 0.0, "{d:?}");
    // Reversed, the interval is the mirror image; against itself, exactly 0.
    let r = paired_delta_ci(&Resampling::clusters(grouped.clone()), &cfg, rb, ra).unwrap();
    assert_eq!((r.lo, r.hi), (-d.hi, -d.lo));
    let same = paired_delta_ci(&Resampling::clusters(grouped.clone()), &cfg, ra, ra).unwrap();
    assert_eq!((same.lo, same.estimate, same.hi), (0.0, 0.0, 0.0));
    // Pairing: what the two share cancels, so the difference's interval is
    // narrower than the better predictor's own (unpaired, it would be wider).
    let alone = cluster_bootstrap_ci(&grouped, &cfg, ra).unwrap();
    assert!(
        d.hi - d.lo < 0.8 * (alone.hi - alone.lo),
        "{d:?} vs {alone:?}"
    );
}

/// Crossed clusters: 24 pieces (6 per fold) × 12 performers, one clip per
/// pair. Labels share a piece effect and a performer effect; so do the
/// errors (a model off on a piece, or on a player, is off on all its clips),
/// and performers cross the folds.
/// Labels, predictions, folds, pieces, performers.
type Crossed = (Vec<f32>, Vec<f32>, Vec<usize>, Vec<usize>, Vec<usize>);

fn crossed(seed: u64) -> Crossed {
    let mut rng = Rng::new(seed, 1);
    let mut normal = move || {
        let (a, b) = (1.0 - rng.uniform_f64(), rng.uniform_f64());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    };
    let perf: Vec<(f64, f64)> = (0..12)
        .map(|_| (normal(), 0.5f64.sqrt() * normal()))
        .collect();
    let (mut yt, mut yp, mut folds, mut piece, mut performer) =
        (vec![], vec![], vec![], vec![], vec![]);
    for p in 0..24 {
        let (u, v) = (normal(), 0.5f64.sqrt() * normal());
        for (q, &(w, z)) in perf.iter().enumerate() {
            let y = u + w + normal();
            yt.push(y as f32);
            yp.push((y + v + z + 0.3f64.sqrt() * normal()) as f32);
            folds.push(p % 4);
            piece.push(p);
            performer.push(q);
        }
    }
    (yt, yp, folds, piece, performer)
}

/// The pigeonhole bootstrap (pieces within folds × performers) covers the
/// crossed design's R² near the nominal 95 %; resampling pieces alone
/// misses the performers' shared errors and under-covers.
#[test]
fn crossed_ci_covers_where_resampling_one_way_does_not() {
    let truth = expected_r2(|s| {
        let (yt, yp, folds, _, _) = crossed(s);
        (yt, yp, folds)
    });
    let cfg = BootstrapConfig {
        resamples: 400,
        ..Default::default()
    };
    let (mut one_way, mut two_way) = (0, 0);
    let replicates = 200;
    for s in 0..replicates {
        let (yt, yp, folds, piece, performer) = crossed(s);
        let ci = |crossed: Option<&[usize]>| {
            let clusters = Clusters {
                of_clip: &piece,
                crossed,
                unit: "piece",
            };
            evaluate(&yt, &yp, 1, &folds, Some(clusters), &cfg)
                .unwrap()
                .r2_ci
        };
        let (a, b) = (ci(None), ci(Some(&performer)));
        one_way += usize::from(a.lo <= truth && truth <= a.hi);
        two_way += usize::from(b.lo <= truth && truth <= b.hi);
    }
    let (a, b) = (
        one_way as f64 / replicates as f64,
        two_way as f64 / replicates as f64,
    );
    eprintln!(
        "crossed design, R² = {truth:.3}: pieces only cover {a:.3}, pieces x performers {b:.3}"
    );
    assert!(b >= 0.9, "pigeonhole coverage {b}");
    assert!(a <= b - 0.1, "pieces only {a} vs pigeonhole {b}");
}

/// A crossed resample takes each row (times its cluster was drawn) ×
/// (times its crossed cluster was drawn); without `crossed`, whole clusters.
#[test]
fn a_crossed_resample_multiplies_the_two_draw_counts() {
    // One fold, one cluster holding rows 0..6; rows 2k and 2k+1 share crossed cluster k.
    let crossed = [0, 0, 1, 1, 2, 2];
    let r = Resampling {
        fold_clusters: vec![vec![(0..6).collect()]],
        crossed: Some(&crossed),
    };
    for b in 0..20 {
        let rows = &r.draw(7, b)[0];
        let mut count = [0usize; 6];
        for &x in rows {
            count[x] += 1;
        }
        // The cluster is always drawn once; rows of a crossed cluster come together.
        assert_eq!(rows.len(), 6, "3 crossed draws of 2 rows each");
        for k in 0..3 {
            assert_eq!(count[2 * k], count[2 * k + 1]);
        }
    }
    let plain = Resampling::clusters(vec![vec![vec![0, 1], vec![2, 3, 4]]]);
    // Two draws of the clusters of 2 and 3 rows: 4, 5 or 6 rows, whole clusters.
    for b in 0..20 {
        let rows = &plain.draw(7, b)[0];
        assert!([4, 5, 6].contains(&rows.len()), "{rows:?}");
        let twos = rows.iter().filter(|&&x| x < 2).count();
        assert!(
            twos.is_multiple_of(2) && (rows.len() - twos).is_multiple_of(3),
            "{rows:?}"
        );
    }
}

/// Pairwise accuracy by hand: dimension 0 has 4 pairs that differ by more
/// than their standard error (0.05·√2 ≈ 0.071), ordered right, wrong, right
/// and tied; dimension 1 has none.
#[test]
fn pairwise_accuracy_counts_only_real_differences_within_groups() {
    // Clips 0-2 in group 0, 3-4 in group 1, 5-6 in group 2; clip 7 alone.
    let group = [0, 0, 0, 1, 1, 2, 2, 3];
    let y0 = [0.2f32, 0.5, 0.9, 0.5, 0.52, 0.4, 0.7, 0.1];
    let p0 = [0.3f32, 0.2, 0.8, 0.9, 0.1, 0.5, 0.5, 0.9];
    let (mut yt, mut yp) = (Vec::new(), Vec::new());
    for i in 0..8 {
        // Dimension 1: every label 0.5 ± 0.01, within the raters' noise.
        yt.extend([y0[i], 0.5 + 0.01 * (i % 2) as f32]);
        yp.extend([p0[i], i as f32 / 8.0]);
    }
    let se = vec![0.05f32; 16];
    let oof = OutOfFold::new(&yt, &yp, 2).unwrap();
    let acc = pairwise_accuracy(&oof, &group, &se).unwrap();
    // Group 0: (0,1) wrong, (0,2) right, (1,2) right; group 1: 0.02 apart, not
    // counted; group 2: a tie in the predictions, half. 2.5 of 4.
    assert_eq!(acc.n_pairs, [4, 0]);
    assert_eq!(acc.per_dim, [Some(0.625), None]);
    assert_eq!(acc.mean, Some(0.625));
    // Perfect predictions get every counted pair right; reversed ones none.
    let perfect = OutOfFold::new(&yt, &yt, 2).unwrap();
    assert_eq!(
        pairwise_accuracy(&perfect, &group, &se).unwrap().mean,
        Some(1.0)
    );
    let reversed: Vec<f32> = yt.iter().map(|y| -y).collect();
    let rev = OutOfFold::new(&yt, &reversed, 2).unwrap();
    assert_eq!(
        pairwise_accuracy(&rev, &group, &se).unwrap().mean,
        Some(0.0)
    );
}

/// Mean and sample sd over seeds, by hand: R² 0.1, 0.2, 0.3 → mean 0.2,
/// sd √((0.01 + 0 + 0.01) / 2) = 0.1; one seed or an undefined R²: none.
#[test]
fn seed_r2_mean_and_sample_sd() {
    let mut ev = evaluate(
        &[0.1, 0.9, 0.2, 0.8],
        &[0.2, 0.7, 0.3, 0.9],
        1,
        &[0, 0, 1, 1],
        None,
        &BootstrapConfig::default(),
    )
    .unwrap();
    assert_eq!(ev.seed_r2_mean_sd(), None);
    let seed = |seed, r2| SeedR2 { seed, r2 };
    ev.seed_r2 = vec![
        seed(42, Some(0.1)),
        seed(43, Some(0.2)),
        seed(44, Some(0.3)),
    ];
    let (mean, sd) = ev.seed_r2_mean_sd().unwrap();
    assert!(
        (mean - 0.2).abs() < 1e-12 && (sd - 0.1).abs() < 1e-12,
        "{mean} {sd}"
    );
    ev.seed_r2.truncate(1);
    assert_eq!(ev.seed_r2_mean_sd(), None);
    ev.seed_r2 = vec![seed(42, Some(0.1)), seed(43, None)];
    assert_eq!(ev.seed_r2_mean_sd(), None);
}
