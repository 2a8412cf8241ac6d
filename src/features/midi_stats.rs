//! Symbolic statistics of one performance MIDI (`encoder = "midi_stats"`,
//! 39 values, names from [`midi_stats_names`]): the E3 comparison's
//! symbolic side, computed from the same performance MIDI the audio is
//! rendered from.
//!
//! Notes, onset groups (chords within 50 ms) and the pedal curve are as
//! [`super::notes`] reads them. The span is `[t0, t1]` = first onset to last
//! key release, `T = t1 − t0` (rates are 0 when `T = 0`). "mean, std" are
//! over the listed items with the population std; percentiles interpolate
//! linearly at rank q·(n−1) (numpy's default); a statistic of no items is 0.
//!
//! | name | definition |
//! |---|---|
//! | n_notes | number of notes |
//! | span_s | T |
//! | notes_per_s | n_notes / T |
//! | onsets_per_s | onset groups / T (tempo proxy) |
//! | chord_size_mean | n_notes / onset groups |
//! | chord_spread_mean_s | mean over groups of ≥ 2 notes of (last − first onset) |
//! | ioi_mean_s, ioi_median_s, ioi_std_s | inter-onset intervals between successive groups |
//! | ioi_cv | ioi_std_s / ioi_mean_s (timing variability) |
//! | duration_mean_s, duration_median_s, duration_std_s | key-down time (release − onset) per note |
//! | articulation_mean, articulation_median, articulation_std | per note not in the last group: duration / (next group's onset − the note's onset) |
//! | legato_fraction | share of those notes with articulation > 1 (key held past the next onset) |
//! | staccato_fraction | share of those notes with articulation < 0.5 |
//! | legato_overlap_mean_s | mean over those notes of max(0, release − next group's onset) |
//! | velocity_mean, velocity_std, velocity_min, velocity_max | note-on velocity (1–127) |
//! | velocity_range | max − min |
//! | velocity_p10, velocity_p50, velocity_p90 | percentiles |
//! | pedal_down_fraction | time in [t0, t1] with CC64 ≥ 64, / T |
//! | pedal_depth_mean | time-weighted mean of CC64/127 over [t0, t1] |
//! | pedal_changes_per_s | down↔up changes at times in [t0, t1] (against the state just before t0), / T |
//! | pedal_on_mean_s | mean length of the down intervals, clipped to [t0, t1] |
//! | polyphony_mean | time-weighted mean number of keys down over [t0, t1] (= Σ durations / T) |
//! | polyphony_max | most keys down at once (a release and an onset at the same instant do not overlap) |
//! | sounding_polyphony_mean | Σ (min(damper release, t1) − onset) / T, where a note sounds until its key is released with the pedal up, or else until the pedal next goes up |
//! | pitch_min, pitch_max, pitch_range, pitch_mean, pitch_std | MIDI note numbers (register and range) |

use anyhow::Result;
use std::path::Path;

use super::notes::NoteList;

/// Component names of [`midi_stats`], in order.
pub fn midi_stats_names() -> Vec<String> {
    [
        "n_notes",
        "span_s",
        "notes_per_s",
        "onsets_per_s",
        "chord_size_mean",
        "chord_spread_mean_s",
        "ioi_mean_s",
        "ioi_median_s",
        "ioi_std_s",
        "ioi_cv",
        "duration_mean_s",
        "duration_median_s",
        "duration_std_s",
        "articulation_mean",
        "articulation_median",
        "articulation_std",
        "legato_fraction",
        "staccato_fraction",
        "legato_overlap_mean_s",
        "velocity_mean",
        "velocity_std",
        "velocity_min",
        "velocity_max",
        "velocity_range",
        "velocity_p10",
        "velocity_p50",
        "velocity_p90",
        "pedal_down_fraction",
        "pedal_depth_mean",
        "pedal_changes_per_s",
        "pedal_on_mean_s",
        "polyphony_mean",
        "polyphony_max",
        "sounding_polyphony_mean",
        "pitch_min",
        "pitch_max",
        "pitch_range",
        "pitch_mean",
        "pitch_std",
    ]
    .map(String::from)
    .to_vec()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    mean(&v.iter().map(|x| (x - m).powi(2)).collect::<Vec<_>>()).sqrt()
}

