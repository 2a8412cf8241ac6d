//! The shipped PercePiano data: counts, labels, folds, and errors on broken copies.

use pipe::dataset::Dataset;
use pipe::dataset::{DatasetConfig, FoldConfig, FoldStrategy};
use pipe::dims::N_DIMS;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/percepiano")
}

fn cfg(labels: &Path, metadata: &Path, midi: &Path, folds: FoldConfig) -> DatasetConfig {
    DatasetConfig::Percepiano {
        labels: labels.into(),
        metadata: metadata.into(),
        midi_dir: midi.into(),
        folds,
        limit: None,
    }
}

fn shipped(folds: FoldConfig) -> Dataset {
    let d = data();
    Dataset::load(&cfg(
        &d.join("labels/label_2round_mean_reg_19_with0_rm_highstd0.json"),
        &d.join("manifest.csv"),
        &d.join("midi/performance"),
        folds,
    ))
    .unwrap()
}

#[test]
fn shipped_dataset_has_1202_clips_in_balanced_piece_folds() {
    let ds = shipped(FoldConfig::default());
    assert_eq!(ds.clips.len(), 1202);
    assert_eq!(
        ds.clips.iter().filter(|c| c.is_rendering).count(),
        129,
        "Score/Score2 renderings"
    );
    let pieces: HashSet<&str> = ds.clips.iter().map(|c| c.piece.as_str()).collect();
    assert_eq!(pieces.len(), 99, "distinct score excerpts");
    // Labels are means of 1..7 ratings / 7.
    for c in &ds.clips {
        assert!(
            c.labels
                .iter()
                .all(|&v| (1.0 / 7.0 - 1e-9..=1.0).contains(&v)),
            "{}",
            c.id
        );
    }
    let first = ds
        .clips
        .iter()
        .find(|c| c.id == "Beethoven_WoO80_thema_8bars_11_1")
        .unwrap();
    assert!(
        (first.labels[0] - 0.628571).abs() < 1e-6,
        "timing of the first manifest row"
    );
    assert!(
        (first.labels[N_DIMS - 1] - 0.428571).abs() < 1e-6,
        "interpretation"
    );
    // No piece in two folds; fold sizes within a few clips of 1202/4.
    let mut fold_of: HashMap<&str, u32> = HashMap::new();
    let mut sizes = [0usize; 4];
    for c in &ds.clips {
        let f = c.fold.unwrap();
        assert_eq!(
            *fold_of.entry(&c.piece).or_insert(f),
            f,
            "piece {} split across folds",
            c.piece
        );
        sizes[f as usize] += 1;
    }
    assert!(sizes.iter().all(|&s| (296..=306).contains(&s)), "{sizes:?}");
}

#[test]
fn performer_split_matches_percepiano_sizes() {
    let folds = FoldConfig {
        strategy: FoldStrategy::Performer,
        performer_split: Some(data().join("splits/performer4fold.json")),
        ..Default::default()
    };
    let ds = shipped(folds);
    let mut sizes = [0usize; 4];
    for c in &ds.clips {
        if let Some(f) = c.fold {
            sizes[f as usize] += 1;
        }
    }
    // Validation sizes of the paper's performer folds (834/175, 834/175, 847/162, 834/175).
    assert_eq!(sizes, [175, 175, 162, 175]);
    assert!(
        ds.table_files
            .iter()
            .any(|p| p.ends_with("performer4fold.json"))
    );
    // Beside piece folds (the shipped pipeline's): the same published
    // folds as `published_fold`, the piece folds untouched.
    let beside = shipped(FoldConfig {
        performer_split: Some(data().join("splits/performer4fold.json")),
        ..Default::default()
    });
    let plain = shipped(FoldConfig::default());
    for ((b, p), s) in beside.clips.iter().zip(&plain.clips).zip(&ds.clips) {
        assert_eq!((b.fold, b.published_fold), (p.fold, s.fold), "{}", b.id);
    }
    let published: Vec<_> = beside
        .clips
        .iter()
        .filter_map(|c| c.published_fold)
        .collect();
    assert_eq!(published.len(), 175 + 175 + 162 + 175);
}

