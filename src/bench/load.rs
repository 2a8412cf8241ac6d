//! The machine's load, printed next to every timing (the bench machines are shared).

use serde::Serialize;

/// 1-, 5- and 15-minute load averages and the number of CPUs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Load {
    pub avg1: f64,
    pub avg5: f64,
    pub avg15: f64,
    pub cpus: usize,
}

/// Read `/proc/loadavg`; `None` where there is none (not Linux).
pub fn current() -> Option<Load> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    let (avg1, avg5, avg15) = (it.next()??, it.next()??, it.next()??);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(Load {
        avg1,
        avg5,
        avg15,
        cpus,
    })
}
