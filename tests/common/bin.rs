//! Running the `pipe` binary from a test: one place for the command line and
//! for reading what it said.

use std::path::Path;
use std::process::{Command, Output};

/// `pipe -c CFG ARGS...`, waited for.
pub fn pipe(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipe"))
        .arg("-c")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// stdout then stderr, asserting the command succeeded.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}
