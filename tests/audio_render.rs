//! render_midi with the shipped piano SoundFont (data/soundfont/piano.sf2).

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use pipe::audio::{Pcm, RenderParams, SoundFont, render_midi};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn piano() -> &'static SoundFont {
    static SF: OnceLock<SoundFont> = OnceLock::new();
    SF.get_or_init(|| SoundFont::load(&root().join("data/soundfont/piano.sf2")).unwrap())
}

/// A channel-0 event `delta` ticks after the previous one.
enum Ev {
    On(u32, u8, u8),
    Off(u32, u8),
    Pedal(u32, bool),
    Tempo(u32, u32),
}

/// Write a type-0 MIDI at 480 tpb, 120 bpm unless a Tempo event says otherwise.
fn write_midi(dir: &Path, name: &str, events: &[Ev]) -> PathBuf {
    let ch = u4::new(0);
    let midi = |delta: u32, message| TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Midi {
            channel: ch,
            message,
        },
    };
    let mut track: Vec<TrackEvent> = events
        .iter()
        .map(|e| match *e {
            Ev::On(d, key, vel) => midi(
                d,
                MidiMessage::NoteOn {
                    key: u7::new(key),
                    vel: u7::new(vel),
                },
            ),
            Ev::Off(d, key) => midi(
                d,
                MidiMessage::NoteOff {
                    key: u7::new(key),
                    vel: u7::new(64),
                },
            ),
            Ev::Pedal(d, down) => midi(
                d,
                MidiMessage::Controller {
                    controller: u7::new(64),
                    value: u7::new(if down { 127 } else { 0 }),
                },
            ),
            Ev::Tempo(d, us) => TrackEvent {
                delta: u28::new(d),
                kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(us))),
            },
        })
        .collect();
    // Trailing silence before end-of-track, as in the D960 segments.
    track.push(TrackEvent {
        delta: u28::new(480 * 20),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(480))),
        tracks: vec![track],
    };
    let path = dir.join(name);
    smf.save(&path).unwrap();
    path
}

fn params(tail: f32) -> RenderParams {
    RenderParams {
        tail_seconds: tail,
        ..RenderParams::default()
    }
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn window(pcm: &Pcm, from_s: f64, to_s: f64) -> &[f32] {
    let r = f64::from(pcm.sample_rate);
    &pcm.samples[(from_s * r) as usize..(to_s * r) as usize]
}

/// Power at `hz` of a Hann-windowed signal (Goertzel).
fn power_at(x: &[f32], rate: u32, hz: f64) -> f64 {
    let w = 2.0 * PI * hz / f64::from(rate);
    let (mut re, mut im) = (0.0, 0.0);
    let n = x.len() as f64;
    for (i, &v) in x.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * PI * i as f64 / n).cos();
        let s = f64::from(v) * hann;
        re += s * (w * i as f64).cos();
        im -= s * (w * i as f64).sin();
    }
    re * re + im * im
}

fn samples_for(seconds: f64) -> usize {
    (seconds * 44_100.0).ceil() as usize
}

#[test]
fn single_a4_has_pitch_440_and_ends_at_note_off_plus_tail() {
    let dir = tempfile::tempdir().unwrap();
    // On at 0.25 s, off at 1.25 s (120 bpm, 480 tpb: 240 ticks = 0.25 s).
    let midi = write_midi(
        dir.path(),
        "a4.mid",
        &[Ev::On(240, 69, 100), Ev::Off(960, 69)],
    );
    let pcm = render_midi(&midi, piano(), &params(0.5)).unwrap();
    assert_eq!(pcm.sample_rate, 44_100);
    assert_eq!(pcm.samples.len(), samples_for(1.75));

    // Silent before the onset, sounding after it.
    assert!(rms(window(&pcm, 0.0, 0.24)) < 1e-6);
    let body = window(&pcm, 0.35, 1.15);
    assert!(rms(body) > 0.01, "rms {}", rms(body));
    assert!(pcm.samples.iter().all(|s| s.abs() < 1.0));

    // Fundamental at 440 Hz: the strongest 1 Hz bin in 380..500 Hz is within ±2 Hz,
    // and the neighbouring semitones carry far less energy.
    let best = (380..=500)
        .map(|f| (f, power_at(body, 44_100, f64::from(f))))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
        .0;
    assert!((438..=442).contains(&best), "peak at {best} Hz");
    let p440 = power_at(body, 44_100, 440.0);
    assert!(p440 > 100.0 * power_at(body, 44_100, 415.3));
    assert!(p440 > 100.0 * power_at(body, 44_100, 466.2));

    // The release decays within the tail.
    let end = rms(window(&pcm, 1.65, 1.75));
    assert!(end < rms(body) / 30.0, "tail rms {end}");
}

