//! The performance as a note sequence (`encoder = "midi_notes"`, `pooling =
//! "frames"`): one row per note in (onset, pitch) order, the first
//! `max_frames` notes, for sequence heads. Stored like an encoder's `frames`
//! set (`n_frames` = notes, `frames` = rows of [`NOTE_COLUMNS`] values).
//!
//! | column | definition |
//! |---|---|
//! | onset_s | onset − first onset of the performance |
//! | duration_s | key-down time (release − onset) |
//! | ioi_s | onset − the previous note's onset (0 for the first note; 0 within a chord) |
//! | pitch | MIDI note number / 127 |
//! | velocity | note-on velocity / 127 |
//! | pedal | sustain-pedal CC64 / 127 in force at the onset (down ⇔ ≥ 64/127) |
//! | sounding_s | from onset until the damper falls: the key release with the pedal up, or else the next pedal release (capped at the last key release) |
//!
//! Notes and pedal are read by [`super::notes`].

use anyhow::{Result, ensure};
use std::path::Path;

use super::notes::NoteList;

/// Values per note (the width of one frame).
pub const NOTE_COLUMNS: usize = 7;

/// Column names of one row, in order.
pub fn midi_notes_names() -> Vec<String> {
    [
        "onset_s",
        "duration_s",
        "ioi_s",
        "pitch",
        "velocity",
        "pedal",
        "sounding_s",
    ]
    .map(String::from)
    .to_vec()
}

/// Rows of the first `max_frames` notes, concatenated (`[notes × NOTE_COLUMNS]`).
pub fn note_rows(n: &NoteList, max_frames: usize) -> Vec<f32> {
    let (t0, t1) = n.span();
    let mut out = Vec::new();
    let mut prev = t0;
    for x in n.notes.iter().take(max_frames) {
        let row = [
            x.onset - t0,
            x.duration(),
            x.onset - prev,
            f64::from(x.pitch) / 127.0,
            f64::from(x.velocity) / 127.0,
            f64::from(n.pedal_at(x.onset)) / 127.0,
            n.damper_release(x.offset).min(t1) - x.onset,
        ];
        out.extend(row.iter().map(|&v| v as f32));
        prev = x.onset;
    }
    out
}

/// The note sequence of the performance MIDI at `path`.
pub fn midi_notes(path: &Path, max_frames: usize) -> Result<Vec<f32>> {
    ensure!(max_frames >= 1, "max_frames must be at least 1");
    Ok(note_rows(&NoteList::read(path)?, max_frames))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::notes::tests::{Ev, write_midi};

    #[test]
    fn one_row_per_note_in_onset_order_capped_by_max_frames() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.mid");
        // 1 tick = 1/960 s. E4 at 0.5 s, a C4+G4 chord at 1.0 s with the pedal
        // half down (80) from 0.9 s to 1.75 s.
        write_midi(
            &p,
            &[
                (480, Ev::On(64, 127)),
                (720, Ev::Off(64)),
                (864, Ev::Pedal(80)),
                (960, Ev::On(67, 64)),
                (960, Ev::On(60, 32)),
                (1200, Ev::Off(60)),
                (1440, Ev::Off(67)),
                (1680, Ev::Pedal(0)),
            ],
        );
        let got = midi_notes(&p, 1000).unwrap();
        assert_eq!(got.len(), 3 * NOTE_COLUMNS);
        let want: [[f64; NOTE_COLUMNS]; 3] = [
            [0.0, 0.25, 0.0, 64.0 / 127.0, 1.0, 0.0, 0.25],
            // C4 sorts before G4 at the same onset; released at 1.25 s under the
            // pedal, it would sound until the pedal lifts at 1.75 s: capped at
            // the last key release (G4, 1.5 s).
            [
                0.5,
                0.25,
                0.5,
                60.0 / 127.0,
                32.0 / 127.0,
                80.0 / 127.0,
                0.5,
            ],
            [0.5, 0.5, 0.0, 67.0 / 127.0, 64.0 / 127.0, 80.0 / 127.0, 0.5],
        ];
        for (r, row) in want.iter().enumerate() {
            for (c, w) in row.iter().enumerate() {
                let g = f64::from(got[r * NOTE_COLUMNS + c]);
                assert!(
                    (g - w).abs() < 1e-6,
                    "row {r} {}: {g} vs {w}",
                    midi_notes_names()[c]
                );
            }
        }
        assert_eq!(midi_notes(&p, 2).unwrap(), got[..2 * NOTE_COLUMNS]);
        assert_eq!(midi_notes_names().len(), NOTE_COLUMNS);
    }
}
