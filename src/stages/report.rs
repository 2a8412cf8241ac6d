//! results, plots, report: the study's tables, figures and Markdown from
//! every trained and evaluated experiment. Their params carry the experiment
//! list (descriptions, and why some did not run), so editing a description
//! re-renders tables without retraining. They are partial aggregates: an
//! experiment whose training failed is listed as failed, the rest are shown.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::path::Path;

use super::experiments::read_json;
use super::{EVALUATE, PLOTS, REPORT, RESULTS, TRAIN};
use crate::config::ReportConfig;
use crate::dag::{Node, NodeSpec, Publish, Source, Stage, StageDecl};
use crate::dataset::folds::Split;
use crate::experiment::TrainOutput;
use crate::metrics::BootstrapConfig;
use crate::report::{ExperimentInfo, Ran, Results, e3_configured, markdown, plots, tables};

/// What the three stages share: the experiment list and where their inputs are.
#[derive(Clone)]
pub struct Experiments {
    pub infos: Vec<ExperimentInfo>,
    pub report: ReportConfig,
    /// Metadata of the result tables.
    pub provenance: tables::Provenance,
    /// `[evaluation]`'s bootstrap, for the paired comparisons with the best row.
    pub bootstrap: BootstrapConfig,
}

impl Experiments {
    fn ran_items(&self) -> impl Iterator<Item = String> {
        self.infos
            .iter()
            .filter(|i| i.not_run.is_none())
            .map(|i| i.item())
    }

    fn inputs(&self) -> Vec<(String, Source)> {
        self.ran_items()
            .flat_map(|id| {
                [&TRAIN, &EVALUATE].map(|stage| {
                    (
                        format!("{}/{id}", stage.name),
                        Source::node(stage, id.clone()),
                    )
                })
            })
            .collect()
    }

    /// A node's key covers its item (keys do not include item names, and the
    /// tables of one stage share every input) and the experiment list.
    fn node(&self, item: &str, extra: serde_json::Value) -> NodeSpec {
        NodeSpec::new(
            item,
            json!({
                "output": item,
                "experiments": self.infos,
                "bootstrap": self.bootstrap,
                "extra": extra,
            }),
            self.inputs(),
        )
        .partial()
    }

    /// One [`Results`] per split, in the order the splits first appear.
    fn load(&self, node: &Node) -> Result<Vec<Results>> {
        let mut splits: Vec<Split> = Vec::new();
        for i in &self.infos {
            if !splits.contains(&i.split) {
                splits.push(i.split);
            }
        }
        let mut out = Vec::new();
        for split in splits {
            let mut ran = Vec::new();
            let mut not_run = Vec::new();
            for info in self.infos.iter().filter(|i| i.split == split) {
                if info.not_run.is_some() {
                    not_run.push(info.clone());
                    continue;
                }
                let item = info.item();
                let train = format!("{}/{item}", TRAIN.name);
                let eval = format!("{}/{item}", EVALUATE.name);
                match (node.present(&train), node.present(&eval)) {
                    (Some(t), Some(e)) => ran.push(Ran {
                        info: info.clone(),
                        train: TrainOutput::read(&t.path)?,
                        eval: read_json(&e.path)?,
                    }),
                    _ => {
                        let why = node
                            .missing
                            .iter()
                            .find(|m| m.name == train || m.name == eval)
                            .map_or("failed".to_string(), |m| {
                                format!("failed ({} {}): {}", m.stage, m.item, m.reason)
                            });
                        not_run.push(ExperimentInfo {
                            not_run: Some(why),
                            failed: true,
                            ..info.clone()
                        });
                    }
                }
            }
            let mut results = Results::new(ran, not_run);
            results.bootstrap = self.bootstrap.clone();
            results.split = split;
            out.push(results);
        }
        Ok(out)
    }
}

/// The first split's results (the figures' and the ranked table's).
fn first(mut all: Vec<Results>) -> Results {
    all.swap_remove(0)
}

fn publish_as(nodes: &[&Node], dir: &str, ext: &str) -> Vec<Publish> {
    nodes
        .iter()
        .map(|n| Publish::copy(format!("{dir}{}.{ext}", n.item), &n.path))
        .collect()
}

/// results: the public Parquet tables under `data/out/results/`.
pub struct ResultTables(pub Experiments);

