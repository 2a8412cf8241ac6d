//! Times `train_cv` on a problem the size of the study's: 1,200 clips,
//! D = 1536 (MuQ mean+std), 4 piece-split folds, the study's head defaults.
//!
//! `cargo run --release --example head_timing [max_epochs] [patience]`

use std::time::Instant;

use pipe::dims::N_DIMS;
use pipe::head::{CvData, HeadConfig, train_cv};
use pipe::metrics::{BootstrapConfig, evaluate};
use pipe::rng::Rng;

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let (n, d, pieces) = (1200usize, 1536usize, 200usize);
    let mut rng = Rng::new(1, 0);
    let features: Vec<f32> = (0..n * d).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
    // Labels depend on the first 32 features plus noise, in the label range.
    let a: Vec<f32> = (0..32 * N_DIMS)
        .map(|_| rng.uniform_f32() * 2.0 - 1.0)
        .collect();
    let mut labels = Vec::with_capacity(n * N_DIMS);
    for i in 0..n {
        for k in 0..N_DIMS {
            let z: f32 = (0..32)
                .map(|j| a[j * N_DIMS + k] * features[i * d + j])
                .sum();
            labels.push(0.55 + 0.05 * z + 0.05 * (rng.uniform_f32() - 0.5));
        }
    }
    let groups: Vec<usize> = (0..n).map(|i| i % pieces).collect();
    let folds: Vec<usize> = groups.iter().map(|g| g % 4).collect();
    let mut cfg = HeadConfig::default();
    if let Some(&e) = args.first() {
        cfg.max_epochs = e;
    }
    if let Some(&p) = args.get(1) {
        cfg.patience = p;
    }
    let data = CvData {
        features: &features,
        d_in: d,
        labels: &labels,
        folds: &folds,
        groups: &groups,
    };
    let t = Instant::now();
    let out = train_cv(&cfg, &data)?;
    let wall = t.elapsed().as_secs_f64();
    for f in &out.folds {
        println!(
            "fold {}: {} train / {} val / {} test clips, {} epochs (best {}), {:.2} s",
            f.fold,
            f.n_train,
            f.n_val,
            f.n_test,
            f.fit.epochs_run,
            f.fit.best_epoch,
            f.fit.train_seconds
        );
    }
    let epochs: usize = out.folds.iter().map(|f| f.fit.epochs_run).sum();
    println!(
        "4 folds, n={n}, D={d}: {wall:.2} s wall on {} threads, {:.1} ms per epoch-fold",
        rayon::current_num_threads(),
        1e3 * out.folds.iter().map(|f| f.fit.train_seconds).sum::<f64>() / epochs as f64
    );
    let t = Instant::now();
    let ev = evaluate(
        &labels,
        &out.predictions,
        N_DIMS,
        &folds,
        None,
        &BootstrapConfig::default(),
    )?;
    println!(
        "out-of-fold R² {:.4} [{:.4}, {:.4}] (95% bootstrap, {} resamples, {:.2} s), dispersion {:.3}",
        ev.r2,
        ev.r2_ci.lo,
        ev.r2_ci.hi,
        ev.r2_ci.resamples_used,
        t.elapsed().as_secs_f64(),
        ev.dispersion
    );
    Ok(())
}
