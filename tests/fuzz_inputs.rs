//! Property tests over every reader of user input, on mutated copies of valid
//! files (proptest, fixed seed, so CI runs the same cases every time):
//! audio decode (WAV, FLAC, MP3, OGG), the MIDI reader, the labels CSV and
//! JSON readers, `pipeline.toml` loading, a weights folder's `config.json`
//! and the safetensors loader (whole file and header-only).
//!
//! The properties: no panic (a panic fails the case), no abort (it would end
//! the test binary), every error names its input (the file path, or the label
//! a buffer was given), and what is accepted is sane (finite samples within
//! the decoder's bound, a finite MIDI end, weights that are finite).
//!
//! `PIPE_FUZZ_CASES` sets the cases per target (default 2,500: 22,500 in
//! all, under a minute on CI's 2 cores).

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> u32 {
    std::env::var("PIPE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2500)
}

/// A runner with a fixed seed and no failure files: CI runs the same cases.
fn runner(salt: u64, cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5EED_0016 ^ salt),
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    })
}

/// One edit of a byte string; positions are fractions of its length.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    /// A boundary value (0, max, sign bit ...) over 1, 2, 4 or 8 bytes.
    Interesting(Index, u8, u8),
    Truncate(Index),
    Remove(Index, u8),
    Insert(Index, Vec<u8>),
    /// Copy a span elsewhere (repeats chunks, headers).
    Duplicate(Index, u8, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        (any::<Index>(), 0u8..4, 0u8..6).prop_map(|(i, w, v)| Edit::Interesting(i, w, v)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), any::<u8>(), any::<Index>())
            .prop_map(|(a, n, b)| Edit::Duplicate(a, n, b)),
    ]
}

/// `focus`: edits land in the first `focus` bytes (a header) when given.
fn apply(bytes: &[u8], edits: &[Edit], focus: Option<usize>) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for e in edits {
        if b.is_empty() {
            break;
        }
        let span = focus.map_or(b.len(), |f| f.min(b.len()));
        let at = |i: &Index| i.index(span);
        match e {
            Edit::Flip(i, bit) => {
                let p = at(i);
                b[p] ^= 1 << bit;
            }
            Edit::Set(i, v) => {
                let p = at(i);
                b[p] = *v;
            }
            Edit::Interesting(i, w, v) => {
                let width = 1usize << w;
                let value: u64 =
                    [0, u64::MAX, 0x7F, 0x80, 0x7FFF_FFFF, 0x8000_0000_0000_0000][*v as usize];
                let p = at(i);
                for (k, byte) in value.to_le_bytes().iter().take(width).enumerate() {
                    if let Some(slot) = b.get_mut(p + k) {
                        *slot = *byte;
                    }
                }
            }
            Edit::Truncate(i) => {
                let p = i.index(b.len());
                b.truncate(p);
            }
            Edit::Remove(i, n) => {
                let p = at(i);
                let end = (p + *n as usize).min(b.len());
                b.drain(p..end);
            }
            Edit::Insert(i, bytes) => {
                let p = at(i);
                b.splice(p..p, bytes.iter().copied());
            }
            Edit::Duplicate(from, n, to) => {
                let p = at(from);
                let chunk: Vec<u8> = b[p..(p + *n as usize).min(b.len())].to_vec();
                let q = at(to);
                b.splice(q..q, chunk);
            }
        }
    }
    b
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..6)
}

/// One edit of a text file, line-wise: what a person (or a hostile one) does
/// to a config or a table.
#[derive(Clone, Debug)]
enum TextEdit {
    DeleteLine(Index),
    DuplicateLine(Index),
    /// Replace the value after the first `=` or `,` at a given place with one of [`VALUES`].
    Value(Index, Index),
    InsertLine(Index, Index),
    Bytes(Vec<Edit>),
}

const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "4000000000",
    "18446744073709551616",
    "1e309",
    "-1e30",
    "nan",
    "inf",
    "0.5",
    "1.7",
    "\"\"",
    "\"four\"",
    "\"7-13\"",
    "\"all\"",
    "[]",
    "{}",
    "true",
    "\"/dev/null\"",
    "\"/\"",
    "\"\u{e9}\u{1F3B9}\"",
];

