//! Human-readable rendering of a [`Report`].

use super::load::Load;
use super::run::{OpTime, Report};
use std::fmt::Write;

fn load_line(before: Option<Load>, after: Option<Load>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!(
            "1-min load average {:.2} before, {:.2} after the timed passes ({} CPUs; shared machines vary)",
            b.avg1, a.avg1, a.cpus
        ),
        _ => "load average unavailable on this system".into(),
    }
}

fn ops_line(ops: &[OpTime]) -> String {
    ops.iter()
        .map(|o| {
            format!(
                "{} {:.1} ms ({:.0}%, {} calls)",
                o.op,
                o.ms,
                o.share * 100.0,
                o.calls
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// `v` with about three significant digits (GFLOP of a tiny test model are < 0.1).
fn sig(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3e}"),
    }
}

/// The speed against the audio's duration: a speed-up ("6.79× faster than
/// real time") and the real-time factor as the field defines it, compute
/// time over audio time (0.147; below 1 is faster than real time).
pub fn speed(audio_over_compute: f64) -> String {
    let rtf = 1.0 / audio_over_compute;
    let digits = |x: f64| match x {
        x if x >= 100.0 => format!("{x:.0}"),
        x if x >= 10.0 => format!("{x:.1}"),
        x if x >= 1.0 => format!("{x:.2}"),
        x if x >= 0.01 => format!("{x:.3}"),
        x => format!("{x:.2e}"),
    };
    if audio_over_compute >= 1.0 {
        format!(
            "{:.2}× faster than real time (RTF {} = compute / audio)",
            audio_over_compute,
            digits(rtf)
        )
    } else {
        format!(
            "{:.2}× slower than real time (RTF {} = compute / audio)",
            rtf,
            digits(rtf)
        )
    }
}

/// Several lines describing one (backend, model) result.
pub fn render(r: &Report) -> String {
    let f = &r.flops;
    let g = |v: u64| v as f64 / 1e9;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} on {}: {} s clip at {} samples ({} frames, {} window{}), median of {} after 1 warm-up pass",
        r.model,
        r.backend,
        r.seconds,
        r.samples,
        r.frames,
        r.windows,
        if r.windows == 1 { "" } else { "s" },
        r.repeat
    );
    let runs: Vec<String> = r.runs_ms.iter().map(|m| format!("{m:.1}")).collect();
    let _ = writeln!(
        s,
        "  time     {:.1} ms per clip (runs: {} ms): {}",
        r.median_ms,
        runs.join(", "),
        speed(r.speedup)
    );
    let parts: Vec<String> = [
        ("conv stack", f.conv_stack),
        ("projection", f.projection),
        ("pos conv", f.pos_conv),
        ("conv modules", f.conv_module),
        ("linears", f.linears),
        ("attention", f.attention),
    ]
    .iter()
    .filter(|(_, v)| *v > 0)
    .map(|(name, v)| format!("{name} {}", sig(g(*v))))
    .collect();
    let _ = writeln!(
        s,
        "  work     {} GFLOP per clip = {} (counted; norms/activations/softmax not counted)",
        sig(r.gflop_per_clip),
        parts.join(" + ")
    );
    let p = &r.peak;
    let _ = writeln!(
        s,
        "  speed    {:.1} GFLOP/s = {:.0}% of the measured peak {:.1} GFLOP/s (linear {}×{}×{}, best of {})",
        r.gflops,
        r.peak_share * 100.0,
        p.gflops,
        p.m,
        p.k,
        p.n,
        p.runs
    );
    if let (Some(share), Some(c), Some(pc)) = (r.peak_share_per_core, r.cores_busy, p.cores_busy) {
        let _ = writeln!(
            s,
            "  per core {:.0}% of the peak per busy core (passes got {c:.2} cores, the peak runs {pc:.2})",
            share * 100.0
        );
    }
    if let Some(ms) = r.front_end_ms {
        let _ = writeln!(
            s,
            "  front    {ms:.1} ms per clip of that is the host mel front end (f64 STFT on one core, {:.1}% of the clip's time)",
            100.0 * ms / r.median_ms
        );
    }
    let _ = writeln!(s, "  top ops  {}", ops_line(&r.top_ops));
    let _ = writeln!(s, "  hottest  {}", ops_line(&r.top_shapes));
    let _ = writeln!(
        s,
        "  setup    {:.2} s random init + prepare (not counted)",
        r.prepare_s
    );
    let _ = writeln!(s, "  load     {}", load_line(r.load_before, r.load_after));
    if let Some(c) = r.cores_busy {
        let _ = writeln!(
            s,
            "  cores    the process used {c:.2} CPU-seconds per wall second during the timed passes"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_is_a_speed_up_and_rtf_is_compute_over_audio() {
        assert_eq!(
            speed(6.79),
            "6.79× faster than real time (RTF 0.147 = compute / audio)"
        );
        assert_eq!(
            speed(0.05),
            "20.00× slower than real time (RTF 20.0 = compute / audio)"
        );
    }
}
