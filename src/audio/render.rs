//! Synthesize a MIDI performance with a SoundFont (rustysynth), mono, trimmed.
//!
//! We drive `rustysynth::Synthesizer` ourselves instead of its `MidiFileSequencer`:
//! midly gives us every event and the tempo map, which we need anyway to find the
//! end of the music (PercePiano's D960 segments carry ~20 s of trailing silence
//! before end-of-track), and it lets us place each event at the control block
//! nearest its exact time rather than the sequencer's "any time before this block".
//!
//! Output: dry (no reverb/chorus: an artificial room would blur exactly the pedal
//! and articulation cues being rated), mono = (L + R) / 2 × gain, length =
//! end + tail where end is the last note-off, pedal release or note-on, whichever
//! is latest.

use std::fs;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, ensure};
use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use rustysynth::{Synthesizer, SynthesizerSettings};
use serde::{Deserialize, Serialize};

use super::Pcm;

/// Synth control block: events are quantised to it (±32 samples, ±0.73 ms at 44.1 kHz).
const BLOCK: usize = 64;
/// rustysynth's maximum. Sustained piano passages with stereo samples (2 voices
/// per note) overflow the default 64 and would cut notes by voice stealing.
const POLYPHONY: usize = 256;
/// Longest performance rendered (one hour).
const MAX_SECONDS: f64 = 3600.0;
/// Sustain pedal controller; values >= 64 mean down (the GM convention rustysynth uses).
pub const CC_SUSTAIN: u8 = 64;

/// A loaded SF2 SoundFont, shareable across threads (one load, many renders).
#[derive(Clone, Debug)]
pub struct SoundFont {
    inner: Arc<rustysynth::SoundFont>,
}

impl SoundFont {
    pub fn load(path: &Path) -> Result<SoundFont> {
        let file = fs::File::open(path)
            .with_context(|| format!("opening SoundFont {}", path.display()))?;
        let sf = rustysynth::SoundFont::new(&mut BufReader::new(file))
            .map_err(|e| anyhow!("{}: not a valid SF2 SoundFont: {e}", path.display()))?;
        ensure!(
            !sf.get_presets().is_empty(),
            "{}: SoundFont has no presets",
            path.display()
        );
        Ok(SoundFont {
            inner: Arc::new(sf),
        })
    }
}

/// How a MIDI file becomes audio. Part of the render stage's cache key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderParams {
    /// Output sample rate in Hz (rustysynth accepts 16 000 to 192 000).
    pub sample_rate: u32,
    /// Audio kept after the last note-off / pedal release, for the release to decay.
    pub tail_seconds: f32,
    /// Linear gain applied to the mono mix.
    pub gain: f32,
}

impl Default for RenderParams {
    fn default() -> Self {
        RenderParams {
            sample_rate: 44_100,
            // The shipped piano's release stage (FluidR3 Yamaha Grand) falls below
            // -60 dB within about 1 s of key-up; 1.5 s leaves margin for low notes.
            tail_seconds: 1.5,
            // rustysynth's master volume (0.5) times the dry piano already peaks
            // well below full scale on dense PercePiano passages; see the tests.
            gain: 1.0,
        }
    }
}

/// One channel event at an absolute time: `command` is the status nibble
/// (0x80 note-off, 0x90 note-on, 0xB0 controller, 0xC0 program, 0xE0 bend).
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub seconds: f64,
    pub channel: u8,
    pub command: u8,
    pub data1: u8,
    pub data2: u8,
}

/// The parsed performance: time-ordered channel events and where the music ends.
/// The one MIDI reader: rendering and the symbolic features both use it.
#[derive(Debug)]
pub struct Performance {
    pub events: Vec<Event>,
    /// Latest note-off, sustain release or note-on, in seconds.
    pub end_seconds: f64,
}

/// Read and parse a performance MIDI file (see [`Performance`]).
pub fn read_performance(midi: &Path) -> Result<Performance> {
    let bytes =
        fs::read(midi).with_context(|| format!("cannot read MIDI file {}", midi.display()))?;
    parse_performance(&bytes).with_context(|| format!("reading {}", midi.display()))
}

/// Render `midi` with `sf` to mono PCM, trimmed to the last sounding event + tail.
pub fn render_midi(midi: &Path, sf: &SoundFont, params: &RenderParams) -> Result<Pcm> {
    render_inner(midi, sf, params).with_context(|| format!("rendering {}", midi.display()))
}

