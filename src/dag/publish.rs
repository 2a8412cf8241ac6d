//! `data/out`: the friendly copies of the artifacts, always one consistent
//! publication. A run builds the whole publication in a fresh generation
//! folder (`data/.out/<generation>`: unchanged files hard-linked from the
//! previous one, changed ones copied or rendered from the store) and swaps
//! it in at once by renaming a symlink onto `data/out`; readers see the old
//! publication or the new one, never a mix. `out/.publication.json` says
//! which pipeline description published it, when, every file's stamp (the
//! artifact it comes from, plus anything rendered in such as names), and
//! which stages are left out and why, so `status` notices another config's
//! outputs and a run republishes only what changed.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::Key;
use super::record::ConfigId;

/// Writes a published file (`dest`, a temporary path) from its artifact (`src`).
pub type Render = Arc<dyn Fn(&Path, &Path) -> Result<()> + Send + Sync>;

/// One file of `data/out`.
#[derive(Clone)]
pub struct Publish {
    /// Path under `out/`.
    pub rel: PathBuf,
    /// The artifact it comes from.
    pub from: PathBuf,
    /// Writes the file from the artifact (e.g. a table with its name and
    /// description added); `None`: a plain copy.
    pub render: Option<Render>,
    /// What `render` puts in besides the artifact (names, descriptions):
    /// part of the file's stamp, so editing it re-renders the file.
    pub extra: String,
}

impl std::fmt::Debug for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("rel", &self.rel)
            .field("from", &self.from)
            .field("extra", &self.extra)
            .finish()
    }
}

impl Publish {
    /// A plain copy of an artifact.
    pub fn copy(rel: impl Into<PathBuf>, from: &Path) -> Publish {
        Publish {
            rel: rel.into(),
            from: from.to_path_buf(),
            render: None,
            extra: String::new(),
        }
    }

    /// A file rendered from an artifact plus `extra` (say, names).
    pub fn rendered(
        rel: impl Into<PathBuf>,
        from: &Path,
        extra: String,
        render: impl Fn(&Path, &Path) -> Result<()> + Send + Sync + 'static,
    ) -> Publish {
        Publish {
            rel: rel.into(),
            from: from.to_path_buf(),
            render: Some(Arc::new(render)),
            extra,
        }
    }

    /// The artifact's name carries its key and content hash: with `extra`
    /// it says exactly what the file holds.
    fn stamp(&self) -> String {
        let name = self
            .from
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let mut h = blake3::Hasher::new();
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(self.extra.as_bytes());
        Key(*h.finalize().as_bytes()).short()
    }
}

/// What a publication holds: every file and which stages are left out.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// (stage, file), in stage order.
    pub files: Vec<(String, Publish)>,
    /// Publishing stage -> why it is not published (it has failed or stale nodes).
    pub left_out: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileStamp {
    pub stage: String,
    pub stamp: String,
    pub len: u64,
    pub mtime_ns: u128,
}

/// `out/.publication.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub config: Option<PathBuf>,
    pub config_hash: String,
    /// Seconds since the Unix epoch.
    pub published: u64,
    pub files: BTreeMap<String, FileStamp>,
    #[serde(default)]
    pub left_out: BTreeMap<String, String>,
}

/// How `data/out` compares with what this config would publish now.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// `out/` holds no publication this version recorded.
    pub empty: bool,
    /// ... but files (from pipe before publications were recorded).
    pub unrecorded: bool,
    /// Another pipeline description published it: (file, when).
    pub other_owner: Option<(Option<PathBuf>, u64)>,
    /// Files to write or rewrite, and files to drop.
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Files whose bytes were edited in place since publishing.
    pub edited: Vec<String>,
    /// Stages left out now (and why).
    pub left_out: BTreeMap<String, String>,
}

impl Comparison {
    pub fn is_current(&self) -> bool {
        !self.empty
            && self.other_owner.is_none()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.edited.is_empty()
    }
}

/// What [`publish`] did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Absolute paths of every file of the publication.
    pub files: Vec<PathBuf>,
    /// Files written (copied or rendered) by this run.
    pub written: Vec<String>,
    pub removed: Vec<String>,
    /// The publication replaced another description's: (file, when).
    pub replaced_owner: Option<(Option<PathBuf>, u64)>,
    pub left_out: BTreeMap<String, String>,
    /// Nothing changed: `out/` was left alone.
    pub unchanged: bool,
}