const LINES: &[&str] = &[
    "[dataset.folds]",
    "k = 100",
    "[encoders.x]",
    "arch = \"muq\"",
    "window_frames = 0",
    "[features.f]",
    "encoder = \"mert_control\"",
    "layers = \"7-13\"",
    "max_frames = 0",
    "[resample]",
    "sample_rate = 4000000000",
    "limit = 0",
    "lables = \"x\"",
    "[experiments.E]",
    "features = \"raw_stats\"",
    "head = { hidden = 0 }",
    "a,b,c",
    "x,p,0.5",
    ",,,,,,,,,,,,,,,,,,,,,,",
    "\"unterminated,",
];

fn text_edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        any::<Index>().prop_map(TextEdit::DeleteLine),
        any::<Index>().prop_map(TextEdit::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(l, v)| TextEdit::Value(l, v)),
        (any::<Index>(), any::<Index>()).prop_map(|(l, v)| TextEdit::InsertLine(l, v)),
        prop::collection::vec(edit(), 1..3).prop_map(TextEdit::Bytes),
    ]
}

fn apply_text(text: &str, edits: &[TextEdit]) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut bytes = None;
    for e in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        match e {
            TextEdit::DeleteLine(i) => {
                lines.remove(i.index(lines.len()));
            }
            TextEdit::DuplicateLine(i) => {
                let l = lines[i.index(lines.len())].clone();
                lines.insert(i.index(lines.len()), l);
            }
            TextEdit::Value(i, v) => {
                let at = i.index(lines.len());
                let l = &mut lines[at];
                let value = VALUES[v.index(VALUES.len())];
                if let Some(p) = l.find('=') {
                    *l = format!("{}= {value}", &l[..p]);
                } else if let Some(p) = l.rfind(',') {
                    *l = format!("{},{value}", &l[..p]);
                }
            }
            TextEdit::InsertLine(i, v) => {
                let at = i.index(lines.len() + 1);
                lines.insert(at, LINES[v.index(LINES.len())].to_string());
            }
            TextEdit::Bytes(b) => bytes = Some(b.clone()),
        }
    }
    let joined = lines.join("\n") + "\n";
    match bytes {
        Some(b) => apply(joined.as_bytes(), &b, None),
        None => joined.into_bytes(),
    }
}

fn text_edits() -> impl Strategy<Value = Vec<TextEdit>> {
    prop::collection::vec(text_edit(), 1..5)
}

