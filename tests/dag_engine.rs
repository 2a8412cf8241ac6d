//! The DAG engine on toy stages: what runs, what is fresh, and why.

use anyhow::{Result, bail};
use pipe::dag::{self, Node, NodeSpec, Publish, RunOptions, Source, Stage, StageDecl, Store};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static SCALE: StageDecl = StageDecl::new("scale", 1, "txt", &[]);
static ADD_ONE: StageDecl = StageDecl::new("add_one", 1, "txt", &[&SCALE]);
static SUM: StageDecl = StageDecl::new("sum", 1, "txt", &[&ADD_ONE]);
static VARIANTS: StageDecl = StageDecl::new("variants", 1, "txt", &[]);
static FIRST: StageDecl = StageDecl::new("first", 1, "txt", &[]);
static SECOND: StageDecl = StageDecl::new("second", 1, "txt", &[&FIRST]);

/// Per-item: reads a number from an input file, multiplies by `factor`.
struct Scale {
    inputs_dir: PathBuf,
    items: Vec<String>,
    factor: i64,
    ran: Mutex<Vec<String>>,
}

impl Stage for Scale {
    fn decl(&self) -> &'static StageDecl {
        &SCALE
    }
    fn describe(&self) -> String {
        "multiply each input".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .items
            .iter()
            .map(|i| {
                let input = Source::File(self.inputs_dir.join(format!("{i}.txt")));
                NodeSpec::new(
                    i.clone(),
                    json!({"factor": self.factor}),
                    vec![("value".into(), input)],
                )
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        self.ran.lock().unwrap().push(node.item.clone());
        let text = std::fs::read_to_string(&node.input("value")?.path)?;
        let v: i64 = text
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{}: not a number", node.item))?;
        if v < 0 {
            bail!("negative input in {}", node.item);
        }
        std::fs::write(out, (v * self.factor).to_string())?;
        Ok(())
    }
}

/// Per-item: adds one to the upstream value.
struct AddOne {
    items: Vec<String>,
    ran: Mutex<Vec<String>>,
}

impl Stage for AddOne {
    fn decl(&self) -> &'static StageDecl {
        &ADD_ONE
    }
    fn describe(&self) -> String {
        "add one".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .items
            .iter()
            .map(|i| {
                let input = Source::node(&SCALE, i.clone());
                NodeSpec::new(i.clone(), json!({}), vec![("scaled".into(), input)])
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        self.ran.lock().unwrap().push(node.item.clone());
        let v: i64 = std::fs::read_to_string(&node.input("scaled")?.path)?.parse()?;
        std::fs::write(out, (v + 1).to_string())?;
        Ok(())
    }
}

/// Aggregate: sums all items.
struct Sum {
    items: Vec<String>,
    ran: Mutex<usize>,
}

impl Stage for Sum {
    fn decl(&self) -> &'static StageDecl {
        &SUM
    }
    fn describe(&self) -> String {
        "sum everything".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let inputs = self
            .items
            .iter()
            .map(|i| (i.clone(), Source::node(&ADD_ONE, i.clone())))
            .collect();
        Ok(vec![NodeSpec::new("all", json!({}), inputs)])
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        *self.ran.lock().unwrap() += 1;
        let mut total = 0i64;
        for i in &node.inputs {
            total += std::fs::read_to_string(&i.path)?.parse::<i64>()?;
        }
        std::fs::write(out, total.to_string())?;
        Ok(())
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        Ok(nodes
            .iter()
            .map(|n| Publish::copy("sum.txt", &n.path))
            .collect())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(values: &[(&str, i64)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        let f = Fixture { dir };
        for (k, v) in values {
            f.set(k, *v);
        }
        f
    }
    fn set(&self, item: &str, v: i64) {
        std::fs::write(
            self.dir.path().join("in").join(format!("{item}.txt")),
            v.to_string(),
        )
        .unwrap();
    }
    fn store(&self) -> Store {
        Store::new(self.dir.path().join("data"))
    }
    fn stages(&self, items: &[&str], factor: i64) -> (Vec<Box<dyn Stage>>, Counters) {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        let scale = std::sync::Arc::new(Scale {
            inputs_dir: self.dir.path().join("in"),
            items: items.clone(),
            factor,
            ran: Mutex::new(vec![]),
        });
        let add = std::sync::Arc::new(AddOne {
            items: items.clone(),
            ran: Mutex::new(vec![]),
        });
        let sum = std::sync::Arc::new(Sum {
            items,
            ran: Mutex::new(0),
        });
        let counters = Counters {
            scale: scale.clone(),
            add: add.clone(),
            sum: sum.clone(),
        };
        (
            vec![
                Box::new(ArcStage(scale)),
                Box::new(ArcStage(add)),
                Box::new(ArcStage(sum)),
            ],
            counters,
        )
    }
    fn published_sum(&self) -> i64 {
        std::fs::read_to_string(self.dir.path().join("data/out/sum.txt"))
            .unwrap()
            .parse()
            .unwrap()
    }
}

struct Counters {
    scale: std::sync::Arc<Scale>,
    add: std::sync::Arc<AddOne>,
    sum: std::sync::Arc<Sum>,
}

impl Counters {
    fn ran(&self) -> (Vec<String>, Vec<String>, usize) {
        let mut a = self.scale.ran.lock().unwrap().clone();
        let mut b = self.add.ran.lock().unwrap().clone();
        a.sort();
        b.sort();
        (a, b, *self.sum.ran.lock().unwrap())
    }
}

/// Lets the test keep a handle on a stage it hands to the engine.
struct ArcStage<S>(std::sync::Arc<S>);

impl<S: Stage> Stage for ArcStage<S> {
    fn decl(&self) -> &'static StageDecl {
        self.0.decl()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        self.0.plan()
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        self.0.run(node, out)
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        self.0.publish(nodes)
    }
    fn batch_key(&self, node: &Node) -> Option<String> {
        self.0.batch_key(node)
    }
    fn run_batch(&self, nodes: &[&Node], outs: &[PathBuf]) -> Vec<Result<()>> {
        self.0.run_batch(nodes, outs)
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn fresh_run_computes_all_and_second_run_nothing() {
    let fx = Fixture::new(&[("a", 1), ("b", 2), ("c", 3)]);
    let (stages, c) = fx.stages(&["a", "b", "c"], 10);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(r.computed(), 7);
    assert_eq!(c.ran(), (s(&["a", "b", "c"]), s(&["a", "b", "c"]), 1));
    assert_eq!(fx.published_sum(), 11 + 21 + 31);

    let (stages, c) = fx.stages(&["a", "b", "c"], 10);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(r.computed(), 0);
    assert_eq!(c.ran(), (vec![], vec![], 0));
    assert_eq!(r.stages.iter().map(|s| s.fresh).sum::<usize>(), 7);
}

#[test]
fn param_change_recomputes_exactly_the_downstream_set_and_says_why() {
    let fx = Fixture::new(&[("a", 1), ("b", 2)]);
    let (stages, _) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();

    let (stages, c) = fx.stages(&["a", "b"], 100);
    let dry = dag::run(
        &stages,
        &fx.store(),
        &RunOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    let plan = dry.plan.unwrap();
    assert_eq!(c.ran(), (vec![], vec![], 0), "dry run runs nothing");
    let scale = plan.stage("scale").unwrap();
    assert_eq!(scale.stale_count(), 2);
    assert_eq!(scale.reason_summary()[0].0, "param factor: 10 -> 100");
    // Below a stale node the key waits for its output: "may be stale".
    let add = plan.stage("add_one").unwrap();
    assert_eq!((add.stale_count(), add.pending_count()), (0, 2));
    assert_eq!(
        add.reason_summary()[0].0,
        "may be stale: behind stale `scale`"
    );
    assert_eq!(
        plan.stage("sum").unwrap().reason_summary()[0].0,
        "may be stale: behind stale `scale`"
    );

    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(c.ran(), (s(&["a", "b"]), s(&["a", "b"]), 1));
    assert_eq!(fx.published_sum(), 101 + 201);

    // Changing one input file reruns that item's chain and the aggregate only.
    fx.set("b", 5);
    let (stages, c) = fx.stages(&["a", "b"], 100);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(c.ran(), (s(&["b"]), s(&["b"]), 1));
    assert!(
        r.plan
            .unwrap()
            .stage("scale")
            .unwrap()
            .node("b")
            .unwrap()
            .reasons[0]
            .starts_with("input file `value` changed")
    );
    assert_eq!(fx.published_sum(), 101 + 501);

    // Going back to an earlier param finds the old artifacts: nothing runs.
    fx.set("b", 2);
    let (stages, c) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(c.ran(), (vec![], vec![], 0));
    assert_eq!(fx.published_sum(), 11 + 21);
}

#[test]
fn adding_one_item_computes_one_node_per_per_item_stage() {
    let fx = Fixture::new(&[("a", 1), ("b", 2), ("c", 3)]);
    let (stages, _) = fx.stages(&["a", "b"], 2);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    let (stages, c) = fx.stages(&["a", "b", "c"], 2);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(c.ran(), (s(&["c"]), s(&["c"]), 1));
    assert_eq!(r.stage("scale").unwrap().fresh, 2);
    assert_eq!(
        r.plan
            .unwrap()
            .stage("scale")
            .unwrap()
            .node("c")
            .unwrap()
            .reasons,
        s(&["new: never computed"])
    );
}

#[test]
fn until_stops_early_and_force_recomputes_one_stage() {
    let fx = Fixture::new(&[("a", 1), ("b", 2)]);
    let (stages, c) = fx.stages(&["a", "b"], 3);
    let r = dag::run(
        &stages,
        &fx.store(),
        &RunOptions {
            until: Some("scale".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.stage("add_one").unwrap().skipped, 2, "planned, not run");
    assert_eq!(c.ran(), (s(&["a", "b"]), vec![], 0));
    assert!(!fx.dir.path().join("data/out/sum.txt").exists());

    let (stages, c) = fx.stages(&["a", "b"], 3);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(
        c.ran(),
        (vec![], s(&["a", "b"]), 1),
        "scale was already fresh"
    );

    // --force reruns that stage only: its output is identical, so the sum is cut off.
    let (stages, c) = fx.stages(&["a", "b"], 3);
    let r = dag::run(
        &stages,
        &fx.store(),
        &RunOptions {
            force: s(&["add_one"]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c.ran(), (vec![], s(&["a", "b"]), 0));
    assert_eq!(r.stage("add_one").unwrap().computed, 2);
    assert_eq!(r.stage("sum").unwrap().cut_off, 1);

    let (stages, _) = fx.stages(&["a", "b"], 3);
    let err = dag::run(
        &stages,
        &fx.store(),
        &RunOptions {
            until: Some("nope".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown stage `nope`"), "{err}");
    let err = dag::run(
        &stages,
        &fx.store(),
        &RunOptions {
            until: Some("scale".into()),
            force: s(&["sum"]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--force sum"), "{err}");
}

#[test]
fn a_bad_item_fails_alone_and_blocks_only_its_downstream() {
    let fx = Fixture::new(&[("a", 1), ("bad", -1), ("c", 3)]);
    let (stages, c) = fx.stages(&["a", "bad", "c"], 1);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    let scale = r.stage("scale").unwrap();
    assert_eq!(scale.computed, 2);
    assert_eq!(scale.failed.len(), 1);
    assert_eq!(scale.failed[0].0, "bad");
    assert!(scale.failed[0].1.contains("negative input in bad"));
    assert_eq!(r.stage("add_one").unwrap().blocked.len(), 1);
    let sum = r.stage("sum").unwrap();
    assert_eq!(
        sum.blocked.len(),
        1,
        "a sum that is not partial needs every item"
    );
    assert!(
        sum.blocked[0].1.starts_with("scale bad: negative input"),
        "{:?}",
        sum.blocked
    );
    assert_eq!((r.failed(), r.blocked()), (1, 2));
    assert_eq!(c.ran().1, s(&["a", "c"]));

    // Fixing the input completes the run; the good clips are not recomputed.
    fx.set("bad", 2);
    let (stages, c) = fx.stages(&["a", "bad", "c"], 1);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(r.failed(), 0);
    assert_eq!(c.ran(), (s(&["bad"]), s(&["bad"]), 1));
    assert_eq!(fx.published_sum(), 2 + 3 + 4);
}

#[test]
fn a_missing_input_file_is_an_error_naming_it() {
    let fx = Fixture::new(&[("a", 1)]);
    let (stages, _) = fx.stages(&["a", "ghost"], 1);
    let err = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap_err();
    assert!(format!("{err:#}").contains("ghost.txt"), "{err:#}");
}

/// Per (clip, variant) nodes batched by clip: one "expensive pass" per clip
/// serves every stale variant of it.
struct Variants {
    clips: Vec<String>,
    variants: Vec<i64>,
    /// (clip, number of nodes) per batch call.
    passes: Mutex<Vec<(String, usize)>>,
}

impl Stage for Variants {
    fn decl(&self) -> &'static StageDecl {
        &VARIANTS
    }
    fn describe(&self) -> String {
        "one pass per clip, many outputs".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .clips
            .iter()
            .flat_map(|c| {
                self.variants.iter().map(move |v| {
                    NodeSpec::new(format!("{c}/{v}"), json!({"variant": v, "clip": c}), vec![])
                })
            })
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        self.run_batch(&[node], &[out.to_path_buf()]).pop().unwrap()
    }
    fn batch_key(&self, node: &Node) -> Option<String> {
        Some(node.params["clip"].as_str().unwrap().to_string())
    }
    fn run_batch(&self, nodes: &[&Node], outs: &[PathBuf]) -> Vec<Result<()>> {
        let clip = nodes[0].params["clip"].as_str().unwrap().to_string();
        self.passes.lock().unwrap().push((clip, nodes.len()));
        nodes
            .iter()
            .zip(outs)
            .map(|(n, o)| {
                let v = n.params["variant"].as_i64().unwrap();
                if v < 0 {
                    bail!("variant {v} is invalid");
                }
                Ok(std::fs::write(o, format!("{}", v * 2))?)
            })
            .collect()
    }
}

#[test]
fn batched_nodes_share_one_pass_and_new_variants_compute_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let make = |variants: Vec<i64>| {
        let s = std::sync::Arc::new(Variants {
            clips: s(&["x", "y"]),
            variants,
            passes: Mutex::new(vec![]),
        });
        (vec![Box::new(ArcStage(s.clone())) as Box<dyn Stage>], s)
    };
    let (stages, st) = make(vec![1, 2]);
    let r = dag::run(&stages, &store, &RunOptions::default()).unwrap();
    assert_eq!(r.computed(), 4);
    let mut passes = st.passes.lock().unwrap().clone();
    passes.sort();
    assert_eq!(
        passes,
        vec![("x".to_string(), 2), ("y".to_string(), 2)],
        "one pass per clip"
    );

    // A third variant: one pass per clip, computing only the new variant.
    let (stages, st) = make(vec![1, 2, 3]);
    let r = dag::run(&stages, &store, &RunOptions::default()).unwrap();
    assert_eq!((r.computed(), r.stage("variants").unwrap().fresh), (2, 4));
    let mut passes = st.passes.lock().unwrap().clone();
    passes.sort();
    assert_eq!(passes, vec![("x".to_string(), 1), ("y".to_string(), 1)]);

    // A failing node in a batch fails alone; its batch mates are committed.
    let (stages, _) = make(vec![-1, 4]);
    let r = dag::run(&stages, &store, &RunOptions::default()).unwrap();
    let st = r.stage("variants").unwrap();
    assert_eq!((st.computed, st.failed.len()), (2, 2));
    assert!(
        st.failed
            .iter()
            .all(|(item, e)| item.ends_with("/-1") && e.contains("invalid"))
    );
}

/// Shared state of the overlap and exclusivity tests.
#[derive(Default)]
struct Probe {
    /// Set when the second stage has computed item `fast`.
    fast_reached_second: Mutex<bool>,
    changed: std::sync::Condvar,
    /// Batches of the exclusive stage running now, and the most at once.
    active: Mutex<(usize, usize)>,
}

/// First stage: `fast` finishes at once; `slow` waits (up to 20 s) for `fast`
/// to come out of the second stage and records whether it did.
struct First {
    probe: std::sync::Arc<Probe>,
    slow_saw_fast_done: Mutex<Option<bool>>,
}

impl Stage for First {
    fn decl(&self) -> &'static StageDecl {
        &FIRST
    }
    fn describe(&self) -> String {
        "fast and slow items".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(["fast", "slow"]
            .iter()
            // Keys hash params and inputs, not the item: distinct params, distinct artifacts.
            .map(|i| NodeSpec::new(i.to_string(), json!({ "item": i }), vec![]))
            .collect())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        if node.item == "slow" {
            let done = self.probe.fast_reached_second.lock().unwrap();
            let (done, _) = self
                .probe
                .changed
                .wait_timeout_while(done, std::time::Duration::from_secs(20), |d| !*d)
                .unwrap();
            *self.slow_saw_fast_done.lock().unwrap() = Some(*done);
        }
        std::fs::write(out, &node.item)?;
        Ok(())
    }
}

/// Second stage: one node per first-stage item; exclusive when `exclusive`.
struct Second {
    probe: std::sync::Arc<Probe>,
    items: Vec<&'static str>,
    exclusive: bool,
}

impl Stage for Second {
    fn decl(&self) -> &'static StageDecl {
        &SECOND
    }
    fn describe(&self) -> String {
        "copies the first stage".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(self
            .items
            .iter()
            .map(|i| {
                let input = Source::node(&FIRST, i.to_string());
                NodeSpec::new(
                    i.to_string(),
                    json!({ "item": i }),
                    vec![("in".into(), input)],
                )
            })
            .collect())
    }
    fn exclusive(&self, _node: &Node) -> Option<String> {
        self.exclusive.then(|| "device".to_string())
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        {
            let mut a = self.probe.active.lock().unwrap();
            a.0 += 1;
            a.1 = a.1.max(a.0);
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        self.probe.active.lock().unwrap().0 -= 1;
        std::fs::copy(&node.input("in")?.path, out)?;
        if node.item == "fast" {
            *self.probe.fast_reached_second.lock().unwrap() = true;
            self.probe.changed.notify_all();
        }
        Ok(())
    }
}

#[test]
fn a_clip_reaches_the_next_stage_while_another_is_still_in_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("data"));
    let probe = std::sync::Arc::new(Probe::default());
    let first = std::sync::Arc::new(First {
        probe: probe.clone(),
        slow_saw_fast_done: Mutex::new(None),
    });
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(ArcStage(first.clone())),
        Box::new(Second {
            probe,
            items: vec!["fast", "slow"],
            exclusive: false,
        }),
    ];
    let opts = RunOptions {
        jobs: Some(2),
        ..Default::default()
    };
    let r = dag::run(&stages, &store, &opts).unwrap();
    assert_eq!(r.computed(), 4);
    assert_eq!(
        *first.slow_saw_fast_done.lock().unwrap(),
        Some(true),
        "`fast` went through the second stage while `slow` was still in the first"
    );
}

#[test]
fn exclusive_batches_run_one_at_a_time_and_others_around_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("data"));
    let probe = std::sync::Arc::new(Probe::default());
    // No `slow` item here: the first stage finishes at once.
    struct Quick;
    impl Stage for Quick {
        fn decl(&self) -> &'static StageDecl {
            &FIRST
        }
        fn describe(&self) -> String {
            "items".into()
        }
        fn plan(&self) -> Result<Vec<NodeSpec>> {
            Ok((0..6)
                .map(|i| NodeSpec::new(format!("c{i}"), json!({ "item": i }), vec![]))
                .collect())
        }
        fn run(&self, node: &Node, out: &Path) -> Result<()> {
            std::fs::write(out, &node.item)?;
            Ok(())
        }
    }
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(Quick),
        Box::new(Second {
            probe: probe.clone(),
            items: vec!["c0", "c1", "c2", "c3", "c4", "c5"],
            exclusive: true,
        }),
    ];
    let opts = RunOptions {
        jobs: Some(3),
        ..Default::default()
    };
    let r = dag::run(&stages, &store, &opts).unwrap();
    assert_eq!(r.stage("second").unwrap().computed, 6);
    assert_eq!(
        probe.active.lock().unwrap().1,
        1,
        "one exclusive batch at a time"
    );
    // Without the group, three workers do overlap (so the check above can fail).
    let dir2 = tempfile::tempdir().unwrap();
    let probe2 = std::sync::Arc::new(Probe::default());
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(Quick),
        Box::new(Second {
            probe: probe2.clone(),
            items: vec!["c0", "c1", "c2", "c3", "c4", "c5"],
            exclusive: false,
        }),
    ];
    dag::run(&stages, &Store::new(dir2.path().join("data")), &opts).unwrap();
    assert!(probe2.active.lock().unwrap().1 > 1);
}

// ------------------------------------------------------------------------
// Early cutoff, --force propagation, partial aggregates, --strict,
// publications, records per config, stores from pipe before content hashes.

fn dry(stages: &[Box<dyn Stage>], store: &Store) -> dag::Plan {
    let opts = RunOptions {
        dry_run: true,
        ..Default::default()
    };
    dag::run(stages, store, &opts).unwrap().plan.unwrap()
}

#[test]
fn an_upstream_rerun_with_identical_bytes_cuts_off_everything_below() {
    let fx = Fixture::new(&[("a", 1), ("b", 2)]);
    let (stages, _) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    // The same number in other bytes: `scale` must read it again, and writes "20" again.
    std::fs::write(fx.dir.path().join("in/b.txt"), "2\n").unwrap();
    let (stages, c) = fx.stages(&["a", "b"], 10);
    let plan = dry(&stages, &fx.store());
    assert_eq!(plan.stage("scale").unwrap().stale_count(), 1);
    assert_eq!(plan.stage("add_one").unwrap().pending_count(), 1);
    assert_eq!(plan.stage("sum").unwrap().pending_count(), 1);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(
        c.ran(),
        (s(&["b"]), vec![], 0),
        "only the node whose input changed ran"
    );
    assert_eq!(r.stage("add_one").unwrap().cut_off, 1);
    assert_eq!(r.stage("sum").unwrap().cut_off, 1);
    assert_eq!(r.cut_off(), 2);
    assert!(dry(&fx.stages(&["a", "b"], 10).0, &fx.store()).is_fresh());
    assert_eq!(fx.published_sum(), 11 + 21);
}

static TICK: StageDecl = StageDecl::new("tick", 1, "txt", &[]);
static COPY: StageDecl = StageDecl::new("copy", 1, "txt", &[&TICK]);

/// Writes how many times it has run: its bytes change on every run (like a
/// training time in a result).
struct Tick {
    runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Stage for Tick {
    fn decl(&self) -> &'static StageDecl {
        &TICK
    }
    fn describe(&self) -> String {
        "a run counter".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(vec![NodeSpec::new("x", json!({}), vec![])])
    }
    fn run(&self, _node: &Node, out: &Path) -> Result<()> {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::fs::write(out, n.to_string())?;
        Ok(())
    }
}

/// Copies the tick and counts its runs.
struct CopyTick {
    ran: std::sync::Arc<Mutex<usize>>,
}

impl Stage for CopyTick {
    fn decl(&self) -> &'static StageDecl {
        &COPY
    }
    fn describe(&self) -> String {
        "copies the tick".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        Ok(vec![NodeSpec::new(
            "x",
            json!({}),
            vec![("tick".into(), Source::node(&TICK, "x"))],
        )])
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        *self.ran.lock().unwrap() += 1;
        std::fs::copy(&node.input("tick")?.path, out)?;
        Ok(())
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        Ok(nodes
            .iter()
            .map(|n| Publish::copy("tick.txt", &n.path))
            .collect())
    }
}

#[test]
fn force_propagates_when_the_bytes_change_and_takes_a_stage_or_an_item() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("data"));
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let copied = std::sync::Arc::new(Mutex::new(0));
    let stages = || -> Vec<Box<dyn Stage>> {
        vec![
            Box::new(Tick { runs: runs.clone() }),
            Box::new(CopyTick {
                ran: copied.clone(),
            }),
        ]
    };
    let force = |f: &str| RunOptions {
        force: s(&[f]),
        ..Default::default()
    };
    dag::run(&stages(), &store, &RunOptions::default()).unwrap();
    assert_eq!(*copied.lock().unwrap(), 1);
    let published = || std::fs::read_to_string(dir.path().join("data/out/tick.txt")).unwrap();
    assert_eq!(published(), "0");
    // A forced node whose bytes change makes its dependants stale.
    let r = dag::run(&stages(), &store, &force("tick")).unwrap();
    assert_eq!((r.computed(), *copied.lock().unwrap()), (2, 2));
    assert_eq!(published(), "1", "the new bytes reach data/out");
    // Its item alone, by name.
    dag::run(&stages(), &store, &force("tick/x")).unwrap();
    assert_eq!(*copied.lock().unwrap(), 3);
    // The record points at the latest artifact of the key: nothing stale now.
    assert!(dry(&stages(), &store).is_fresh());
    assert_eq!(published(), "2");

    // A forced item in a per-item stage: only it runs; same bytes, so below it is cut off.
    let fx = Fixture::new(&[("a", 1), ("b", 2)]);
    let (st, _) = fx.stages(&["a", "b"], 3);
    dag::run(&st, &fx.store(), &RunOptions::default()).unwrap();
    let (st, c) = fx.stages(&["a", "b"], 3);
    let r = dag::run(&st, &fx.store(), &force("scale/b")).unwrap();
    assert_eq!(c.ran(), (s(&["b"]), vec![], 0));
    assert_eq!(r.cut_off(), 2);
    let err = dag::run(&st, &fx.store(), &force("scale/zz")).unwrap_err();
    assert!(err.to_string().contains("no item `zz`"), "{err}");
    let err = dag::run(&st, &fx.store(), &force("nope")).unwrap_err();
    assert!(err.to_string().contains("--force nope"), "{err}");
}

/// What each run of the partial sum saw missing: (input, stage, reason).
type Seen = std::sync::Arc<Mutex<Vec<Vec<(String, String, String)>>>>;

static PSUM: StageDecl = StageDecl::new("psum", 1, "txt", &[&ADD_ONE]);

/// A sum over whatever items made it: a partial aggregate.
struct PartialSum {
    items: Vec<String>,
    ran: Seen,
}

impl Stage for PartialSum {
    fn decl(&self) -> &'static StageDecl {
        &PSUM
    }
    fn describe(&self) -> String {
        "sum the good items".into()
    }
    fn plan(&self) -> Result<Vec<NodeSpec>> {
        let inputs = self
            .items
            .iter()
            .map(|i| (i.clone(), Source::node(&ADD_ONE, i.clone())))
            .collect();
        Ok(vec![NodeSpec::new("all", json!({}), inputs).partial()])
    }
    fn run(&self, node: &Node, out: &Path) -> Result<()> {
        let missing = node
            .missing
            .iter()
            .map(|m| (m.name.clone(), m.stage.to_string(), m.reason.clone()))
            .collect();
        self.ran.lock().unwrap().push(missing);
        let mut total = 0i64;
        for i in &node.inputs {
            total += std::fs::read_to_string(&i.path)?.parse::<i64>()?;
        }
        std::fs::write(out, total.to_string())?;
        Ok(())
    }
    fn publish(&self, nodes: &[&Node]) -> Result<Vec<Publish>> {
        Ok(nodes
            .iter()
            .map(|n| Publish::copy("psum.txt", &n.path))
            .collect())
    }
}

