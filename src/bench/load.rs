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

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`
/// (fields 14 and 15, in USER_HZ = 100 ticks per second on Linux); `None` elsewhere.
pub fn process_cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Cores busy since `cpu_start` (from [`process_cpu_secs`]) over `wall_s` seconds;
/// `None` under half a second of wall time, where the 10 ms tick makes it meaningless.
pub fn cores_busy_since(cpu_start: Option<f64>, wall_s: f64) -> Option<f64> {
    if wall_s < 0.5 {
        return None;
    }
    Some((process_cpu_secs()? - cpu_start?) / wall_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let Some(before) = process_cpu_secs() else {
            return; // not Linux
        };
        // Spin until 50 ms of CPU time have been used (a loaded machine gives
        // this thread less than its wall time), or give up after 10 s.
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after < before + 0.05 && t0.elapsed().as_secs_f64() < 10.0 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = process_cpu_secs().unwrap();
        }
        assert!(after >= before + 0.05, "{before} → {after}");
        assert!(current().is_some_and(|l| l.cpus >= 1));
        assert_eq!(cores_busy_since(Some(before), 0.1), None);
    }
}