impl Stage for ResultTables {
    fn decl(&self) -> &'static StageDecl {
        &RESULTS
    }
    fn describe(&self) -> String {
        format!("result tables: {}", tables::TABLES.join(", "))
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(tables::TABLES
            .iter()
            .map(|t| self.0.node(t, json!(null)))
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let results = self.0.load(node)?;
        tables::build(&node.item, &results)?.write(out)
    }
    /// The published tables carry their provenance in their metadata.
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        let meta = self.0.provenance.metadata();
        let extra = serde_json::to_string(&meta)?;
        Ok(nodes
            .iter()
            .map(|n| {
                let meta = meta.clone();
                Publish::rendered(
                    format!("results/{}.parquet", n.item),
                    &n.path,
                    extra.clone(),
                    move |src, dest| crate::table::copy_with_metadata(src, dest, &meta),
                )
            })
            .collect())
    }
}

/// plots: PNG figures under `data/out/plots/`.
pub struct Plots(pub Experiments);

impl Plots {
    fn scatter_id<'a>(&self, results: &'a Results) -> Result<&'a Ran> {
        match &self.0.report.scatter {
            Some(id) => results
                .get(id)
                .ok_or_else(|| anyhow!("report.scatter = {id:?}: that experiment did not run")),
            None => results
                .ran
                .first()
                .ok_or_else(|| anyhow!("no experiment ran")),
        }
    }
}

impl Stage for Plots {
    fn decl(&self) -> &'static StageDecl {
        &PLOTS
    }
    fn describe(&self) -> String {
        "PNG: R2 per dimension of the best experiments (and of the E3 pair); predicted vs true of one"
            .into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let e3 = e3_configured(&self.0.infos).then_some(plots::E3_PLOT);
        Ok(plots::PLOTS
            .iter()
            .copied()
            .chain(e3)
            .map(|p| self.0.node(p, json!(self.0.report)))
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        // The figures show the first split (piece by default).
        let results = first(self.0.load(node)?);
        // Drawn in memory, then written once: a write error names the file
        // (a BufWriter dropped on a full disk would swallow it).
        let mut png = Vec::new();
        match node.item.as_str() {
            "r2_by_dimension" => {
                let best: Vec<&Ran> = results.ran.iter().take(self.0.report.best.max(1)).collect();
                plots::r2_by_dimension(&best, &mut png)?
            }
            "scatter" => plots::scatter(self.scatter_id(&results)?, &mut png)?,
            plots::E3_PLOT => {
                let pairs = results.e3_pairs();
                let Some((audio, symbolic)) = pairs.first() else {
                    bail!("no E3-audio* and E3-symbolic* pair of experiments ran");
                };
                plots::r2_by_dimension(&[audio, symbolic], &mut png)?
            }
            other => bail!("no plot named `{other}`"),
        }
        std::fs::write(out, png)
            .with_context(|| format!("writing plot {} to {}", node.item, out.display()))
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        Ok(publish_as(nodes, "plots/", "png"))
    }
}

/// report: `data/out/report.md`.
pub struct Report(pub Experiments);

impl Stage for Report {
    fn decl(&self) -> &'static StageDecl {
        &REPORT
    }
    fn describe(&self) -> String {
        "report.md: ranked summary, per fold, per category, per dimension, quoted published results"
            .into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(vec![self.0.node("report", json!(self.0.report))])
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let all = self.0.load(node)?;
        let results = &all[0];
        let plots: Vec<(String, String)> = if results.ran.is_empty() {
            Vec::new()
        } else {
            let best = self.0.report.best.max(1).min(results.ran.len());
            let scatter = self
                .0
                .report
                .scatter
                .clone()
                .unwrap_or_else(|| results.ran[0].info.id.clone());
            let mut plots = vec![
                (
                    "r2_by_dimension.png".into(),
                    format!("R² per dimension, best {best} experiment(s)"),
                ),
                (
                    "scatter.png".into(),
                    format!("Predicted vs true, {scatter}"),
                ),
            ];
            if let Some((a, s)) = results.e3_pairs().first() {
                plots.push((
                    format!("{}.png", plots::E3_PLOT),
                    format!("Audio vs symbolic (E3): {} and {}", a.info.id, s.info.id),
                ));
            }
            plots
        };
        let links: Vec<(&str, &str)> = plots
            .iter()
            .map(|(f, c)| (f.as_str(), c.as_str()))
            .collect();
        std::fs::write(out, markdown::render(&all, &links))
            .with_context(|| format!("writing the report to {}", out.display()))
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        Ok(publish_as(nodes, "", "md"))
    }
}