fn partial_stages(fx: &Fixture, items: &[&str], ran: &Seen) -> Vec<Box<dyn Stage>> {
    let (mut stages, _) = fx.stages(items, 1);
    stages.pop(); // the all-or-nothing sum
    stages.push(Box::new(PartialSum {
        items: items.iter().map(|s| s.to_string()).collect(),
        ran: ran.clone(),
    }));
    stages
}

#[test]
fn a_partial_aggregate_runs_on_the_good_items_and_lists_the_bad_ones() {
    let fx = Fixture::new(&[("a", 1), ("bad", -1), ("c", 3)]);
    let ran = std::sync::Arc::new(Mutex::new(Vec::new()));
    let items = ["a", "bad", "c"];
    let r = dag::run(
        &partial_stages(&fx, &items, &ran),
        &fx.store(),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (r.failed(), r.blocked()),
        (1, 1),
        "scale bad failed; add_one bad blocked"
    );
    assert_eq!(r.stage("psum").unwrap().computed, 1);
    assert_eq!(
        r.stage("psum").unwrap().partial,
        vec![("all".to_string(), 1)]
    );
    let seen = ran.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].len(), 1);
    let (name, stage, reason) = &seen[0][0];
    assert_eq!(
        (name.as_str(), stage.as_str()),
        ("bad", "scale"),
        "the failure at the root"
    );
    assert!(reason.contains("negative input in bad"), "{reason}");
    let psum = || std::fs::read_to_string(fx.dir.path().join("data/out/psum.txt")).unwrap();
    assert_eq!(psum(), (2 + 4).to_string());

    // The bad item is retried (and says why); the same failure leaves the sum as it was.
    let plan = dry(&partial_stages(&fx, &items, &ran), &fx.store());
    let why = &plan.stage("scale").unwrap().node("bad").unwrap().reasons[0];
    assert!(
        why.starts_with("failed in the last run, retried: negative input"),
        "{why}"
    );
    let r = dag::run(
        &partial_stages(&fx, &items, &ran),
        &fx.store(),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(r.stage("psum").unwrap().cut_off, 1);
    assert_eq!(ran.lock().unwrap().len(), 1, "not recomputed");

    // --strict: no table without every item, and the run stops.
    let strict = RunOptions {
        strict: true,
        ..Default::default()
    };
    let r = dag::run(&partial_stages(&fx, &items, &ran), &fx.store(), &strict).unwrap();
    assert!(r.stopped);
    assert_eq!(r.stage("psum").unwrap().computed, 0);
    assert!(
        !fx.dir.path().join("data/out/psum.txt").exists(),
        "no stale sum left in data/out"
    );

    // Fixed: the sum includes it.
    fx.set("bad", 2);
    dag::run(
        &partial_stages(&fx, &items, &ran),
        &fx.store(),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(psum(), (2 + 3 + 4).to_string());
    assert!(ran.lock().unwrap().last().unwrap().is_empty());
}

#[test]
fn strict_stops_at_the_first_failure() {
    let fx = Fixture::new(&[("a", -1), ("b", 2), ("c", 3), ("d", 4)]);
    let (stages, c) = fx.stages(&["a", "b", "c", "d"], 1);
    let opts = RunOptions {
        strict: true,
        jobs: Some(1),
        ..Default::default()
    };
    let r = dag::run(&stages, &fx.store(), &opts).unwrap();
    assert!(r.stopped);
    let scale = r.stage("scale").unwrap();
    assert_eq!(
        (scale.failed.len(), scale.computed, scale.skipped),
        (1, 0, 3)
    );
    assert_eq!(c.ran(), (s(&["a"]), vec![], 0));
}

#[test]
fn data_out_is_one_publication_never_old_outputs_beside_new_ones() {
    let fx = Fixture::new(&[("a", 1), ("b", 2)]);
    let (stages, _) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(fx.published_sum(), 11 + 21);
    // b breaks: the all-or-nothing sum cannot be made, so the old one must not stay.
    fx.set("b", -5);
    let (stages, _) = fx.stages(&["a", "b"], 10);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    let p = r.publication.unwrap();
    assert!(p.left_out.contains_key("sum"), "{:?}", p.left_out);
    assert!(!fx.dir.path().join("data/out/sum.txt").exists());
    let out = pipe::dag::publish::current(&fx.dir.path().join("data")).unwrap();
    assert!(
        out.left_out["sum"].contains("blocked"),
        "{:?}",
        out.left_out
    );
    fx.set("b", 2);
    let (stages, _) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(fx.published_sum(), 11 + 21);
}

#[test]
fn each_config_keeps_its_own_record_and_its_out_ownership_is_noticed() {
    let fx = Fixture::new(&[("a", 1), ("b", 2)]);
    let full = dag::ConfigId::new(&fx.dir.path().join("full.toml"), "h1");
    let trial = dag::ConfigId::new(&fx.dir.path().join("trial.toml"), "h2");
    let opts = |c: &dag::ConfigId| RunOptions {
        config: c.clone(),
        ..Default::default()
    };
    let (stages, _) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &opts(&full)).unwrap();
    let (stages, _) = fx.stages(&["a"], 10);
    let r = dag::run(&stages, &fx.store(), &opts(&trial)).unwrap();
    let replaced = r.publication.unwrap().replaced_owner.unwrap();
    assert_eq!(
        replaced.0, full.path,
        "the run says whose outputs it replaced"
    );
    let records = dag::record::Record::all(&fx.dir.path().join("data")).unwrap();
    assert_eq!(records.len(), 2);
    let full_rec = dag::record::Record::load(&fx.dir.path().join("data"), &full).unwrap();
    assert_eq!(
        full_rec.stages["scale"].len(),
        2,
        "the trial did not overwrite the full record"
    );
    // The full config's plan is fresh, but its data/out is not its own any more.
    let (stages, _) = fx.stages(&["a", "b"], 10);
    let plan = dag::run(
        &stages,
        &fx.store(),
        &RunOptions {
            dry_run: true,
            ..opts(&full)
        },
    )
    .unwrap()
    .plan
    .unwrap();
    assert!(plan.is_fresh());
    let desired = dag::desired_from_plan(&stages, &plan).unwrap();
    let cmp = dag::publish::compare(&fx.dir.path().join("data"), &desired, &full);
    assert_eq!(cmp.other_owner.unwrap().0, trial.path);
    let r = dag::run(&stages, &fx.store(), &opts(&full)).unwrap();
    assert_eq!(r.computed(), 0);
    assert_eq!(
        fx.published_sum(),
        11 + 21,
        "republished without recomputing"
    );
}

