//! `pipe config`: the pipeline description as pipe reads it.

use anyhow::Result;
use std::path::Path;

use crate::config::{Config, template};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct ConfigArgs {
    /// Print the whole configuration as one plain pipeline.toml: includes,
    /// defaults and matrices expanded, every path absolute (it runs as it
    /// is, saved in any folder).
    #[arg(long, conflicts_with = "check")]
    pub expand: bool,
    /// Validate it and say what it holds; run nothing (the default).
    #[arg(long)]
    pub check: bool,
}

/// `config` was loaded, so validated, already; `path` is its file.
pub fn config(path: &Path, config: &Config, args: &ConfigArgs) -> Result<()> {
    if args.expand {
        print!("{}", Config::expand_file(path)?);
        return Ok(());
    }
    let text = std::fs::read_to_string(path)?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty());
    let expanded = template::expand(&text, base.unwrap_or(Path::new(".")))?;
    let made = |section: &str| match expanded.generated.get(section) {
        Some(n) => format!(" ({n} from matrices)"),
        None => String::new(),
    };
    println!(
        "{}: ok: {} encoders, {} feature sets{}, {} experiments{}; {} file{}; config hash {}",
        path.display(),
        config.encoders.len(),
        config.features.len(),
        made("features"),
        config.experiments.len(),
        made("experiments"),
        expanded.files,
        if expanded.files == 1 { "" } else { "s" },
        &config.hash[..16],
    );
    Ok(())
}
