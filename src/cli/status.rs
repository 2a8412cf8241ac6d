//! `pipe status`: what is fresh, stale or may be stale, why, and whether
//! `data/out` is this config's current publication.

use anyhow::Result;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

use super::{config_id, plan, print_plan, verify};
use crate::config::Config;
use crate::dag::{self, Plan, publish};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct StatusArgs {
    /// List every stale item with its reasons (not only counts per reason).
    #[arg(long)]
    pub all: bool,
    /// Print one JSON object (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Exit with 1 when anything is stale or data/out is not current.
    #[arg(long)]
    pub exit_code: bool,
    /// Also rehash every fresh artifact against its recorded hash (slow).
    #[arg(long)]
    pub verify: bool,
}

pub fn status(path: &Path, config: &Config, args: &StatusArgs) -> Result<ExitCode> {
    let (stages, plan) = plan(path, config)?;
    let desired = dag::desired_from_plan(&stages, &plan)?;
    let out = publish::compare(&config.data_dir, &desired, &config_id(path, config));
    let corrupt = if args.verify {
        Some(verify::check_plan(&plan).0)
    } else {
        None
    };
    let clean = plan.is_fresh()
        && out.is_current()
        && out.left_out.is_empty()
        && corrupt.as_ref().is_none_or(Vec::is_empty);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&plan, &out, corrupt.as_deref(), clean))?
        );
    } else {
        print_plan(&plan, "stale", args.all);
        println!("{}", out_line(&out));
        if let Some(bad) = &corrupt {
            verify::print_corrupt(bad);
        }
    }
    Ok(if args.exit_code && !clean {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One line on `data/out`.
fn out_line(c: &publish::Comparison) -> String {
    if c.unrecorded {
        return "data/out: written by pipe before publications were recorded; `pipe run` republishes it".into();
    }
    if c.empty {
        return "data/out: nothing published yet (pipe run publishes)".into();
    }
    if let Some((owner, when)) = &c.other_owner {
        let who = owner
            .as_ref()
            .map_or("another pipeline description".to_string(), |o| {
                o.display().to_string()
            });
        return format!(
            "data/out: holds the outputs of {who} (published {}), not this config's; `pipe run` replaces them",
            publish::when(*when)
        );
    }
    let mut parts = Vec::new();
    if !c.changed.is_empty() {
        parts.push(format!("{} file(s) to (re)publish", c.changed.len()));
    }
    if !c.removed.is_empty() {
        parts.push(format!("{} to drop", c.removed.len()));
    }
    if !c.edited.is_empty() {
        parts.push(format!(
            "{} edited since published ({})",
            c.edited.len(),
            c.edited.join(", ")
        ));
    }
    for (stage, why) in &c.left_out {
        parts.push(format!("no current {stage} outputs ({why})"));
    }
    if parts.is_empty() {
        "data/out: current".into()
    } else {
        format!("data/out: {}", parts.join("; "))
    }
}

fn to_json(
    plan: &Plan,
    out: &publish::Comparison,
    corrupt: Option<&[dag::verify::Corrupt]>,
    clean: bool,
) -> serde_json::Value {
    let stages: Vec<_> = plan
        .stages
        .iter()
        .map(|s| {
            let items: Vec<_> = s
                .nodes
                .iter()
                .filter(|n| n.is_stale())
                .map(|n| {
                    json!({
                        "item": n.node.item,
                        "state": match n.state {
                            dag::NodeState::Stale => "stale",
                            dag::NodeState::Pending => "may_be_stale",
                            dag::NodeState::Fresh => "fresh",
                        },
                        "reasons": n.reasons,
                    })
                })
                .collect();
            let reasons: Vec<_> = s
                .reason_summary()
                .into_iter()
                .map(|(reason, count, example)| json!({"reason": reason, "count": count, "example": example}))
                .collect();
            json!({
                "stage": s.name,
                "unit": s.unit,
                "nodes": s.nodes.len(),
                "stale": s.stale_count(),
                "may_be_stale": s.pending_count(),
                "fresh": s.nodes.len() - s.stale_count() - s.pending_count(),
                "reasons": reasons,
                "items": items,
            })
        })
        .collect();
    json!({
        "up_to_date": clean,
        "stages": stages,
        "out": {
            "current": out.is_current() && out.left_out.is_empty(),
            "empty": out.empty,
            "other_owner": out.other_owner.as_ref().map(|(p, t)| json!({"config": p, "published": t})),
            "to_publish": out.changed,
            "to_drop": out.removed,
            "edited": out.edited,
            "left_out": out.left_out,
        },
        "corrupt": corrupt.map(|c| c.iter().map(|x| json!({"stage": x.stage, "path": x.path})).collect::<Vec<_>>()),
    })
}
