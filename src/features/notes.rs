//! A performance as notes and a sustain-pedal curve, read from its MIDI file
//! with the one MIDI reader ([`crate::audio::render::read_performance`]), for
//! the symbolic feature sets ([`super::midi_stats`], [`super::midi_notes`]).
//!
//! Notes: a note-on (velocity > 0) opens key (channel, pitch); a note-off (or a
//! note-on with velocity 0) closes it. A note-on on a key that is already down
//! closes the sounding note there (a re-strike: one note per key at a time, as
//! on a piano). A key still down at the end closes at the performance's end.
//! Notes are sorted by (onset, pitch). Times are seconds from the file's start.
//!
//! Pedal: the sustain controller (CC64, any channel) as a step function,
//! 0 before its first event; "down" means a value ≥ 64 (the GM convention
//! the renderer uses).
//!
//! Onset groups (chords): notes sorted by onset are grouped greedily, a new
//! group starting at the first note more than [`CHORD_WINDOW_S`] after the
//! current group's first onset. A group's onset is its first note's.

use anyhow::{Result, ensure};
use std::collections::HashMap;
use std::path::Path;

use crate::audio::render::{CC_SUSTAIN, Performance, read_performance};

/// Notes whose onsets lie within 50 ms of a group's first onset form one
/// onset group (human chord asynchrony is typically under 30–50 ms).
pub const CHORD_WINDOW_S: f64 = 0.05;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Note {
    pub onset: f64,
    /// Key release (not extended by the pedal).
    pub offset: f64,
    pub pitch: u8,
    pub velocity: u8,
}

impl Note {
    pub fn duration(&self) -> f64 {
        self.offset - self.onset
    }
}

/// A performance's notes and sustain pedal.
#[derive(Clone, Debug)]
pub struct NoteList {
    /// Sorted by (onset, pitch).
    pub notes: Vec<Note>,
    /// CC64 changes (seconds, value), in time order.
    pub pedal: Vec<(f64, u8)>,
    /// Index of each onset group's first note in `notes`; `groups[0] == 0`.
    pub groups: Vec<usize>,
}

impl NoteList {
    /// Notes and pedal of the MIDI file at `path` (errors name the file).
    pub fn read(path: &Path) -> Result<NoteList> {
        let perf = read_performance(path)?;
        NoteList::from_performance(&perf)
            .map_err(|e| e.context(format!("reading notes of {}", path.display())))
    }

    pub fn from_performance(perf: &Performance) -> Result<NoteList> {
        let mut open: HashMap<(u8, u8), (f64, u8)> = HashMap::new();
        let mut notes = Vec::new();
        let mut pedal = Vec::new();
        for e in &perf.events {
            let key = (e.channel, e.data1);
            match e.command {
                0x90 if e.data2 > 0 => {
                    if let Some((onset, velocity)) = open.insert(key, (e.seconds, e.data2)) {
                        notes.push(Note {
                            onset,
                            offset: e.seconds,
                            pitch: e.data1,
                            velocity,
                        });
                    }
                }
                0x80 | 0x90 => {
                    if let Some((onset, velocity)) = open.remove(&key) {
                        notes.push(Note {
                            onset,
                            offset: e.seconds,
                            pitch: e.data1,
                            velocity,
                        });
                    }
                }
                0xB0 if e.data1 == CC_SUSTAIN => pedal.push((e.seconds, e.data2)),
                _ => {}
            }
        }
        for ((_, pitch), (onset, velocity)) in open {
            notes.push(Note {
                onset,
                offset: perf.end_seconds.max(onset),
                pitch,
                velocity,
            });
        }
        ensure!(!notes.is_empty(), "MIDI file has no notes");
        notes.sort_by(|a, b| a.onset.total_cmp(&b.onset).then(a.pitch.cmp(&b.pitch)));
        let mut groups = vec![0];
        for (i, n) in notes.iter().enumerate().skip(1) {
            if n.onset - notes[*groups.last().expect("non-empty")].onset > CHORD_WINDOW_S {
                groups.push(i);
            }
        }
        Ok(NoteList {
            notes,
            pedal,
            groups,
        })
    }

    /// First onset and last key release: the span the statistics cover.
    pub fn span(&self) -> (f64, f64) {
        let t0 = self.notes[0].onset;
        let t1 = self.notes.iter().fold(t0, |m, n| m.max(n.offset));
        (t0, t1)
    }

    /// Onset of each group, in order.
    pub fn group_onsets(&self) -> Vec<f64> {
        self.groups.iter().map(|&i| self.notes[i].onset).collect()
    }