/// Fails the case unless `err` names `what` (a path or a label).
fn names(err: &anyhow::Error, what: &str) -> Result<(), TestCaseError> {
    let msg = format!("{err:#}");
    if msg.contains("crashed") {
        CONTAINED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    prop_assert!(msg.contains(what), "error does not name {what}: {msg}");
    Ok(())
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(repo().join(path)).unwrap()
}

/// Errors that are a dependency's panic turned into the file's error
/// (`decode_file` and the MIDI reader contain symphonia's and midly's).
static CONTAINED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The run's counter of cases, printed at the end of each target.
fn report(target: &str, cases: u32, rejected: usize) {
    eprintln!(
        "fuzz {target}: {cases} cases, {rejected} rejected with a named error, 0 panics \
         (dependency panics contained as errors so far: {})",
        CONTAINED.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn decoding_mutated_audio_never_panics_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<(&str, Vec<u8>)> = [
        "sine_s16_mono.wav",
        "sine_f32_stereo.wav",
        "sine_u8_mono.wav",
        "sine_mono.flac",
        "sine_stereo.flac",
        "sine_mono.mp3",
        "sine_stereo.ogg",
    ]
    .iter()
    .map(|f| (*f, read(&format!("tests/fixtures/audio/{f}"))))
    .collect();
    let n = cases() * 2;
    let rejected = std::cell::Cell::new(0usize);
    let case = std::cell::Cell::new(0usize);
    runner(1, n)
        .run(
            &(any::<Index>(), edits(), any::<bool>()),
            |(which, edits, header)| {
                let (name, seed) = &seeds[which.index(seeds.len())];
                let bytes = apply(seed, &edits, header.then_some(64));
                case.set(case.get() + 1);
                let path = dir.path().join(format!("case{}_{name}", case.get()));
                std::fs::write(&path, &bytes).unwrap();
                match pipe::audio::decode_file(&path) {
                    Ok(pcm) => {
                        prop_assert!(pcm.sample_rate > 0);
                        prop_assert!(!pcm.samples.is_empty());
                        prop_assert!(
                            pcm.samples
                                .iter()
                                .all(|s| s.abs() <= pipe::audio::decode::MAX_ABS_SAMPLE)
                        );
                    }
                    Err(e) => {
                        rejected.set(rejected.get() + 1);
                        names(&e, &path.display().to_string())?;
                    }
                }
                std::fs::remove_file(&path).unwrap();
                Ok(())
            },
        )
        .unwrap();
    report("audio decode (wav/flac/mp3/ogg)", n, rejected.get());
}

#[test]
fn reading_mutated_midi_never_panics_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let seed = read("tests/fixtures/audio/d960_mv3_8bars_10_34.mid");
    let n = cases();
    let rejected = std::cell::Cell::new(0usize);
    runner(2, n)
        .run(&edits(), |edits| {
            let path = dir.path().join("case.mid");
            std::fs::write(&path, apply(&seed, &edits, None)).unwrap();
            match pipe::audio::render::midi_end_seconds(&path) {
                Ok(end) => prop_assert!(end.is_finite() && end >= 0.0, "end {end}"),
                Err(e) => {
                    rejected.set(rejected.get() + 1);
                    names(&e, "case.mid")?;
                }
            }
            Ok(())
        })
        .unwrap();
    report("MIDI reader", n, rejected.get());
}

/// A labels CSV of three clips with their audio files (the files' content
/// does not matter to the reader).
fn labels_csv() -> String {
    let dims = pipe::dims::DIMENSIONS.join(",");
    let row = |id: &str, piece: &str, v: &str| format!("{id},{piece},{}", vec![v; 19].join(","));
    format!(
        "clip_id,piece,{dims}\n{}\n{}\n{}\n",
        row("a", "p1", "0.5"),
        row("b", "p2", "0.25"),
        row("c", "p3", "0.75")
    )
}

#[test]
fn reading_mutated_label_tables_never_panics_and_names_the_file() {
    use pipe::dataset::{DatasetConfig, FoldConfig};
    let dir = tempfile::tempdir().unwrap();
    for f in ["a.wav", "b.flac", "c.mp3"] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    std::fs::create_dir(dir.path().join("d.wav")).unwrap();
    let csv = dir.path().join("labels.csv");
    let seed = labels_csv();
    let n = cases();
    let rejected = std::cell::Cell::new(0usize);
    runner(3, n)
        .run(&text_edits(), |edits| {
            std::fs::write(&csv, apply_text(&seed, &edits)).unwrap();
            let cfg = DatasetConfig::AudioFolder {
                audio_dir: dir.path().to_path_buf(),
                labels: csv.clone(),
                folds: FoldConfig {
                    k: 2,
                    ..FoldConfig::default()
                },
            };
            match pipe::dataset::Dataset::load(&cfg) {
                Ok(ds) => {
                    for c in &ds.clips {
                        prop_assert!(c.labels.iter().all(|y| y.is_finite()));
                        prop_assert!(c.source.is_file());
                    }
                }
                Err(e) => {
                    rejected.set(rejected.get() + 1);
                    // The folds error names the key instead of the file.
                    let msg = format!("{e:#}");
                    if !msg.contains("dataset.folds.k") {
                        names(&e, "labels.csv")?;
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    report("labels CSV", n, rejected.get());
}

#[test]
fn reading_mutated_percepiano_labels_never_panics_and_names_the_file() {
    use pipe::dataset::{DatasetConfig, FoldConfig};
    let dir = tempfile::tempdir().unwrap();
    let midi = dir.path().join("midi");
    std::fs::create_dir(&midi).unwrap();
    let labels = dir.path().join("labels.json");
    let meta = dir.path().join("manifest.csv");
    let row = |v: f64| format!("[{}, 3]", vec![v.to_string(); 19].join(", "));
    let json = format!(
        "{{\n\"a_1\": {},\n\"b_1\": {},\n\"c_1\": {}\n}}\n",
        row(0.5),
        row(0.25),
        row(0.75)
    );
    let csv = "segment_id,segment_group,work,performer,is_score_rendering\na_1,pa,w,1,0\nb_1,pb,w,2,0\nc_1,pc,w,Score,1\n";
    for id in ["a_1", "b_1", "c_1"] {
        std::fs::write(midi.join(format!("{id}.mid")), b"x").unwrap();
    }
    let n = cases();
    let rejected = std::cell::Cell::new(0usize);
    runner(4, n)
        .run(&(text_edits(), any::<bool>()), |(edits, on_json)| {
            let (j, c) = if on_json {
                (apply_text(&json, &edits), csv.as_bytes().to_vec())
            } else {
                (json.as_bytes().to_vec(), apply_text(csv, &edits))
            };
            std::fs::write(&labels, j).unwrap();
            std::fs::write(&meta, c).unwrap();
            let cfg = DatasetConfig::Percepiano {
                labels: labels.clone(),
                metadata: meta.clone(),
                midi_dir: midi.clone(),
                folds: FoldConfig {
                    k: 2,
                    ..FoldConfig::default()
                },
                limit: Some(2),
            };
            if let Err(e) = pipe::dataset::Dataset::load(&cfg) {
                rejected.set(rejected.get() + 1);
                let msg = format!("{e:#}");
                prop_assert!(
                    msg.contains("labels.json")
                        || msg.contains("manifest.csv")
                        || msg.contains("dataset.folds.k"),
                    "names no input: {msg}"
                );
            }
            Ok(())
        })
        .unwrap();
    report("PercePiano labels JSON + metadata CSV", n, rejected.get());
}

/// The shipped description written out as one plain file (`pipe config
/// --expand`: every include, default and matrix expanded, paths absolute),
/// so a copy loads from any folder and the fuzzer reaches every entry.
fn shipped_config() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| pipe::config::Config::expand_file(&repo().join("pipeline.toml")).unwrap())
}

#[test]
fn loading_mutated_pipeline_descriptions_never_panics_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.toml");
    let n = cases() * 2;
    let rejected = std::cell::Cell::new(0usize);
    runner(5, n)
        .run(&text_edits(), |edits| {
            std::fs::write(&path, apply_text(shipped_config(), &edits)).unwrap();
            match pipe::config::Config::load(&path) {
                Ok(cfg) => {
                    // Accepted values are within their bounds.
                    prop_assert!(pipe::bounds::SAMPLE_RATE.contains(&cfg.resample.sample_rate));
                    prop_assert!(pipe::bounds::FOLDS.contains(&cfg.dataset.folds().k));
                    for f in cfg.features.values() {
                        prop_assert!(pipe::bounds::MAX_FRAMES.contains(&f.max_frames));
                    }
                    for e in cfg.encoders.values() {
                        prop_assert!(pipe::bounds::WINDOW_FRAMES.contains(&e.window_frames()));
                    }
                }
                Err(e) => {
                    rejected.set(rejected.get() + 1);
                    names(&e, "pipeline.toml")?;
                    let msg = format!("{e:#}");
                    prop_assert!(
                        msg.contains("line ") || msg.contains("reading config"),
                        "no line: {msg}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    report("pipeline.toml", n, rejected.get());
}

/// The templates: the shipped main file and study/*.toml copied, then the
/// study's experiment matrices mutated. Every error names its file and line.
#[test]
fn loading_mutated_study_templates_never_panics_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("pipeline.toml"),
        dir.path().join("pipeline.toml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("study")).unwrap();
    for f in std::fs::read_dir(repo().join("study")).unwrap().flatten() {
        std::fs::copy(f.path(), dir.path().join("study").join(f.file_name())).unwrap();
    }
    let target = dir.path().join("study/experiments.toml");
    let original = std::fs::read_to_string(&target).unwrap();
    let n = cases();
    let rejected = std::cell::Cell::new(0usize);
    runner(6, n)
        .run(&text_edits(), |edits| {
            std::fs::write(&target, apply_text(&original, &edits)).unwrap();
            if let Err(e) = pipe::config::Config::load(&dir.path().join("pipeline.toml")) {
                rejected.set(rejected.get() + 1);
                let msg = format!("{e:#}");
                prop_assert!(
                    msg.contains("line ") || msg.contains("reading "),
                    "no line: {msg}"
                );
            }
            Ok(())
        })
        .unwrap();
    report("study/experiments.toml", n, rejected.get());
}

fn model_dir(name: &str) -> PathBuf {
    repo().join("tests/fixtures/spec").join(name)
}

#[test]
fn loading_mutated_weights_configs_never_panics_and_names_the_file() {
    use pipe::encoder::ArchConfig;
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<(PathBuf, String)> = ["mert_tiny_postln", "muq_tiny"]
        .iter()
        .map(|m| {
            let src = model_dir(m);
            (
                src.clone(),
                std::fs::read_to_string(src.join("config.json")).unwrap(),
            )
        })
        .collect();
    let n = cases();
    let rejected = std::cell::Cell::new(0usize);
    runner(6, n)
        .run(&(any::<Index>(), text_edits()), |(which, edits)| {
            let (src, text) = &seeds[which.index(seeds.len())];
            std::fs::write(dir.path().join("config.json"), apply_text(text, &edits)).unwrap();
            match ArchConfig::from_dir(dir.path()) {
                Ok(arch) => {
                    prop_assert!(pipe::bounds::WIDTH.contains(&arch.hidden_size()));
                    prop_assert!(arch.num_hidden_states() <= *pipe::bounds::DEPTH.end() + 1);
                    // The fixture's weights against the edited architecture:
                    // shape errors name the file, nothing aborts.
                    if let Err(e) = arch.check_weights(src) {
                        names(&e, "model.safetensors")?;
                    }
                }
                Err(e) => {
                    rejected.set(rejected.get() + 1);
                    names(&e, "config.json")?;
                }
            }
            Ok(())
        })
        .unwrap();
    report("weights config.json", n, rejected.get());
}

#[test]
fn loading_mutated_safetensors_never_panics_and_names_the_file() {
    use pipe::encoder::ArchConfig;
    use pipe::encoder::checkpoint::WeightStore;
    use pipe::encoder::vars::Checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let src = model_dir("mert_tiny_postln");
    let arch = ArchConfig::from_dir(&src).unwrap();
    let seed = std::fs::read(src.join("model.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let path = dir.path().join("model.safetensors");
    let n = cases();
    let rejected = std::cell::Cell::new(0usize);
    runner(7, n)
        .run(&(edits(), any::<bool>()), |(edits, in_header)| {
            let bytes = apply(&seed, &edits, in_header.then_some(header));
            std::fs::write(&path, &bytes).unwrap();
            // The header-only check (before any work) ...
            let checked =
                WeightStore::open_header(&path).and_then(|_| arch.check_weights(dir.path()));
            if let Err(e) = &checked {
                names(e, "model.safetensors")?;
            }
            // ... and the full load.
            match WeightStore::from_bytes(bytes, &path.display().to_string())
                .and_then(|s| arch.walk(&mut Checkpoint(&s)).map(|_| ()))
            {
                Ok(()) => prop_assert!(
                    checked.is_ok(),
                    "the full load accepts what the header check refused: {:#}",
                    checked.unwrap_err()
                ),
                Err(e) => {
                    rejected.set(rejected.get() + 1);
                    names(&e, "model.safetensors")?;
                }
            }
            Ok(())
        })
        .unwrap();
    report("safetensors", n, rejected.get());
}

/// The fuzz targets' inputs exist (a renamed fixture would silently fuzz nothing).
#[test]
fn fuzz_seeds_are_valid_inputs() {
    for f in [
        "sine_s16_mono.wav",
        "sine_mono.flac",
        "sine_mono.mp3",
        "sine_stereo.ogg",
    ] {
        pipe::audio::decode_file(&repo().join("tests/fixtures/audio").join(f)).unwrap();
    }
    pipe::audio::render::midi_end_seconds(
        &repo().join("tests/fixtures/audio/d960_mv3_8bars_10_34.mid"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), shipped_config()).unwrap();
    // The shipped description parses (its data paths are not read here).
    pipe::config::Config::load(&dir.path().join("pipeline.toml")).unwrap();
    let arch = pipe::encoder::ArchConfig::from_dir(&model_dir("muq_tiny")).unwrap();
    arch.check_weights(&model_dir("muq_tiny")).unwrap();
}