fn render_inner(midi: &Path, sf: &SoundFont, params: &RenderParams) -> Result<Pcm> {
    ensure!(
        (16_000..=192_000).contains(&params.sample_rate),
        "sample_rate {} outside rustysynth's 16000..=192000 Hz",
        params.sample_rate
    );
    ensure!(
        (0.0..=60.0).contains(&params.tail_seconds),
        "tail_seconds must be in [0, 60], got {}",
        params.tail_seconds
    );
    ensure!(
        params.gain.is_finite(),
        "gain must be finite, got {}",
        params.gain
    );
    let bytes = fs::read(midi).context("cannot read MIDI file")?;
    let perf = parse_performance(&bytes)?;
    // The buffer is allocated up front: a corrupt delta time or tempo must
    // not ask for terabytes.
    ensure!(
        perf.end_seconds <= MAX_SECONDS,
        "the last note or pedal event is at {:.0} s; a performance over {MAX_SECONDS} s is not a clip \
         (a corrupt delta time or tempo?)",
        perf.end_seconds
    );

    let rate = f64::from(params.sample_rate);
    let total = ((perf.end_seconds + f64::from(params.tail_seconds)) * rate).ceil() as usize;

    let mut settings = SynthesizerSettings::new(params.sample_rate as i32);
    settings.block_size = BLOCK;
    settings.maximum_polyphony = POLYPHONY;
    settings.enable_reverb_and_chorus = false;
    let mut synth = Synthesizer::new(&sf.inner, &settings)
        .map_err(|e| anyhow!("cannot create synthesizer: {e}"))?;

    let mut left = vec![0.0f32; total];
    let mut right = vec![0.0f32; total];
    let mut pos = 0usize;
    for ev in &perf.events {
        // Rendering stops at a block boundary, so the event acts from the boundary
        // nearest its exact sample time.
        let at = (ev.seconds * rate).round() as usize;
        let boundary = ((at + BLOCK / 2) / BLOCK * BLOCK).min(total);
        if boundary > pos {
            synth.render(&mut left[pos..boundary], &mut right[pos..boundary]);
            pos = boundary;
        }
        synth.process_midi_message(
            i32::from(ev.channel),
            i32::from(ev.command),
            i32::from(ev.data1),
            i32::from(ev.data2),
        );
    }
    if pos < total {
        synth.render(&mut left[pos..], &mut right[pos..]);
    }

    let scale = 0.5 * params.gain;
    let samples = left
        .iter()
        .zip(&right)
        .map(|(l, r)| (l + r) * scale)
        .collect();
    Ok(Pcm {
        sample_rate: params.sample_rate,
        samples,
    })
}

/// Where the music of a MIDI file ends (last note-off, pedal release or
/// note-on), in seconds; the same checks as [`render_midi`], no synthesis.
pub fn midi_end_seconds(midi: &Path) -> Result<f64> {
    let bytes = fs::read(midi).with_context(|| format!("reading {}", midi.display()))?;
    parse_performance(&bytes)
        .map(|p| p.end_seconds)
        .with_context(|| format!("reading {}", midi.display()))
}

/// Parse a whole standard MIDI file, refusing one that is cut short: midly's
/// `strict` mode rejects a chunk whose length runs past the end of the file, a
/// malformed event and a track count other than the header's, and every track
/// must end with its end-of-track event (a file cut at an event boundary).
fn parse_smf(bytes: &[u8]) -> Result<Smf<'_>> {
    // midly can panic on a hostile header (an i8 negation overflow on an
    // SMPTE frame rate, in builds with overflow checks): an error instead.
    let parsed = std::panic::catch_unwind(|| Smf::parse(bytes)).map_err(|_| {
        anyhow!(
            "not a valid standard MIDI file ({} bytes): the MIDI parser crashed on its header",
            bytes.len()
        )
    })?;
    let smf = parsed.map_err(|e| {
        anyhow!(
            "not a valid standard MIDI file ({} bytes): {e}; a file cut short or corrupt is refused",
            bytes.len()
        )
    })?;
    ensure!(!smf.tracks.is_empty(), "MIDI file has no tracks");
    for (t, track) in smf.tracks.iter().enumerate() {
        ensure!(
            matches!(
                track.last().map(|e| e.kind),
                Some(TrackEventKind::Meta(MetaMessage::EndOfTrack))
            ),
            "track {t} of {} does not end with an end-of-track event: the file ({} bytes) is cut short",
            smf.tracks.len(),
            bytes.len()
        );
    }
    Ok(smf)
}