#[test]
fn sustain_pedal_holds_notes_and_sets_the_end() {
    let dir = tempfile::tempdir().unwrap();
    // Pedal down at 0, note 0.25..0.75 s, pedal up at 2.25 s.
    let pedalled = write_midi(
        dir.path(),
        "pedal.mid",
        &[
            Ev::Pedal(0, true),
            Ev::On(240, 60, 90),
            Ev::Off(480, 60),
            Ev::Pedal(1440, false),
        ],
    );
    let dry = write_midi(
        dir.path(),
        "dry.mid",
        &[Ev::On(240, 60, 90), Ev::Off(480, 60)],
    );
    let p = render_midi(&pedalled, piano(), &params(0.25)).unwrap();
    let d = render_midi(&dry, piano(), &params(1.0)).unwrap();
    assert_eq!(p.samples.len(), samples_for(2.5));
    assert_eq!(d.samples.len(), samples_for(1.75));
    // Half a second after key-up the pedalled note still rings; the dry one has
    // died (the SoundFont's release tail is still audible in the first 0.25 s).
    let held = rms(window(&p, 1.25, 1.5));
    let released = rms(window(&d, 1.25, 1.5));
    assert!(held > 10.0 * released, "held {held} vs released {released}");
    assert!(rms(window(&p, 1.9, 2.2)) > 1e-3);
}

#[test]
fn velocity_changes_loudness() {
    let dir = tempfile::tempdir().unwrap();
    let soft = write_midi(dir.path(), "pp.mid", &[Ev::On(0, 64, 30), Ev::Off(480, 64)]);
    let loud = write_midi(
        dir.path(),
        "ff.mid",
        &[Ev::On(0, 64, 120), Ev::Off(480, 64)],
    );
    let s = render_midi(&soft, piano(), &params(0.2)).unwrap();
    let l = render_midi(&loud, piano(), &params(0.2)).unwrap();
    let (rs, rl) = (rms(window(&s, 0.0, 0.5)), rms(window(&l, 0.0, 0.5)));
    assert!(rl > 3.0 * rs, "ff {rl} vs pp {rs}");
}

#[test]
fn tempo_map_moves_events() {
    let dir = tempfile::tempdir().unwrap();
    // 120 bpm for one beat (0.5 s), then 60 bpm: note at beat 2 starts at 1.5 s,
    // ends half a beat later at 2.0 s.
    let midi = write_midi(
        dir.path(),
        "tempo.mid",
        &[
            Ev::Tempo(480, 1_000_000),
            Ev::On(480, 72, 100),
            Ev::Off(240, 72),
        ],
    );
    let pcm = render_midi(&midi, piano(), &params(0.0)).unwrap();
    assert_eq!(pcm.samples.len(), samples_for(2.0));
    assert!(rms(window(&pcm, 0.0, 1.49)) < 1e-6);
    assert!(rms(window(&pcm, 1.51, 1.9)) > 0.01);
}

#[test]
fn gain_scales_linearly() {
    let dir = tempfile::tempdir().unwrap();
    let midi = write_midi(dir.path(), "g.mid", &[Ev::On(0, 67, 80), Ev::Off(480, 67)]);
    let one = render_midi(&midi, piano(), &params(0.1)).unwrap();
    let half = render_midi(
        &midi,
        piano(),
        &RenderParams {
            gain: 0.5,
            ..params(0.1)
        },
    )
    .unwrap();
    for (a, b) in one.samples.iter().zip(&half.samples) {
        assert!((a * 0.5 - b).abs() <= 1e-7);
    }
}

/// A PercePiano D960 segment (MIT, JonghoKimSNU/PercePiano; copied unchanged as
/// tests/fixtures/audio/d960_mv3_8bars_10_34.mid). Its end-of-track sits ~20 s after
/// the music; mido reports the last note-off at 5.461543650 s and a file length of
/// 25.98 s. The render must stop at the note-off + tail and be reproducible.
#[test]
fn dataset_segment_trailing_silence_is_trimmed_and_render_is_deterministic() {
    let midi = root().join("tests/fixtures/audio/d960_mv3_8bars_10_34.mid");
    let p = params(1.0);
    let a = render_midi(&midi, piano(), &p).unwrap();
    assert_eq!(a.samples.len(), samples_for(5.461_543_65 + 1.0));
    // Not silent: this quiet passage renders at rms 0.0044 with the shipped piano
    // (silence, or a broken synth, would be ~0).
    assert!(rms(&a.samples) > 0.002, "rms {}", rms(&a.samples));
    let peak = a.samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!(peak < 1.0, "clips: peak {peak}");
    let b = render_midi(&midi, piano(), &p).unwrap();
    assert!(
        a.samples
            .iter()
            .zip(&b.samples)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
}

#[test]
fn non_midi_input_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oops.mid");
    std::fs::write(&path, "not midi at all").unwrap();
    let err = format!(
        "{:#}",
        render_midi(&path, piano(), &params(1.0)).unwrap_err()
    );
    assert!(err.contains("oops.mid") && err.contains("MIDI"), "{err}");
}