/// numpy's default percentile (linear at rank q·(n−1)); 0 for no items.
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Pedal statistics over [t0, t1]: (down fraction, mean depth, changes, mean down interval).
fn pedal_stats(n: &NoteList, t0: f64, t1: f64) -> (f64, f64, f64, f64) {
    // Piecewise-constant value on [t0, t1]: the value in force at t0, then each change inside.
    let mut steps = vec![(t0, n.pedal_at(t0))];
    steps.extend(n.pedal.iter().filter(|&&(s, _)| s > t0 && s <= t1).copied());
    let (mut down_time, mut depth, mut intervals) = (0.0, 0.0, Vec::new());
    let mut run_start: Option<f64> = None;
    for (i, &(s, v)) in steps.iter().enumerate() {
        let end = steps.get(i + 1).map_or(t1, |&(e, _)| e);
        depth += (end - s) * f64::from(v) / 127.0;
        if v >= 64 {
            down_time += end - s;
            run_start.get_or_insert(s);
        } else if let Some(start) = run_start.take() {
            intervals.push(s - start);
        }
    }
    if let Some(start) = run_start {
        intervals.push(t1 - start);
    }
    // Changes of the down state at event times in [t0, t1], from the state before t0.
    let before = n.pedal[..n.pedal.partition_point(|&(s, _)| s < t0)]
        .last()
        .is_some_and(|&(_, v)| v >= 64);
    let mut state = before;
    let mut changes = 0usize;
    for &(_, v) in n.pedal.iter().filter(|&&(s, _)| s >= t0 && s <= t1) {
        if (v >= 64) != state {
            changes += 1;
            state = v >= 64;
        }
    }
    let t = t1 - t0;
    (
        ratio(down_time, t),
        ratio(depth, t),
        ratio(changes as f64, t),
        mean(&intervals),
    )
}

