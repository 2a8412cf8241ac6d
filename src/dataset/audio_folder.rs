//! Bring your own data: a folder of recordings plus a labels CSV with
//! `clip_id`, `piece`, optional `performer`, `work` and `file`, and one
//! column per dimension (canonical names or the study's aliases).

use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{Clip, DIMENSIONS, N_DIMS, SourceKind, dims};

const AUDIO_EXTENSIONS: [&str; 4] = ["wav", "flac", "mp3", "ogg"];
const META_COLUMNS: [&str; 5] = ["clip_id", "piece", "performer", "work", "file"];

pub fn load(audio_dir: &Path, labels: &Path) -> Result<Vec<Clip>> {
    let mut rdr = csv::Reader::from_path(labels)
        .with_context(|| format!("reading labels {}", labels.display()))?;
    let headers = rdr
        .headers()
        .with_context(|| format!("reading the header of {}", labels.display()))?
        .clone();
    let find = |name: &str| headers.iter().position(|h| h.trim() == name);
    let id_c = find("clip_id")
        .with_context(|| format!("{}: missing column `clip_id`", labels.display()))?;
    let piece_c = find("piece").with_context(|| {
        format!(
            "{}: missing column `piece` (the score excerpt each clip performs; folds group by it)",
            labels.display()
        )
    })?;
    let (perf_c, work_c, file_c) = (find("performer"), find("work"), find("file"));

    let mut dim_cols = [usize::MAX; N_DIMS];
    for (c, h) in headers.iter().enumerate() {
        let h = h.trim();
        if META_COLUMNS.contains(&h) {
            continue;
        }
        let d = dims::index_of(h).with_context(|| {
            format!(
                "{}: unknown column `{h}`; dimension columns are: {}",
                labels.display(),
                DIMENSIONS.join(", ")
            )
        })?;
        if dim_cols[d] != usize::MAX {
            bail!(
                "{}: dimension `{}` appears twice",
                labels.display(),
                DIMENSIONS[d]
            );
        }
        dim_cols[d] = c;
    }
    let missing: Vec<&str> = (0..N_DIMS)
        .filter(|&d| dim_cols[d] == usize::MAX)
        .map(|d| DIMENSIONS[d])
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: missing label column(s): {}",
            labels.display(),
            missing.join(", ")
        );
    }

    let mut seen = HashSet::new();
    let mut clips = Vec::new();
    for (i, row) in rdr.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}: bad CSV row {line}", labels.display()))?;
        let cell = |c: usize| row.get(c).unwrap_or("").trim().to_string();
        let id = cell(id_c);
        if id.is_empty() {
            bail!("{}: row {line} has an empty clip_id", labels.display());
        }
        if !seen.insert(id.clone()) {
            bail!(
                "{}: duplicate clip_id `{id}` (row {line})",
                labels.display()
            );
        }
        let mut values = [0.0; N_DIMS];
        for (d, v) in values.iter_mut().enumerate() {
            let text = cell(dim_cols[d]);
            *v = text
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .with_context(|| {
                    format!(
                        "{}: clip `{id}` (row {line}): label `{}` = {text:?}, expected a number",
                        labels.display(),
                        DIMENSIONS[d]
                    )
                })?;
        }
        let source = match file_c.map(cell).filter(|f| !f.is_empty()) {
            Some(f) => audio_dir.join(f),
            None => find_audio(audio_dir, &id)
                .with_context(|| format!("{}: row {line}", labels.display()))?,
        };
        if !source.is_file() {
            bail!(
                "{}: clip `{id}`: audio file {} does not exist",
                labels.display(),
                source.display()
            );
        }
        let piece = cell(piece_c);
        if piece.is_empty() {
            bail!(
                "{}: clip `{id}` (row {line}) has an empty piece",
                labels.display()
            );
        }
        clips.push(Clip {
            performer: perf_c.map(cell).unwrap_or_default(),
            work: work_c.map(cell).unwrap_or_else(|| piece.clone()),
            piece,
            is_rendering: false,
            source,
            source_kind: SourceKind::Audio,
            labels: values,
            fold: None,
            id,
        });
    }
    if clips.is_empty() {
        bail!("{}: no clips", labels.display());
    }
    Ok(clips)
}

fn find_audio(dir: &Path, id: &str) -> Result<PathBuf> {
    AUDIO_EXTENSIONS
        .iter()
        .map(|ext| dir.join(format!("{id}.{ext}")))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no audio file for clip `{id}` in {} (looked for {id}.{{wav,flac,mp3,ogg}})",
                dir.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> String {
        let mut h = vec!["clip_id".to_string(), "piece".to_string()];
        h.extend(DIMENSIONS.iter().map(|d| d.to_string()));
        h.join(",")
    }

    fn row(id: &str, piece: &str, v: f64) -> String {
        let mut r = vec![id.to_string(), piece.to_string()];
        r.extend((0..N_DIMS).map(|_| v.to_string()));
        r.join(",")
    }

    fn setup(lines: &[String], files: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let csv = dir.path().join("labels.csv");
        std::fs::write(&csv, lines.join("\n")).unwrap();
        (dir, csv)
    }

    #[test]
    fn loads_clips_and_finds_their_audio() {
        let (dir, csv) = setup(
            &[header(), row("a", "p1", 0.5), row("b", "p2", 0.25)],
            &["a.wav", "b.flac"],
        );
        let clips = load(dir.path(), &csv).unwrap();
        assert_eq!(clips.len(), 2);
        assert_eq!(clips[1].source, dir.path().join("b.flac"));
        assert_eq!(clips[1].labels[18], 0.25);
        assert_eq!(clips[0].work, "p1", "work defaults to the piece");
    }

    #[test]
    fn study_aliases_are_accepted() {
        let h = header()
            .replace(",pace,", ",tempo,")
            .replace("dynamic_sophistication", "sophistication");
        let (dir, csv) = setup(&[h, row("a", "p", 0.5)], &["a.wav"]);
        assert_eq!(load(dir.path(), &csv).unwrap()[0].labels[11], 0.5);
    }

    #[test]
    fn bad_tables_get_errors_naming_the_problem() {
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                vec![header(), row("a", "p", 0.5), row("a", "p", 0.5)],
                "duplicate clip_id `a`",
            ),
            (
                vec![header().replace("timing", "timming"), row("a", "p", 0.5)],
                "unknown column `timming`",
            ),
            (
                vec![header().replace(",interpretation", ""), row("a", "p", 0.5)],
                "missing label column(s): interpretation",
            ),
            (
                vec![header(), row("a", "p", 0.5).replacen("0.5", "", 1)],
                "label `timing` = \"\"",
            ),
            (
                vec![header(), row("zzz", "p", 0.5)],
                "no audio file for clip `zzz`",
            ),
        ];
        for (lines, expected) in cases {
            let (dir, csv) = setup(&lines, &["a.wav"]);
            let err = format!("{:#}", load(dir.path(), &csv).unwrap_err());
            assert!(err.contains(expected), "expected {expected:?} in: {err}");
            assert!(err.contains("labels.csv"), "{err}");
        }
    }
}