/// A MIDI file cut short (the issue's was cut to half its bytes and rendered
/// 10.05 s of a 16.37 s performance without a word) is an error naming it,
/// wherever the cut falls: inside a chunk (its length runs past the end) or
/// at an event boundary (no end-of-track).
#[test]
fn a_midi_file_cut_short_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let whole =
        std::fs::read(root().join("tests/fixtures/audio/d960_mv3_8bars_10_34.mid")).unwrap();
    let end = pipe::audio::render::midi_end_seconds(
        &root().join("tests/fixtures/audio/d960_mv3_8bars_10_34.mid"),
    )
    .unwrap();
    assert!((end - 5.461_543_65).abs() < 1e-6, "{end}");
    // Every cut after the header chunk (14 bytes) and the track header (8) ...
    for cut in 22..whole.len() {
        let path = dir.path().join(format!("cut_{cut}.mid"));
        std::fs::write(&path, &whole[..cut]).unwrap();
        let err = format!(
            "{:#}",
            pipe::audio::render::midi_end_seconds(&path).unwrap_err()
        );
        assert!(err.contains(&format!("cut_{cut}.mid")), "{err}");
        assert!(err.contains("cut short"), "cut at {cut}: {err}");
    }
    // ... and a file whose chunk length was fixed up to hide the cut: the
    // last event is not end-of-track.
    // (the file ends with delta 81 96 08, then FF 2F 00)
    let mut patched = whole[..whole.len() - 6].to_vec();
    let len = (patched.len() - 22) as u32;
    patched[18..22].copy_from_slice(&len.to_be_bytes());
    let path = dir.path().join("patched.mid");
    std::fs::write(&path, &patched).unwrap();
    let err = format!(
        "{:#}",
        render_midi(&path, piano(), &params(1.0)).unwrap_err()
    );
    assert!(
        err.contains("patched.mid") && err.contains("end-of-track"),
        "{err}"
    );
}

#[test]
fn midi_without_notes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_midi(dir.path(), "empty.mid", &[Ev::Pedal(0, true)]);
    let err = format!(
        "{:#}",
        render_midi(&path, piano(), &params(1.0)).unwrap_err()
    );
    assert!(
        err.contains("empty.mid") && err.contains("no notes"),
        "{err}"
    );
}

#[test]
fn soundfont_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("fake.sf2");
    std::fs::write(&bad, b"RIFF\0\0\0\0junk").unwrap();
    let err = format!("{:#}", SoundFont::load(&bad).unwrap_err());
    assert!(err.contains("fake.sf2"), "{err}");
    let err = format!(
        "{:#}",
        SoundFont::load(&dir.path().join("none.sf2")).unwrap_err()
    );
    assert!(err.contains("none.sf2"), "{err}");
}

#[test]
fn params_serde_defaults_and_unknown_fields() {
    let d = RenderParams::default();
    assert_eq!(d.sample_rate, 44_100);
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<RenderParams>(&json).unwrap(), d);
    let extra = r#"{"sample_rate":44100,"tail_seconds":1.0,"gain":1.0,"reverb":true}"#;
    assert!(serde_json::from_str::<RenderParams>(extra).is_err());
}

#[test]
fn soundfont_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SoundFont>();
}

/// An SMPTE division of -128 frames per second (found by
/// tests/fuzz_inputs.rs) made midly negate an i8 overflowing and panic in
/// builds with overflow checks: now that file's error, naming it.
#[test]
fn a_midi_parser_panic_is_the_files_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes =
        std::fs::read(root().join("tests/fixtures/audio/d960_mv3_8bars_10_34.mid")).unwrap();
    bytes[12] = 0x80; // division: SMPTE, fps byte -128
    bytes[13] = 0x00;
    let path = dir.path().join("smpte.mid");
    std::fs::write(&path, &bytes).unwrap();
    let err = format!(
        "{:#}",
        pipe::audio::render::midi_end_seconds(&path).unwrap_err()
    );
    assert!(err.contains("smpte.mid"), "{err}");
}
