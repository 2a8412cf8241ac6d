//! Running a pipeline description in a test folder (included with `#[path]`).

#![allow(dead_code)]

use pipe::config::Config;
use pipe::dag::{self, RunOptions, RunReport, Store};
use std::path::Path;

/// Runs every stage of `toml` (paths relative to `dir`); returns the report
/// and the pipeline's notes, after the run, without asserting success.
pub fn try_run(dir: &Path, toml: &str) -> (RunReport, Vec<String>) {
    let cfg = Config::parse(toml, dir).unwrap();
    let pipeline = pipe::stages::build(&cfg).unwrap();
    let report = dag::run(
        &pipeline.stages,
        &Store::new(&cfg.data_dir),
        &RunOptions::default(),
    )
    .unwrap();
    (report, pipeline.notes)
}

/// Like [`try_run`], failing the test if any node failed.
pub fn run(dir: &Path, toml: &str) -> (RunReport, Vec<String>) {
    let (report, notes) = try_run(dir, toml);
    assert_eq!(report.failed(), 0, "{:?}", report.stages);
    (report, notes)
}

/// Nodes a stage computed in that run (0 if the stage did not run).
pub fn computed(r: &RunReport, stage: &str) -> usize {
    r.stage(stage).map_or(0, |s| s.computed)
}