#[test]
fn missing_midi_and_missing_labels_are_named() {
    let d = data();
    let dir = tempfile::tempdir().unwrap();
    let midi = dir.path().join("midi");
    std::fs::create_dir_all(&midi).unwrap();
    let labels = dir.path().join("labels.json");
    std::fs::write(&labels, r#"{"Beethoven_WoO80_thema_8bars_11_1": [0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,3]}"#).unwrap();
    let meta_text = std::fs::read_to_string(d.join("manifest.csv")).unwrap();
    let meta = dir.path().join("manifest.csv");
    // Metadata for exactly the labelled clip: its MIDI file is missing.
    std::fs::write(
        &meta,
        meta_text.lines().take(2).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        Dataset::load(&cfg(&labels, &meta, &midi, FoldConfig::default())).unwrap_err()
    );
    assert!(
        err.contains("Beethoven_WoO80_thema_8bars_11_1.mid"),
        "{err}"
    );

    // A metadata row whose clip has no labels.
    std::fs::write(
        &meta,
        meta_text.lines().take(3).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        Dataset::load(&cfg(&labels, &meta, &midi, FoldConfig::default())).unwrap_err()
    );
    assert!(
        err.contains("Beethoven_WoO80_thema_8bars_14_1") && err.contains("has no labels"),
        "{err}"
    );

    // A label out of range says which clip and dimension.
    std::fs::write(
        &labels,
        r#"{"x": [0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,7,0.5,0.5,0.5,0.5,0.5,0.5,0.5,3]}"#,
    )
    .unwrap();
    let err = format!(
        "{:#}",
        Dataset::load(&cfg(&labels, &meta, &midi, FoldConfig::default())).unwrap_err()
    );
    assert!(err.contains("clip x label pace = 7"), "{err}");
}

fn shipped_limited(limit: usize, k: usize) -> anyhow::Result<Dataset> {
    let d = data();
    let mut c = cfg(
        &d.join("labels/label_2round_mean_reg_19_with0_rm_highstd0.json"),
        &d.join("manifest.csv"),
        &d.join("midi/performance"),
        FoldConfig {
            k,
            ..FoldConfig::default()
        },
    );
    if let DatasetConfig::Percepiano { limit: l, .. } = &mut c {
        *l = Some(limit);
    }
    Dataset::load(&c)
}

/// `limit = 40` took the first 40 ids, 3 pieces, so a 4-fold run silently
/// became 3 folds; `limit = 20` gave 2 pieces and every experiment failed.
/// Now the clips are spread over the pieces (seeded).
#[test]
fn limit_spreads_over_pieces_so_a_quick_trial_has_its_k_folds() {
    for limit in [20, 40, 150] {
        let ds = shipped_limited(limit, 4).unwrap();
        assert_eq!(ds.clips.len(), limit);
        let pieces: HashSet<&str> = ds.clips.iter().map(|c| c.piece.as_str()).collect();
        assert_eq!(pieces.len(), limit.min(99), "limit {limit}");
        let folds: HashSet<u32> = ds.clips.iter().filter_map(|c| c.fold).collect();
        assert_eq!(folds.len(), 4, "limit {limit}");
        ds.check_trainable().unwrap();
    }
    let a: Vec<String> = shipped_limited(40, 4)
        .unwrap()
        .clips
        .into_iter()
        .map(|c| c.id)
        .collect();
    let b: Vec<String> = shipped_limited(40, 4)
        .unwrap()
        .clips
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(a, b, "deterministic");
}

/// k = 10 with 6 pieces silently gave 6 folds.
#[test]
fn more_folds_than_pieces_is_an_error_naming_the_pieces() {
    let err = format!("{:#}", shipped_limited(3, 4).unwrap_err());
    assert!(
        err.contains("dataset.folds.k = 4")
            && err.contains("3 piece(s)")
            && err.contains("dataset.limit = 3"),
        "{err}"
    );
    let err = format!("{:#}", shipped_limited(1202, 100).unwrap_err());
    assert!(err.contains("99 piece(s)"), "{err}");
}

/// midly's strict mode and the end-of-track check accept every shipped file
/// (the checks that refuse a file cut short must not refuse a whole one).
#[test]
fn every_shipped_midi_file_reads_whole() {
    let mut n = 0;
    for e in std::fs::read_dir(data().join("midi/performance"))
        .unwrap()
        .flatten()
    {
        let end = pipe::audio::render::midi_end_seconds(&e.path())
            .unwrap_or_else(|err| panic!("{err:#}"));
        assert!(end > 1.0 && end < 600.0, "{}: {end}", e.path().display());
        n += 1;
    }
    assert_eq!(n, 1202);
}