    /// For each note, the onset of the next group (`None` in the last group).
    pub fn next_group_onsets(&self) -> Vec<Option<f64>> {
        let onsets = self.group_onsets();
        let mut out = Vec::with_capacity(self.notes.len());
        for (g, &start) in self.groups.iter().enumerate() {
            let end = self.groups.get(g + 1).copied().unwrap_or(self.notes.len());
            out.extend((start..end).map(|_| onsets.get(g + 1).copied()));
        }
        out
    }

    /// The pedal value in force at time `t` (the last change at or before `t`).
    pub fn pedal_at(&self, t: f64) -> u8 {
        let i = self.pedal.partition_point(|&(s, _)| s <= t);
        if i == 0 { 0 } else { self.pedal[i - 1].1 }
    }

    /// When a note released at `offset` stops sounding: `offset` if the pedal
    /// is up then, else the next time the pedal goes up (∞ if never).
    pub fn damper_release(&self, offset: f64) -> f64 {
        if self.pedal_at(offset) < 64 {
            return offset;
        }
        let i = self.pedal.partition_point(|&(s, _)| s <= offset);
        self.pedal[i..]
            .iter()
            .find(|&&(_, v)| v < 64)
            .map_or(f64::INFINITY, |&(s, _)| s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use midly::num::{u4, u7, u15, u28};
    use midly::{
        Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind,
    };

    /// One MIDI event for [`write_midi`]: (tick, message).
    pub enum Ev {
        On(u8, u8),
        Off(u8),
        Pedal(u8),
        Tempo(u32),
    }

    /// A type-0 file at 480 ticks per quarter with the given events (absolute
    /// ticks, any order of equal ticks kept), channel 0.
    pub fn write_midi(path: &Path, events: &[(u32, Ev)]) {
        let mut track = Vec::new();
        let mut last = 0;
        for (tick, ev) in events {
            let kind = match *ev {
                Ev::On(p, v) => TrackEventKind::Midi {
                    channel: u4::new(0),
                    message: MidiMessage::NoteOn {
                        key: u7::new(p),
                        vel: u7::new(v),
                    },
                },
                Ev::Off(p) => TrackEventKind::Midi {
                    channel: u4::new(0),
                    message: MidiMessage::NoteOff {
                        key: u7::new(p),
                        vel: u7::new(0),
                    },
                },
                Ev::Pedal(v) => TrackEventKind::Midi {
                    channel: u4::new(0),
                    message: MidiMessage::Controller {
                        controller: u7::new(64),
                        value: u7::new(v),
                    },
                },
                Ev::Tempo(us) => TrackEventKind::Meta(MetaMessage::Tempo(midly::num::u24::new(us))),
            };
            track.push(TrackEvent {
                delta: u28::new(tick - last),
                kind,
            });
            last = *tick;
        }
        track.push(TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        });
        let smf = Smf {
            header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(480))),
            tracks: vec![track],
        };
        smf.save(path).unwrap();
    }

    #[test]
    fn notes_pair_keys_restrikes_and_hanging_notes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.mid");
        // 120 bpm: 480 ticks = 0.5 s. C4 struck twice without a release in
        // between (re-strike), E4 released by a velocity-0 note-on, G4 never released.
        write_midi(
            &path,
            &[
                (0, Ev::On(60, 80)),
                (0, Ev::Pedal(100)),
                (240, Ev::On(60, 90)),
                (480, Ev::On(64, 70)),
                (720, Ev::Off(60)),
                (960, Ev::On(64, 0)),
                (960, Ev::Pedal(10)),
                (960, Ev::On(67, 50)),
            ],
        );
        let n = NoteList::read(&path).unwrap();
        let got: Vec<(f64, f64, u8, u8)> = n
            .notes
            .iter()
            .map(|n| (n.onset, n.offset, n.pitch, n.velocity))
            .collect();
        assert_eq!(
            got,
            vec![
                (0.0, 0.25, 60, 80),
                (0.25, 0.75, 60, 90),
                (0.5, 1.0, 64, 70),
                (1.0, 1.0, 67, 50)
            ]
        );
        assert_eq!(n.groups, vec![0, 1, 2, 3]);
        assert_eq!(n.pedal_at(0.7), 100);
        assert_eq!(n.pedal_at(1.0), 10);
        assert_eq!(n.damper_release(0.75), 1.0);
        assert_eq!(n.damper_release(1.0), 1.0);
        assert_eq!(n.next_group_onsets()[2], Some(1.0));
        assert_eq!(n.next_group_onsets()[3], None);
    }

    #[test]
    fn a_file_without_notes_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.mid");
        write_midi(&path, &[(0, Ev::Pedal(127)), (480, Ev::Tempo(400_000))]);
        let e = format!("{:#}", NoteList::read(&path).unwrap_err());
        assert!(e.contains("empty.mid") && e.contains("no notes"), "{e}");
    }
}
