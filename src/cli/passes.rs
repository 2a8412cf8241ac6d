//! What `pipe run` says about encoder work: the `--dry-run` estimate, and
//! after a run the passes and cache hits per encoder (whose times it records
//! for the next estimate).

use crate::dag::Plan;
use crate::stages::EncoderPasses;

/// `--dry-run`: which encoders will run, on how many clips, for about how long.
pub fn print_estimate(passes: Option<&EncoderPasses>, plan: &Plan) {
    let Some(passes) = passes else { return };
    match passes.estimate(plan) {
        Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
        Err(e) => println!("encoder work: no estimate ({e:#})"),
    }
}

/// After a run: one line per encoder that ran or pooled from its cache;
/// the pass times are saved for the next estimate.
pub fn after_run(passes: Option<&EncoderPasses>) {
    let Some(passes) = passes else { return };
    for line in passes.extractor().summary() {
        eprintln!("{line}");
    }
    if let Err(e) = passes.save_rates() {
        eprintln!("warning: encoder pass times not recorded: {e:#}");
    }
}