/// A Unix time as `2025-11-30 14:05 UTC` (for messages).
pub fn when(unix: u64) -> String {
    // Days to civil date (Howard Hinnant's algorithm).
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

fn out_dir(root: &Path) -> PathBuf {
    root.join("out")
}

/// The manifest of the current publication, if `out/` has one.
pub fn current(root: &Path) -> Option<Manifest> {
    let bytes = fs::read(out_dir(root).join(".publication.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn stamp_of(path: &Path) -> Option<(u64, u128)> {
    let m = fs::metadata(path).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some((m.len(), mtime))
}

/// Compares `out/` with `desired` (stages listed in `left_out` keep nothing).
pub fn compare(root: &Path, desired: &Desired, config: &ConfigId) -> Comparison {
    let mut c = Comparison::default();
    let Some(cur) = current(root) else {
        c.empty = true;
        c.unrecorded = out_dir(root).exists();
        c.changed = desired
            .files
            .iter()
            .map(|(_, p)| p.rel.display().to_string())
            .collect();
        c.left_out = desired.left_out.clone();
        return c;
    };
    if cur.config != config.path || cur.config_hash != config.hash {
        c.other_owner = Some((cur.config.clone(), cur.published));
    }
    let out = out_dir(root);
    let mut wanted = BTreeSet::new();
    for (_, p) in &desired.files {
        let rel = p.rel.display().to_string();
        wanted.insert(rel.clone());
        match cur.files.get(&rel) {
            Some(f) if f.stamp == p.stamp() => {
                if stamp_of(&out.join(&p.rel)) != Some((f.len, f.mtime_ns)) {
                    c.edited.push(rel);
                }
            }
            _ => c.changed.push(rel),
        }
    }
    c.removed = cur
        .files
        .keys()
        .filter(|r| !wanted.contains(*r))
        .cloned()
        .collect();
    c.left_out = desired.left_out.clone();
    if cur.left_out != c.left_out && c.changed.is_empty() && c.removed.is_empty() {
        // Only the left-out notes differ: still a new manifest to write.
        c.changed.push(".publication.json".into());
    }
    c
}

/// Builds `desired` as a new generation and swaps it in as `out/`, unless
/// `out/` already holds exactly it.
pub fn publish(root: &Path, desired: &Desired, config: &ConfigId) -> Result<Outcome> {
    let cmp = compare(root, desired, config);
    let out = out_dir(root);
    let files: Vec<PathBuf> = desired
        .files
        .iter()
        .map(|(_, p)| out.join(&p.rel))
        .collect();
    if cmp.is_current() {
        return Ok(Outcome {
            files,
            unchanged: true,
            ..Default::default()
        });
    }
    let cur = current(root).unwrap_or_default();
    let gens = root.join(".out");
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!("{}-{}", now.as_nanos(), std::process::id());
    let dir = gens.join(&name);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut manifest = Manifest {
        config: config.path.clone(),
        config_hash: config.hash.clone(),
        published: now.as_secs(),
        files: BTreeMap::new(),
        left_out: cmp.left_out.clone(),
    };
    let mut written = Vec::new();
    for (stage, p) in &desired.files {
        let rel = p.rel.display().to_string();
        let dest = dir.join(&p.rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let stamp = p.stamp();
        let reuse = cur.files.get(&rel).filter(|f| {
            f.stamp == stamp && stamp_of(&out.join(&p.rel)) == Some((f.len, f.mtime_ns))
        });
        let linked = reuse.is_some() && fs::hard_link(out.join(&p.rel), &dest).is_ok();
        if !linked {
            let tmp = dest.with_extension("tmp-publish");
            match &p.render {
                Some(render) => render(&p.from, &tmp)
                    .with_context(|| format!("writing {rel} from {}", p.from.display()))?,
                None => {
                    fs::copy(&p.from, &tmp).with_context(|| {
                        format!("copying {} to {}", p.from.display(), tmp.display())
                    })?;
                }
            }
            fs::rename(&tmp, &dest)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
            written.push(rel.clone());
        }
        let (len, mtime_ns) =
            stamp_of(&dest).with_context(|| format!("reading {}", dest.display()))?;
        manifest.files.insert(
            rel,
            FileStamp {
                stage: stage.clone(),
                stamp,
                len,
                mtime_ns,
            },
        );
    }
    fs::write(
        dir.join(".publication.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .with_context(|| format!("writing {}", dir.join(".publication.json").display()))?;
    swap_in(root, &name)?;
    // Earlier generations: nothing points at them any more.
    if let Ok(entries) = fs::read_dir(&gens) {
        for e in entries.flatten() {
            if e.file_name() != name.as_str() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(Outcome {
        files,
        written,
        removed: cmp.removed,
        replaced_owner: cmp.other_owner,
        left_out: cmp.left_out,
        unchanged: false,
    })
}

/// Points `out` at `.out/<generation>` with one rename of a symlink.
fn swap_in(root: &Path, generation: &str) -> Result<()> {
    let out = out_dir(root);
    if let Ok(meta) = fs::symlink_metadata(&out)
        && !meta.file_type().is_symlink()
    {
        if !meta.is_dir() {
            bail!("{} is not a folder; move it away", out.display());
        }
        // An `out/` folder from pipe before generations: becomes one, and is
        // removed with the others once the new one is in place.
        let old = root
            .join(".out")
            .join(format!("previous-{}", std::process::id()));
        fs::rename(&out, &old)
            .with_context(|| format!("moving {} to {}", out.display(), old.display()))?;
    }
    let link = root.join(format!(".out-swap-{}", std::process::id()));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(Path::new(".out").join(generation), &link)
        .with_context(|| format!("creating {}", link.display()))?;
    fs::rename(&link, &out)
        .with_context(|| format!("renaming {} to {}", link.display(), out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(files: &[(&str, &Path, &str)]) -> Desired {
        Desired {
            files: files
                .iter()
                .map(|(rel, from, extra)| {
                    let p = if extra.is_empty() {
                        Publish::copy(*rel, from)
                    } else {
                        let e = extra.to_string();
                        Publish::rendered(*rel, from, e.clone(), move |src, dst| {
                            let mut b = fs::read(src)?;
                            b.extend_from_slice(e.as_bytes());
                            Ok(fs::write(dst, b)?)
                        })
                    };
                    ("s".to_string(), p)
                })
                .collect(),
            left_out: BTreeMap::new(),
        }
    }

    #[test]
    fn publications_swap_whole_and_unchanged_files_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (a, b) = (root.join("a.bin"), root.join("b.bin"));
        fs::write(&a, b"A").unwrap();
        fs::write(&b, b"B").unwrap();
        let me = ConfigId::new(&root.join("p.toml"), "h");
        let d = desired(&[("x/a.txt", &a, ""), ("b.txt", &b, "meta")]);
        let o = publish(root, &d, &me).unwrap();
        assert_eq!(o.written.len(), 2);
        assert_eq!(fs::read(root.join("out/x/a.txt")).unwrap(), b"A");
        assert_eq!(fs::read(root.join("out/b.txt")).unwrap(), b"Bmeta");
        assert!(compare(root, &d, &me).is_current());
        assert!(publish(root, &d, &me).unwrap().unchanged);

        // A new extra re-renders that file only; the other is linked over.
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(root.join("out/x/a.txt")).unwrap().ino();
        let d2 = desired(&[("x/a.txt", &a, ""), ("b.txt", &b, "new")]);
        let o = publish(root, &d2, &me).unwrap();
        assert_eq!(o.written, ["b.txt"]);
        assert_eq!(fs::read(root.join("out/b.txt")).unwrap(), b"Bnew");
        assert_eq!(fs::metadata(root.join("out/x/a.txt")).unwrap().ino(), ino);
        assert_eq!(
            fs::read_dir(root.join(".out")).unwrap().count(),
            1,
            "old generations go"
        );

        // Another config sees it is not its publication; an edit is noticed.
        let other = ConfigId::new(&root.join("trial.toml"), "h2");
        assert!(compare(root, &d2, &other).other_owner.is_some());
        fs::write(root.join("out/x/a.txt"), b"edited!").unwrap();
        assert_eq!(compare(root, &d2, &me).edited, ["x/a.txt"]);
        publish(root, &d2, &me).unwrap();
        assert_eq!(fs::read(root.join("out/x/a.txt")).unwrap(), b"A");
    }

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(when(1_709_210_096), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn an_out_folder_from_before_generations_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("out/results")).unwrap();
        fs::write(root.join("out/results/old.parquet"), b"old").unwrap();
        let a = root.join("a.bin");
        fs::write(&a, b"A").unwrap();
        let me = ConfigId::new(&root.join("p.toml"), "h");
        publish(root, &desired(&[("a.txt", &a, "")]), &me).unwrap();
        assert!(
            fs::symlink_metadata(root.join("out"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            !root.join("out/results/old.parquet").exists(),
            "no mix of old and new"
        );
        assert_eq!(fs::read(root.join("out/a.txt")).unwrap(), b"A");
    }
}
