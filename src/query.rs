//! `pipe query`: SQL (polars' SQL context) over the published tables under
//! `data/out`: `manifest`, `features_<set>` (without the vector columns),
//! `summary`, `per_fold`, `per_dimension`, `per_category`, `predictions`, and
//! any other table published there (`history` once a run writes it). Only
//! the tables a query names are read, by arrow-rs ([`crate::table`]).

use anyhow::{Context, Result, anyhow, bail};
use polars::prelude::{DataFrame, IntoLazy};
use polars::sql::{SQLContext, extract_table_identifiers};
use std::path::{Path, PathBuf};

/// A published table: its SQL name and file.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub name: String,
    pub path: PathBuf,
}

/// Every published table under `out`, by name: `<out>/<name>.parquet`,
/// `<out>/results/<name>.parquet` and `<out>/features/<set>.parquet` as
/// `features_<set>`. Sorted by name; empty if nothing was published yet.
pub fn tables(out: &Path) -> Result<Vec<Published>> {
    let mut found = Vec::new();
    for (dir, prefix) in [
        (out.to_path_buf(), ""),
        (out.join("results"), ""),
        (out.join("features"), "features_"),
    ] {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "parquet")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                found.push(Published {
                    name: format!("{prefix}{stem}"),
                    path,
                });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = found.windows(2).find(|w| w[0].name == w[1].name) {
        bail!(
            "two tables are called `{}`: {} and {}",
            w[0].name,
            w[0].path.display(),
            w[1].path.display()
        );
    }
    Ok(found)
}

/// Reads a published table as a polars frame without its nested columns.
pub fn load(table: &Published) -> Result<DataFrame> {
    let batch = crate::table::read_columns(&table.path, |f| !f.data_type().is_nested())
        .with_context(|| format!("reading table `{}`", table.name))?;
    let (df, _) = crate::frame::from_batch(&batch)
        .with_context(|| format!("table `{}` ({})", table.name, table.path.display()))?;
    Ok(df)
}

/// Runs `sql` over the published tables under `out`.
pub fn run(out: &Path, sql: &str) -> Result<DataFrame> {
    let available = tables(out)?;
    let names = || {
        available
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if available.is_empty() {
        bail!(
            "no tables under {}: run the pipeline first (`pipe run`)",
            out.display()
        );
    }
    let named = extract_table_identifiers(sql, false, true).map_err(|e| anyhow!("bad SQL: {e}"))?;
    let mut ctx = SQLContext::new();
    for name in &named {
        // Names that are no table here may be CTEs; polars says if they are neither.
        if let Some(t) = available.iter().find(|t| &t.name == name) {
            ctx.register(name, load(t)?.lazy());
        }
    }
    let result = ctx.execute(sql).and_then(|lf| lf.collect());
    result.map_err(|e| {
        let msg = e.to_string();
        match msg.split('\'').nth(1) {
            Some(missing) if msg.contains("was not found") => anyhow!(
                "no table `{missing}` under {} (tables: {})",
                out.display(),
                names()
            ),
            _ => anyhow!("query failed: {msg}"),
        }
    })
}
