//! The floors of the crate: which modules each top-level module may import,
//! ground floor first, and the test that reads the code against them.
//!
//! A module may import only modules on the rows above its own, so the table
//! is acyclic by construction; a new module needs a row. Inside the modules,
//! no two files may import each other, directly or around a loop. Test code
//! (`#[cfg(test)]` items, `tests.rs`, `*_tests.rs`) is exempt: a test may
//! wire up anything below the crate.
//!
//! Chosen over a workspace of crates along the floors because the one crate
//! builds as one compilation unit on a 2-core machine; this test makes the
//! same promise (`cargo test floors`) without splitting the build.

/// Each top-level module (`src/<name>.rs` or `src/<name>/`) and what it may import.
#[rustfmt::skip]
const FLOORS: &[(&str, &[&str])] = &[
    // Floor 1: plain data and the engine; none of them knows another.
    ("ops", &[]),
    ("dims", &[]),
    ("rng", &[]),
    ("bounds", &[]),
    ("tensors", &[]),
    ("table", &[]),
    ("dag", &[]),
    ("audio", &[]),
    // Floor 2: the backend contract; tables as polars frames; metrics; datasets.
    ("backend", &["ops"]),
    ("frame", &["table"]),
    ("metrics", &["dims", "rng"]),
    ("dataset", &["dims"]),
    // Floor 3: the two backends; SQL over the tables; heads.
    ("cpu", &["backend", "ops"]),
    ("gpu", &["backend", "ops"]),
    ("query", &["frame", "table"]),
    ("head", &["bounds", "dims", "metrics", "rng", "tensors"]),
    // Floor 4: encoders over either backend; one experiment's out-of-fold run.
    ("encoder", &["audio", "backend", "bounds", "cpu", "gpu", "ops", "rng"]),
    ("experiment", &["dataset", "dims", "head", "metrics", "table", "tensors"]),
    // Floor 5: what is computed from encoders (features, benchmarks) and from experiments (reports).
    ("features", &["audio", "backend", "encoder", "ops", "rng"]),
    ("bench", &["backend", "cpu", "encoder", "gpu", "ops"]),
    ("report", &["dataset", "dims", "experiment", "frame", "head", "metrics", "table"]),
    // Floor 6: pipeline.toml, composing the domains' own config types.
    ("config", &[
        "audio", "bounds", "dataset", "encoder", "experiment", "features", "head", "metrics",
    ]),
    // Floor 7: run history; scoring new recordings from a bundle.
    ("history", &["config", "dag", "features", "frame", "metrics", "table"]),
    ("predict", &[
        "audio", "bench", "config", "dag", "dims", "encoder", "features", "head", "rng", "table",
        "tensors",
    ]),
    // Floor 8: the stages over the engine; floor 9: what each subcommand prints.
    ("stages", &[
        "audio", "config", "dag", "dataset", "dims", "encoder", "experiment", "features", "head",
        "metrics", "predict", "report", "rng", "table", "tensors",
    ]),
    ("cli", &[
        "config", "dag", "encoder", "features", "frame", "history", "metrics", "predict", "query",
        "report", "stages", "table", "tensors",
    ]),
];

