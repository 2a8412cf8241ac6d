//! The git commit a run came from: `HEAD` of the work tree holding a folder,
//! read from `.git` directly (no `git` binary needed): a `.git` folder or a
//! worktree's `.git` file, a detached `HEAD` or a branch, loose or packed refs.
//! Uncommitted edits are not detected; the config hash covers the config.

use std::fs;
use std::path::{Path, PathBuf};

/// `HEAD`'s commit (hex) of the git work tree that contains `dir`, if any.
pub fn head_commit(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let dotgit = dir
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|p| p.exists())?;
    let gitdir = if dotgit.is_file() {
        // A linked worktree or submodule: `gitdir: <path>`, relative to the file's folder.
        let text = fs::read_to_string(&dotgit).ok()?;
        let target = PathBuf::from(text.trim().strip_prefix("gitdir:")?.trim());
        dotgit.parent()?.join(target)
    } else {
        dotgit
    };
    // Shared refs of a linked worktree live in its common dir.
    let common = match fs::read_to_string(gitdir.join("commondir")) {
        Ok(rel) => gitdir.join(rel.trim()),
        Err(_) => gitdir.clone(),
    };
    let head = fs::read_to_string(gitdir.join("HEAD")).ok()?;
    let head = head.trim();
    match head.strip_prefix("ref:") {
        None => is_hash(head).then(|| head.to_string()),
        Some(name) => resolve(name.trim(), &gitdir, &common),
    }
}

/// A ref's commit: loose in the worktree's or the common dir, else packed.
fn resolve(name: &str, gitdir: &Path, common: &Path) -> Option<String> {
    for dir in [gitdir, common] {
        if let Ok(text) = fs::read_to_string(dir.join(name)) {
            let hash = text.trim();
            return is_hash(hash).then(|| hash.to_string());
        }
    }
    let packed = fs::read_to_string(common.join("packed-refs")).ok()?;
    packed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .filter_map(|l| l.split_once(' '))
        .find(|(_, r)| *r == name)
        .map(|(h, _)| h.to_string())
        .filter(|h| is_hash(h))
}

/// SHA-1 (40) or SHA-256 (64) hex.
fn is_hash(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn reads_detached_loose_packed_and_worktree_heads() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let git = repo.join(".git");
        let sub = repo.join("data/out");
        fs::create_dir_all(git.join("refs/heads")).unwrap();
        fs::create_dir_all(&sub).unwrap();
        assert_eq!(head_commit(&sub), None, "no HEAD yet");

        fs::write(git.join("HEAD"), format!("{A}\n")).unwrap();
        assert_eq!(head_commit(&sub).as_deref(), Some(A), "detached");

        fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{B} refs/heads/main\n^{A}\n"),
        )
        .unwrap();
        assert_eq!(head_commit(&sub).as_deref(), Some(B), "packed");
        fs::write(git.join("refs/heads/main"), format!("{A}\n")).unwrap();
        assert_eq!(head_commit(&sub).as_deref(), Some(A), "loose wins");

        // A linked worktree: `.git` file -> its gitdir, refs in the common dir.
        let wt = dir.path().join("wt");
        let wt_git = git.join("worktrees/wt");
        fs::create_dir_all(&wt_git).unwrap();
        fs::create_dir_all(&wt).unwrap();
        fs::write(wt.join(".git"), format!("gitdir: {}\n", wt_git.display())).unwrap();
        fs::write(wt_git.join("commondir"), "../..\n").unwrap();
        fs::write(wt_git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        assert_eq!(head_commit(&wt).as_deref(), Some(A));

        // Outside any repository.
        let bare = tempfile::tempdir().unwrap();
        if bare.path().ancestors().all(|d| !d.join(".git").exists()) {
            assert_eq!(head_commit(bare.path()), None);
        }
    }

    #[test]
    fn agrees_with_git_on_this_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let Ok(out) = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(root)
            .output()
        else {
            eprintln!("no git binary: skipped");
            return;
        };
        if !out.status.success() {
            eprintln!("not a git checkout: skipped");
            return;
        }
        let want = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(head_commit(root), Some(want));
    }
}