/// Most notes down at once: releases before onsets at equal times.
fn max_polyphony(n: &NoteList) -> usize {
    let mut edges: Vec<(f64, i32)> = n
        .notes
        .iter()
        .filter(|x| x.offset > x.onset)
        .flat_map(|x| [(x.onset, 1), (x.offset, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, d) in edges {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

/// The 39 statistics of [`midi_stats_names`] for one note list.
pub fn note_stats(n: &NoteList) -> Vec<f64> {
    let (t0, t1) = n.span();
    let t = t1 - t0;
    let notes = &n.notes;
    let onsets = n.group_onsets();
    let iois: Vec<f64> = onsets.windows(2).map(|w| w[1] - w[0]).collect();
    let spreads: Vec<f64> = n
        .groups
        .iter()
        .enumerate()
        .filter_map(|(g, &start)| {
            let end = n.groups.get(g + 1).copied().unwrap_or(notes.len());
            (end - start >= 2).then(|| notes[end - 1].onset - notes[start].onset)
        })
        .collect();
    let durations: Vec<f64> = notes.iter().map(|x| x.duration()).collect();
    let (mut artic, mut overlap) = (Vec::new(), Vec::new());
    for (x, next) in notes.iter().zip(n.next_group_onsets()) {
        if let Some(next) = next {
            artic.push(x.duration() / (next - x.onset));
            overlap.push((x.offset - next).max(0.0));
        }
    }
    let share = |f: fn(f64) -> bool| {
        ratio(
            artic.iter().filter(|&&a| f(a)).count() as f64,
            artic.len() as f64,
        )
    };
    let vel: Vec<f64> = notes.iter().map(|x| f64::from(x.velocity)).collect();
    let pitch: Vec<f64> = notes.iter().map(|x| f64::from(x.pitch)).collect();
    let vmax = vel.iter().fold(f64::MIN, |a, &b| a.max(b));
    let vmin = vel.iter().fold(f64::MAX, |a, &b| a.min(b));
    let pmax = pitch.iter().fold(f64::MIN, |a, &b| a.max(b));
    let pmin = pitch.iter().fold(f64::MAX, |a, &b| a.min(b));
    let (down, depth, changes, on_mean) = pedal_stats(n, t0, t1);
    let sounding: f64 = notes
        .iter()
        .map(|x| n.damper_release(x.offset).min(t1) - x.onset)
        .sum();
    let ioi_mean = mean(&iois);
    vec![
        notes.len() as f64,
        t,
        ratio(notes.len() as f64, t),
        ratio(onsets.len() as f64, t),
        notes.len() as f64 / onsets.len() as f64,
        mean(&spreads),
        ioi_mean,
        percentile(&iois, 0.5),
        std(&iois),
        ratio(std(&iois), ioi_mean),
        mean(&durations),
        percentile(&durations, 0.5),
        std(&durations),
        mean(&artic),
        percentile(&artic, 0.5),
        std(&artic),
        share(|a| a > 1.0),
        share(|a| a < 0.5),
        mean(&overlap),
        mean(&vel),
        std(&vel),
        vmin,
        vmax,
        vmax - vmin,
        percentile(&vel, 0.1),
        percentile(&vel, 0.5),
        percentile(&vel, 0.9),
        down,
        depth,
        changes,
        on_mean,
        ratio(durations.iter().sum(), t),
        max_polyphony(n) as f64,
        ratio(sounding, t),
        pmin,
        pmax,
        pmax - pmin,
        mean(&pitch),
        std(&pitch),
    ]
}

/// The statistics of the performance MIDI at `path`, as f32.
pub fn midi_stats(path: &Path) -> Result<Vec<f32>> {
    let n = NoteList::read(path)?;
    Ok(note_stats(&n).iter().map(|&v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::notes::tests::{Ev, write_midi};

    fn get(v: &[f64], name: &str) -> f64 {
        v[midi_stats_names().iter().position(|n| n == name).unwrap()]
    }

    /// 120 bpm, 480 ticks per quarter: 1 tick = 1/960 s; 96 ticks = 0.1 s.
    /// - t=0.0: C4 (60, vel 40) + E4 (64, vel 60, struck 20 ms later), both held 0.4 s
    /// - t=0.5: G4 (67, vel 80) held 0.25 s (staccato-ish)
    /// - t=1.0: C5 (72, vel 100) held 1.0 s, released at 2.0 (t1)
    ///
    /// Pedal: down (127) at 0.3, up (0) at 0.6, half (64) at 1.5 → down to the end.
    fn example(dir: &Path) -> NoteList {
        let p = dir.join("ex.mid");
        let s = |sec: f64| (sec * 960.0).round() as u32;
        write_midi(
            &p,
            &[
                (s(0.0), Ev::On(60, 40)),
                (s(0.02), Ev::On(64, 60)),
                (s(0.3), Ev::Pedal(127)),
                (s(0.4), Ev::Off(60)),
                (s(0.42), Ev::Off(64)),
                (s(0.5), Ev::On(67, 80)),
                (s(0.6), Ev::Pedal(0)),
                (s(0.75), Ev::Off(67)),
                (s(1.0), Ev::On(72, 100)),
                (s(1.5), Ev::Pedal(64)),
                (s(2.0), Ev::Off(72)),
            ],
        );
        NoteList::read(&p).unwrap()
    }

    #[test]
    fn statistics_of_a_small_midi_file_match_hand_computation() {
        let dir = tempfile::tempdir().unwrap();
        let n = example(dir.path());
        let v = note_stats(&n);
        assert_eq!(v.len(), midi_stats_names().len());
        // Tick rounding: times are multiples of 1/960 s; compare to 1e-3 s.
        let close = |name: &str, want: f64| {
            let got = get(&v, name);
            assert!((got - want).abs() < 2e-3, "{name}: {got} vs {want}");
        };
        close("n_notes", 4.0);
        close("span_s", 2.0);
        close("notes_per_s", 2.0);
        // Groups: {C4, E4} at 0.0, {G4} at 0.5, {C5} at 1.0.
        close("onsets_per_s", 1.5);
        close("chord_size_mean", 4.0 / 3.0);
        close("chord_spread_mean_s", 0.02);
        // IOIs 0.5, 0.5.
        close("ioi_mean_s", 0.5);
        close("ioi_median_s", 0.5);
        close("ioi_std_s", 0.0);
        close("ioi_cv", 0.0);
        // Durations 0.4, 0.4, 0.25, 1.0: mean 0.5125, median 0.4.
        close("duration_mean_s", 0.5125);
        close("duration_median_s", 0.4);
        let d: [f64; 4] = [0.4, 0.4, 0.25, 1.0];
        let var = d.iter().map(|x| (x - 0.5125f64).powi(2)).sum::<f64>() / 4.0;
        close("duration_std_s", var.sqrt());
        // Articulation (C5 is in the last group): C4 0.4/0.5 = 0.8,
        // E4 0.4/0.48 = 0.8333, G4 0.25/0.5 = 0.5.
        let a = [0.8, 0.4 / 0.48, 0.5];
        let am = a.iter().sum::<f64>() / 3.0;
        close("articulation_mean", am);
        close("articulation_median", 0.8);
        let astd = (a.iter().map(|x| (x - am).powi(2)).sum::<f64>() / 3.0).sqrt();
        close("articulation_std", astd);
        close("legato_fraction", 0.0);
        close("staccato_fraction", 0.0); // 0.5 is not < 0.5
        close("legato_overlap_mean_s", 0.0);
        close("velocity_mean", 70.0);
        close("velocity_std", 500f64.sqrt()); // deviations −30, −10, 10, 30
        close("velocity_min", 40.0);
        close("velocity_max", 100.0);
        close("velocity_range", 60.0);
        close("velocity_p10", 46.0); // rank 0.3 between 40 and 60
        close("velocity_p50", 70.0);
        close("velocity_p90", 94.0); // rank 2.7 between 80 and 100
        // Pedal down [0.3, 0.6) and [1.5, 2.0]: 0.8 s of 2 s.
        close("pedal_down_fraction", 0.4);
        // Depth: 0.3 s at 1.0 + 0.5 s at 64/127.
        close("pedal_depth_mean", (0.3 + 0.5 * 64.0 / 127.0) / 2.0);
        close("pedal_changes_per_s", 1.5); // down, up, down
        close("pedal_on_mean_s", 0.4); // (0.3 + 0.5) / 2
        close("polyphony_mean", 2.05 / 2.0);
        close("polyphony_max", 2.0);
        // Sounding: C4 released at 0.4 with the pedal down → sounds to 0.6;
        // E4 likewise to 0.6 (from 0.02); G4 0.5–0.75; C5 1.0–2.0 (capped at t1).
        close("sounding_polyphony_mean", (0.6 + 0.58 + 0.25 + 1.0) / 2.0);
        close("pitch_min", 60.0);
        close("pitch_max", 72.0);
        close("pitch_range", 12.0);
        close("pitch_mean", 65.75);
        let p = [60.0f64, 64.0, 67.0, 72.0];
        close(
            "pitch_std",
            (p.iter().map(|x| (x - 65.75).powi(2)).sum::<f64>() / 4.0).sqrt(),
        );
    }

    #[test]
    fn legato_and_staccato_shares_and_pedal_held_from_before_the_first_note() {
        // Pedal already down before the first note and never released; three
        // overlapping notes (legato) then a staccato one.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.mid");
        let s = |sec: f64| (sec * 960.0).round() as u32;
        write_midi(
            &p,
            &[
                (0, Ev::Pedal(127)),
                (s(0.5), Ev::On(60, 50)),
                (s(1.0), Ev::On(62, 50)),
                (s(1.1), Ev::Off(60)),
                (s(1.5), Ev::On(64, 50)),
                (s(1.6), Ev::Off(62)),
                (s(2.0), Ev::Off(64)),
                (s(2.0), Ev::On(65, 50)),
                (s(2.1), Ev::Off(65)),
            ],
        );
        let v = note_stats(&NoteList::read(&p).unwrap());
        let close = |name: &str, want: f64| {
            let got = get(&v, name);
            assert!((got - want).abs() < 2e-3, "{name}: {got} vs {want}");
        };
        // Articulation: 0.6/0.5, 0.6/0.5, 0.5/0.5 → two legato of three.
        close("legato_fraction", 2.0 / 3.0);
        close("staccato_fraction", 0.0);
        close("legato_overlap_mean_s", (0.1 + 0.1 + 0.0) / 3.0);
        // Down over the whole span [0.5, 2.1], no change inside it.
        close("pedal_down_fraction", 1.0);
        close("pedal_changes_per_s", 0.0);
        close("pedal_on_mean_s", 1.6);
        // Release at 2.0 and onset at 2.0 do not overlap; 60+62 overlap 1.0–1.1.
        close("polyphony_max", 2.0);
        // Every note sounds to the end (pedal never up): Σ (2.1 − onset) / 1.6.
        close("sounding_polyphony_mean", (1.6 + 1.1 + 0.6 + 0.1) / 1.6);
    }

    #[test]
    fn every_percepiano_performance_agrees_with_the_manifest() {
        // data/percepiano/manifest.csv was computed with mido, independently of
        // this reader: note counts must be equal and spans (first onset to last
        // note-off, stored to the millisecond) within 1 ms, for all 1202 files.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/percepiano");
        let mut rdr = csv::Reader::from_path(root.join("manifest.csv")).unwrap();
        let h = rdr.headers().unwrap().clone();
        let col = |name: &str| h.iter().position(|x| x == name).unwrap();
        let (id_c, n_c, span_c) = (col("segment_id"), col("n_notes"), col("note_span_s"));
        let mut files = 0;
        for r in rdr.records() {
            let r = r.unwrap();
            let path = root.join(format!("midi/performance/{}.mid", &r[id_c]));
            let v = note_stats(&NoteList::read(&path).unwrap());
            assert!(v.iter().all(|x| x.is_finite()), "{}: {v:?}", &r[id_c]);
            assert_eq!(
                get(&v, "n_notes"),
                r[n_c].parse::<f64>().unwrap(),
                "{}",
                &r[id_c]
            );
            let span: f64 = r[span_c].parse().unwrap();
            assert!((get(&v, "span_s") - span).abs() < 1e-3, "{}", &r[id_c]);
            files += 1;
        }
        assert_eq!(files, 1202);
    }

    #[test]
    fn names_are_unique() {
        let n = midi_stats_names();
        let set: std::collections::HashSet<_> = n.iter().collect();
        assert_eq!((n.len(), set.len()), (39, 39));
    }
}