mod tests {
    use super::FLOORS;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// A path a file uses and the line it is on.
    type Used = (usize, Vec<String>);

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    /// Every `.rs` file under `src/` but test files, as paths relative to `src/`.
    fn sources() -> Vec<PathBuf> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, root, out);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    if name != "tests.rs" && !name.ends_with("_tests.rs") {
                        out.push(p.strip_prefix(root).unwrap().to_path_buf());
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&src(), &src(), &mut out);
        out
    }

    /// The file's code with comments and `#[cfg(test)]` items blanked (lines
    /// kept, so line numbers stay right).
    fn code_of(text: &str) -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim() == "#[cfg(test)]" {
                out.push(String::new());
                i += 1;
                let (mut depth, mut opened) = (0i64, false);
                while i < lines.len() {
                    let l = lines[i];
                    out.push(String::new());
                    i += 1;
                    if !opened && l.trim_end().ends_with(';') {
                        break;
                    }
                    depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                    opened |= l.contains('{');
                    if opened && depth <= 0 {
                        break;
                    }
                }
                continue;
            }
            let l = lines[i];
            let code = match l.find("//") {
                Some(at) if !l[..at].contains('"') => &l[..at],
                _ => l,
            };
            out.push(code.to_string());
            i += 1;
        }
        out
    }

    /// `crate::` and `super::` paths of one file's code with their lines,
    /// `use` trees expanded (`use crate::a::{b, c::D}` gives `crate::a::b`
    /// and `crate::a::c::D`). `pub use` lines are returned apart: a module's
    /// re-exports hand names on, they are not what the module itself uses.
    fn paths(code: &[String]) -> (Vec<Used>, Vec<Vec<String>>) {
        let (mut used, mut reexported) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < code.len() {
            let t = code[i].trim_start();
            let is_use = t.starts_with("use ") || t.starts_with("pub use ");
            let is_pub = t.starts_with("pub use ") || t.starts_with("pub(crate) use ");
            if is_use || t.starts_with("pub(crate) use ") {
                let first = i;
                let mut stmt = String::new();
                while i < code.len() {
                    stmt.push_str(&code[i]);
                    i += 1;
                    if stmt.contains(';') {
                        break;
                    }
                }
                let tree = stmt[stmt.find("use ").unwrap() + 4..stmt.find(';').unwrap()].trim();
                for mut p in expand(tree) {
                    // `use child::X` names a child module (or an external
                    // crate, which resolves to the file itself).
                    if !["crate", "super", "self"].contains(&p[0].as_str()) {
                        p.insert(0, "self".to_string());
                    }
                    if is_pub {
                        reexported.push(p);
                    } else {
                        used.push((first + 1, p));
                    }
                }
                continue;
            }
            for root in ["crate::", "super::"] {
                for (at, _) in code[i].match_indices(root) {
                    let before = code[i][..at].chars().last();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    let rest: String = code[i][at..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let segs: Vec<String> = rest
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    used.push((i + 1, segs));
                }
            }
            i += 1;
        }
        (used, reexported)
    }

    /// The paths a `use` tree names: `a::{b, c::{d, e as f}}` → a::b, a::c::d, a::c::e.
    fn expand(tree: &str) -> Vec<Vec<String>> {
        // `E as F` names E; '#' cannot occur in a path.
        let tree: String = tree
            .replace(" as ", "#")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let Some(open) = tree.find('{') else {
            let path = tree.split('#').next().unwrap_or(&tree);
            return vec![path.split("::").map(str::to_string).collect()];
        };
        let prefix: Vec<String> = tree[..open]
            .trim_end_matches("::")
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&inner[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        parts.push(&inner[start..]);
        parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .flat_map(expand)
            .map(|tail| {
                let mut p = prefix.clone();
                p.extend(tail.into_iter().filter(|s| s != "self"));
                p
            })
            .collect()
    }

    /// The module path of a source file: `gpu/batch.rs` → [gpu, batch].
    fn module_of(file: &Path) -> Vec<String> {
        let mut m: Vec<String> = file
            .with_extension("")
            .iter()
            .map(|s| s.to_str().unwrap().to_string())
            .collect();
        if m.last()
            .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
        {
            m.pop();
        }
        m
    }

    /// The file that defines module `m`, if there is one.
    fn file_of(m: &[String], files: &BTreeSet<PathBuf>) -> Option<PathBuf> {
        if m.is_empty() {
            return Some(PathBuf::from("lib.rs"));
        }
        let base: PathBuf = m.iter().collect();
        [base.with_extension("rs"), base.join("mod.rs")]
            .into_iter()
            .find(|f| files.contains(f))
    }

    struct Crate {
        files: BTreeSet<PathBuf>,
        /// Per module file: name → the path it re-exports.
        reexports: BTreeMap<PathBuf, BTreeMap<String, Vec<String>>>,
    }

    impl Crate {
        /// The file a path written in `from` lands in: the deepest module it
        /// names, followed through re-exports of the item it names there.
        fn resolve(&self, from: &Path, path: &[String], hops: usize) -> Option<PathBuf> {
            let mut m = module_of(from);
            let mut segs = path;
            match segs.first().map(String::as_str) {
                Some("crate") => {
                    m.clear();
                    segs = &segs[1..];
                }
                Some("self") => segs = &segs[1..],
                Some("super") => {
                    while segs.first().is_some_and(|s| s == "super") {
                        m.pop();
                        segs = &segs[1..];
                    }
                }
                _ => {}
            }
            let mut file = file_of(&m, &self.files)?;
            for (k, seg) in segs.iter().enumerate() {
                m.push(seg.clone());
                if let Some(f) = file_of(&m, &self.files) {
                    file = f;
                    continue;
                }
                m.pop();
                let via = self.reexports.get(&file).and_then(|r| r.get(seg));
                if let (Some(target), true) = (via, hops < 8) {
                    let mut target = target.clone();
                    target.extend(segs[k + 1..].iter().cloned());
                    return self.resolve(&file, &target, hops + 1);
                }
                break;
            }
            Some(file)
        }
    }

    fn top(file: &Path) -> String {
        let first = file.iter().next().unwrap().to_str().unwrap();
        first.trim_end_matches(".rs").to_string()
    }

    fn read_crate() -> (Crate, BTreeMap<PathBuf, Vec<Used>>) {
        let files: BTreeSet<PathBuf> = sources().into_iter().collect();
        let mut reexports = BTreeMap::new();
        let mut used = BTreeMap::new();
        for f in &files {
            let code = code_of(&std::fs::read_to_string(src().join(f)).unwrap());
            let (u, r) = paths(&code);
            let names = r
                .into_iter()
                .map(|p| (p.last().unwrap().clone(), p))
                .collect::<BTreeMap<_, _>>();
            reexports.insert(f.clone(), names);
            used.insert(f.clone(), u);
        }
        (Crate { files, reexports }, used)
    }

    #[test]
    fn floors_table_is_ground_up_and_names_every_module() {
        let mut seen = BTreeSet::new();
        for (module, may) in FLOORS {
            for m in *may {
                assert!(
                    seen.contains(m),
                    "floors: `{module}` may import `{m}`, which is not on a row above it"
                );
            }
            assert!(seen.insert(*module), "floors: `{module}` has two rows");
        }
        let modules: BTreeSet<String> = sources()
            .iter()
            .map(|f| top(f))
            .filter(|m| m != "lib" && m != "main" && m != "floors")
            .collect();
        let declared: BTreeSet<String> = seen.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            modules, declared,
            "every module of src/ needs a row in FLOORS (src/floors.rs), and every row a module"
        );
    }

    #[test]
    fn floors_every_import_goes_down_to_an_allowed_module() {
        let (krate, used) = read_crate();
        let allowed: BTreeMap<&str, &[&str]> = FLOORS.iter().copied().collect();
        let mut wrong = Vec::new();
        for (file, paths) in &used {
            let from = top(file);
            let Some(may) = allowed.get(from.as_str()) else {
                continue; // lib.rs, main.rs: the crate's roots
            };
            for (line, path) in paths {
                let Some(target) = krate.resolve(file, path, 0) else {
                    continue;
                };
                let to = top(&target);
                if to != from && to != "lib" && !may.contains(&to.as_str()) {
                    wrong.push(format!(
                        "src/{}:{line}: `{}` imports `{to}`, not in its row of FLOORS",
                        file.display(),
                        path.join("::")
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn floors_no_two_files_import_each_other() {
        let (krate, used) = read_crate();
        let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for (file, paths) in &used {
            let out = edges.entry(file.clone()).or_default();
            for (_, path) in paths {
                if let Some(t) = krate.resolve(file, path, 0).filter(|t| t != file) {
                    out.insert(t);
                }
            }
        }
        // A file is on a loop when it can reach itself.
        let reach = |start: &PathBuf| -> BTreeSet<PathBuf> {
            let (mut seen, mut todo) = (BTreeSet::new(), vec![start.clone()]);
            while let Some(f) = todo.pop() {
                for t in edges.get(&f).into_iter().flatten() {
                    if seen.insert(t.clone()) {
                        todo.push(t.clone());
                    }
                }
            }
            seen
        };
        let looped: Vec<String> = edges
            .keys()
            .filter(|f| reach(f).contains(*f))
            .map(|f| {
                let back: Vec<String> = edges[f]
                    .iter()
                    .filter(|t| reach(t).contains(f))
                    .map(|t| format!("src/{}", t.display()))
                    .collect();
                format!("src/{} <-> {}", f.display(), back.join(", "))
            })
            .collect();
        assert!(
            looped.is_empty(),
            "files on an import loop:\n{}",
            looped.join("\n")
        );
    }

    #[test]
    fn floors_reader_expands_use_trees_and_resolves_reexports() {
        let got = expand("crate::a::{b, c::{D, E as F}, self}");
        let want: Vec<Vec<String>> = [
            vec!["crate", "a", "b"],
            vec!["crate", "a", "c", "D"],
            vec!["crate", "a", "c", "E"],
            vec!["crate", "a"],
        ]
        .iter()
        .map(|p| p.iter().map(|s| s.to_string()).collect())
        .collect();
        assert_eq!(got, want);
        let code = code_of(
            "use crate::x::Y; // crate::z\n#[cfg(test)]\nmod t {\n    use crate::w;\n}\nfn f() { crate::v::g(); }\n",
        );
        let (used, _) = paths(&code);
        let tops: Vec<(usize, String)> = used.iter().map(|(l, p)| (*l, p[1].clone())).collect();
        assert_eq!(tops, [(1, "x".to_string()), (6, "v".to_string())]);
        // `gpu::Tensor` is re-exported by gpu/mod.rs from gpu/tensor.rs.
        let (krate, _) = read_crate();
        let p = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            krate.resolve(Path::new("gpu/batch.rs"), &p("super::Tensor"), 0),
            Some(PathBuf::from("gpu/tensor.rs"))
        );
        assert_eq!(
            krate.resolve(Path::new("stages/mod.rs"), &p("crate::dims::N_DIMS"), 0),
            Some(PathBuf::from("dims.rs"))
        );
    }
}
