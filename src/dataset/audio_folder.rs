//! Bring your own data: a folder of recordings plus a labels CSV with
//! `clip_id`, `piece`, optional `performer`, `work` and `file`, and one
//! column per dimension (canonical names or the study's aliases).

use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{Clip, SourceKind};
use crate::dims::{self, DIMENSIONS, N_DIMS};

const AUDIO_EXTENSIONS: [&str; 4] = ["wav", "flac", "mp3", "ogg"];
const META_COLUMNS: [&str; 5] = ["clip_id", "piece", "performer", "work", "file"];

pub fn load(audio_dir: &Path, labels: &Path) -> Result<Vec<Clip>> {
    let mut rdr = csv::Reader::from_path(labels)
        .with_context(|| format!("reading labels {}", labels.display()))?;
    let headers = rdr
        .headers()
        .map_err(|e| super::csv_error(labels, e))?
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
    for row in rdr.records() {
        let row = row.map_err(|e| super::csv_error(labels, e))?;
        // One numbering: the file's own line numbers, as csv counts them.
        let line = row.position().map_or(0, |p| p.line());
        let cell = |c: usize| row.get(c).unwrap_or("").trim().to_string();
        let id = cell(id_c);
        if id.is_empty() {
            bail!("{}: line {line} has an empty clip_id", labels.display());
        }
        if !seen.insert(id.clone()) {
            bail!(
                "{}: duplicate clip_id `{id}` (line {line})",
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
                        "{}: clip `{id}` (line {line}): label `{}` = {text:?}, expected a number",
                        labels.display(),
                        DIMENSIONS[d]
                    )
                })?;
        }
        let source = match file_c.map(cell).filter(|f| !f.is_empty()) {
            Some(f) => audio_dir.join(f),
            None => find_audio(audio_dir, &id)
                .with_context(|| format!("{}: line {line}", labels.display()))?,
        };
        if let Some(why) = not_a_file(&source) {
            bail!(
                "{}: clip `{id}` (line {line}): audio file {} {why}",
                labels.display(),
                source.display()
            );
        }
        let piece = cell(piece_c);
        if piece.is_empty() {
            bail!(
                "{}: clip `{id}` (line {line}) has an empty piece",
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
            performer_fold: None,
            published_fold: None,
            label_se: None,
            id,
        });
    }
    if clips.is_empty() {
        bail!("{}: no clips", labels.display());
    }
    Ok(clips)
}

/// Why `path` cannot be read as an audio file, or `None` if it is a
/// regular file (a folder or a FIFO is not "missing").
fn not_a_file(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot be read: {e}")),
        Ok(m) if m.is_file() => None,
        Ok(m) if m.is_dir() => Some("is a folder, not an audio file".into()),
        Ok(m) => {
            let t = m.file_type();
            let kind = if t.is_fifo() {
                "a FIFO (named pipe)"
            } else if t.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            Some(format!("is {kind}, not a regular audio file"))
        }
    }
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

    /// A folder or a FIFO in the `file` column was reported as "does not exist".
    #[test]
    fn a_folder_or_fifo_is_named_as_such_not_as_missing() {
        let h = format!("{},file", header());
        let (dir, csv) = setup(&[h.clone(), format!("{},sub", row("a", "p", 0.5))], &[]);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let err = format!("{:#}", load(dir.path(), &csv).unwrap_err());
        assert!(
            err.contains("is a folder, not an audio file") && err.contains("line 2"),
            "{err}"
        );

        let (dir, csv) = setup(
            &[h.clone(), format!("{},pipe.wav", row("a", "p", 0.5))],
            &[],
        );
        let ok = std::process::Command::new("mkfifo")
            .arg(dir.path().join("pipe.wav"))
            .status()
            .unwrap();
        assert!(ok.success());
        let err = format!("{:#}", load(dir.path(), &csv).unwrap_err());
        assert!(err.contains("is a FIFO (named pipe)"), "{err}");

        let (dir, csv) = setup(&[h, format!("{},gone.wav", row("a", "p", 0.5))], &[]);
        let err = format!("{:#}", load(dir.path(), &csv).unwrap_err());
        assert!(err.contains("gone.wav does not exist"), "{err}");
    }

    /// "bad CSV row 5 … (line: 4 …)" mixed two numberings; every message now
    /// uses the file's own line numbers, also past a quoted line break.
    #[test]
    fn csv_errors_use_the_files_line_numbers() {
        let short = format!("c,p,{}", ["0.5"; 5].join(","));
        let (dir, csv) = setup(&[header(), row("a", "p", 0.5), short], &["a.wav"]);
        let err = format!("{:#}", load(dir.path(), &csv).unwrap_err());
        assert!(
            err.contains("line 3: 7 field(s), but the header has 21"),
            "{err}"
        );
        assert!(!err.contains("row") && !err.contains("record"), "{err}");
        // A piece name with a line break inside quotes: the next row is line 4.
        let quoted = row("b", "\"two\nlines\"", 0.5);
        let (dir, csv) = setup(&[header(), quoted, row("b", "p", 0.5)], &["b.wav"]);
        let err = format!("{:#}", load(dir.path(), &csv).unwrap_err());
        assert!(err.contains("duplicate clip_id `b` (line 4)"), "{err}");
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
