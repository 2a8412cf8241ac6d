//! Running a pipeline description in a test folder.

#![allow(dead_code)]

use pipe::config::Config;
use pipe::dag::{self, RunOptions, RunReport, Store};
use std::path::Path;

/// Runs every stage of `toml` (paths relative to `dir`) with `opts`; returns
/// the report and the pipeline's notes, after the run, without asserting success.
pub fn try_run_with(dir: &Path, toml: &str, opts: &RunOptions) -> (RunReport, Vec<String>) {
    let cfg = Config::parse(toml, dir).unwrap();
    let pipeline = pipe::stages::build(&cfg).unwrap();
    let report = dag::run(&pipeline.stages, &Store::new(&cfg.data_dir), opts).unwrap();
    (report, pipeline.notes)
}

/// [`try_run_with`] default options.
pub fn try_run(dir: &Path, toml: &str) -> (RunReport, Vec<String>) {
    try_run_with(dir, toml, &RunOptions::default())
}

/// Like [`try_run`], failing the test if any node failed.
pub fn run(dir: &Path, toml: &str) -> (RunReport, Vec<String>) {
    let (report, notes) = try_run(dir, toml);
    assert_eq!(report.failed() + report.blocked(), 0, "{:?}", report.stages);
    (report, notes)
}

/// Nodes a stage computed in that run (0 if the stage did not run).
pub fn computed(r: &RunReport, stage: &str) -> usize {
    r.stage(stage).map_or(0, |s| s.computed)
}

/// Nodes a stage found fresh after all (their inputs came out as before).
pub fn cut_off(r: &RunReport, stage: &str) -> usize {
    r.stage(stage).map_or(0, |s| s.cut_off)
}