/// The key of pipe before content hashes (record format 1): upstream inputs
/// by their node key.
fn v1_key(stage: &str, version: u32, params: &str, inputs: &[(String, dag::Key)]) -> dag::Key {
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"pipe-node-v1");
    field(stage.as_bytes());
    field(&version.to_le_bytes());
    field(params.as_bytes());
    for (name, key) in inputs {
        field(name.as_bytes());
        field(&key.0);
    }
    dag::Key(*h.finalize().as_bytes())
}

#[test]
fn a_store_from_before_content_hashes_is_adopted_not_recomputed() {
    let fx = Fixture::new(&[("a", 1), ("b", 2)]);
    let (stages, _) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    // Rewrite the store as pipe 84a1424 left it: `<v1 key>.<ext>` files and a
    // format-1 pipe.lock; no run records, no publication.
    let data = fx.dir.path().join("data");
    let plan = dry(&stages, &fx.store());
    let mut v1: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    let mut v1_keys: std::collections::HashMap<(String, String), dag::Key> = Default::default();
    for sp in &plan.stages {
        let mut nodes = serde_json::Map::new();
        for pn in &sp.nodes {
            let n = &pn.node;
            let inputs: Vec<(String, dag::Key)> = n
                .inputs
                .iter()
                .map(|i| match i.stage {
                    None => (i.name.clone(), i.hash),
                    Some(up) => {
                        // Toy inputs are named after the upstream item (or "scaled").
                        let item = if i.name == "scaled" {
                            n.item.clone()
                        } else {
                            i.name.clone()
                        };
                        (i.name.clone(), v1_keys[&(up.name.to_string(), item)])
                    }
                })
                .collect();
            let params = serde_json::to_string(&n.params).unwrap();
            let key = v1_key(n.stage, n.version, &params, &inputs);
            v1_keys.insert((n.stage.to_string(), n.item.clone()), key);
            let dir = data.join("store").join(n.stage);
            std::fs::rename(
                dir.join(n.path.file_name().unwrap()),
                dir.join(format!("{key}.txt")),
            )
            .unwrap();
            nodes.insert(
                n.item.clone(),
                json!({"key": key, "version": n.version, "params": n.params, "inputs": inputs, "file": format!("{key}.txt")}),
            );
        }
        v1.insert(sp.name.to_string(), serde_json::Value::Object(nodes));
    }
    std::fs::write(
        data.join("pipe.lock"),
        serde_json::to_vec(&json!({"format": 1, "stages": v1})).unwrap(),
    )
    .unwrap();
    std::fs::remove_dir_all(data.join("runs")).unwrap();
    let (stages, c) = fx.stages(&["a", "b"], 10);
    let r = dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(c.ran(), (vec![], vec![], 0), "nothing recomputed");
    assert_eq!(r.plan.unwrap().adopted, 5);
    assert_eq!(fx.published_sum(), 11 + 21);
    assert!(dry(&fx.stages(&["a", "b"], 10).0, &fx.store()).is_fresh());
    // A changed input is still noticed through an adopted artifact.
    fx.set("a", 5);
    let (stages, c) = fx.stages(&["a", "b"], 10);
    dag::run(&stages, &fx.store(), &RunOptions::default()).unwrap();
    assert_eq!(c.ran(), (s(&["a"]), s(&["a"]), 1));
    assert_eq!(fx.published_sum(), 51 + 21);
}
