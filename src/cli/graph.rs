//! `pipe dag`: the stage graph, as text, Graphviz DOT or Mermaid.

use anyhow::Result;
use std::path::Path;

use super::plan;
use crate::config::Config;
use crate::dag::{Plan, Stage};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct DagArgs {
    /// Graphviz DOT (`pipe dag --dot | dot -Tsvg > dag.svg`).
    #[arg(long, conflicts_with = "mermaid")]
    pub dot: bool,
    /// A Mermaid flowchart (renders in GitHub Markdown).
    #[arg(long)]
    pub mermaid: bool,
}

/// The stages `stage` reads that this pipeline has.
fn ups<'a>(stage: &dyn Stage, stages: &'a [Box<dyn Stage>]) -> Vec<&'a str> {
    stage
        .decl()
        .reads
        .iter()
        .filter_map(|d| stages.iter().find(|s| s.name() == d.name).map(|s| s.name()))
        .collect()
}

pub fn dag(path: &Path, config: &Config, args: &DagArgs) -> Result<()> {
    let (stages, plan) = plan(path, config)?;
    let text = if args.dot {
        dot(&stages, &plan)
    } else if args.mermaid {
        mermaid(&stages, &plan)
    } else {
        text(&stages, &plan)
    };
    print!("{text}");
    Ok(())
}

/// "3 nodes, 1 stale".
fn label(plan: &Plan, name: &str) -> String {
    let s = plan.stage(name).expect("planned");
    let n = s.nodes.len();
    let stale = s.stale_count() + s.pending_count();
    let shape = format!("{n} node{}", if n == 1 { "" } else { "s" });
    if stale == 0 {
        shape
    } else {
        format!("{shape}, {stale} stale")
    }
}

fn text(stages: &[Box<dyn Stage>], plan: &Plan) -> String {
    let mut out = String::new();
    for stage in stages {
        let ups = ups(stage.as_ref(), stages);
        let from = if ups.is_empty() {
            "inputs".to_string()
        } else {
            ups.join(", ")
        };
        let shape = label(plan, stage.name());
        out.push_str(&format!(
            "{from} ─▶ {} ({shape}, v{})\n{:>8}{}\n",
            stage.name(),
            stage.version(),
            "",
            stage.describe()
        ));
    }
    out
}

pub fn dot(stages: &[Box<dyn Stage>], plan: &Plan) -> String {
    let mut out = String::from(
        "digraph pipe {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    for s in stages {
        let stale = plan
            .stage(s.name())
            .is_some_and(|p| p.nodes.iter().any(|n| n.is_stale()));
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n{}\"{}];\n",
            s.name(),
            s.name(),
            label(plan, s.name()),
            if stale {
                ", style=filled, fillcolor=\"#ffe0b0\""
            } else {
                ""
            }
        ));
    }
    for s in stages {
        for up in ups(s.as_ref(), stages) {
            out.push_str(&format!("  \"{up}\" -> \"{}\";\n", s.name()));
        }
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(stages: &[Box<dyn Stage>], plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for s in stages {
        out.push_str(&format!(
            "  {}[\"{}<br/>{}\"]\n",
            s.name(),
            s.name(),
            label(plan, s.name())
        ));
    }
    for s in stages {
        for up in ups(s.as_ref(), stages) {
            out.push_str(&format!("  {up} --> {}\n", s.name()));
        }
    }
    out
}