/// Merge all tracks, convert ticks to seconds with the tempo map, find the end.
fn parse_performance(bytes: &[u8]) -> Result<Performance> {
    let smf = parse_smf(bytes)?;

    // (tick, track, index-in-track) keeps simultaneous events in file order.
    let mut timed: Vec<(u64, usize, usize, TrackEventKind)> = Vec::new();
    for (t, track) in smf.tracks.iter().enumerate() {
        let mut tick = 0u64;
        for (i, ev) in track.iter().enumerate() {
            tick += u64::from(ev.delta.as_int());
            timed.push((tick, t, i, ev.kind));
        }
    }
    timed.sort_by_key(|&(tick, t, i, _)| (tick, t, i));

    let clock = TickClock::new(smf.header.timing)?;
    let mut clock = clock;
    let mut events = Vec::new();
    let mut end_seconds: Option<f64> = None;
    for (tick, _, _, kind) in timed {
        let seconds = clock.seconds_at(tick);
        let (channel, message) = match kind {
            TrackEventKind::Meta(MetaMessage::Tempo(us)) => {
                clock.set_tempo(tick, us.as_int());
                continue;
            }
            TrackEventKind::Midi { channel, message } => (channel.as_int(), message),
            _ => continue,
        };
        let (command, data1, data2, ends) = match message {
            MidiMessage::NoteOff { key, vel } => (0x80, key.as_int(), vel.as_int(), true),
            // A note-on also counts: a note left hanging still sounds to the end.
            MidiMessage::NoteOn { key, vel } => (0x90, key.as_int(), vel.as_int(), true),
            MidiMessage::Controller { controller, value } => {
                let release = controller.as_int() == CC_SUSTAIN && value.as_int() < 64;
                (0xB0, controller.as_int(), value.as_int(), release)
            }
            MidiMessage::ProgramChange { program } => (0xC0, program.as_int(), 0, false),
            MidiMessage::PitchBend { bend } => {
                let raw = bend.0.as_int();
                (0xE0, (raw & 0x7F) as u8, (raw >> 7) as u8, false)
            }
            // rustysynth ignores aftertouch; nothing else reaches a channel.
            MidiMessage::Aftertouch { .. } | MidiMessage::ChannelAftertouch { .. } => continue,
        };
        if ends {
            end_seconds = Some(end_seconds.map_or(seconds, |e: f64| e.max(seconds)));
        }
        events.push(Event {
            seconds,
            channel,
            command,
            data1,
            data2,
        });
    }
    let end_seconds = end_seconds.context("MIDI file has no notes")?;
    ensure!(
        events.iter().any(|e| e.command == 0x90 && e.data2 > 0),
        "MIDI file has no notes"
    );
    Ok(Performance {
        events,
        end_seconds,
    })
}

/// Ticks to seconds under a piecewise-constant tempo.
struct TickClock {
    /// Ticks per quarter note; 0 for SMPTE timing, where ticks have a fixed length.
    ppq: u32,
    /// Seconds per tick in the current tempo segment.
    tick_seconds: f64,
    /// Start of the current tempo segment.
    seg_tick: u64,
    seg_seconds: f64,
}

impl TickClock {
    fn new(timing: Timing) -> Result<TickClock> {
        let (ppq, tick_seconds) = match timing {
            Timing::Metrical(ppq) => {
                let ppq = u32::from(ppq.as_int());
                ensure!(ppq > 0, "MIDI header has 0 ticks per quarter note");
                // 120 bpm until the first tempo event (SMF default).
                (ppq, 0.5 / f64::from(ppq))
            }
            Timing::Timecode(fps, sub) => {
                ensure!(sub > 0, "MIDI header has 0 subframes per frame");
                (0, 1.0 / (f64::from(fps.as_f32()) * f64::from(sub)))
            }
        };
        Ok(TickClock {
            ppq,
            tick_seconds,
            seg_tick: 0,
            seg_seconds: 0.0,
        })
    }

    fn seconds_at(&self, tick: u64) -> f64 {
        self.seg_seconds + (tick - self.seg_tick) as f64 * self.tick_seconds
    }

    fn set_tempo(&mut self, tick: u64, us_per_quarter: u32) {
        if self.ppq == 0 {
            return; // SMPTE timing ignores tempo
        }
        self.seg_seconds = self.seconds_at(tick);
        self.seg_tick = tick;
        self.tick_seconds = f64::from(us_per_quarter) * 1e-6 / f64::from(self.ppq);
    }
}
