//! What every encoder's windowing shares: the window type, the visitor a
//! windowed pass hands each window's states to, running the windows in order,
//! and gathering their states on the host.

use crate::backend::{Backend, Storage};
use anyhow::{Context, Result, bail, ensure};

/// Hidden states of one clip: `states[i]` is `Some([frames, hidden])` for each requested index.
#[derive(Clone, Debug)]
pub struct EncoderOutput {
    pub frames: usize,
    pub hidden: usize,
    pub states: Vec<Option<Vec<f32>>>,
}

/// One window of a clip: global frames `frame_start..frame_start+frames`, samples `sample_start..sample_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub frame_start: usize,
    pub frames: usize,
    pub sample_start: usize,
    pub sample_end: usize,
}

/// What a windowed encode hands each window's wanted hidden states (on the device) to.
pub type WindowVisitor<'a, B> =
    dyn FnMut(&Window, &[Option<<B as Storage>::Tensor>]) -> Result<()> + 'a;

/// Run `encode_windows` (handed a visitor) and download every state it
/// visits, concatenating the windows' frames: the host-side `encode` of every
/// architecture.
pub(super) fn gather_states<B: Backend>(
    backend: &B,
    n_states: usize,
    hidden: usize,
    encode_windows: impl FnOnce(&mut WindowVisitor<B>) -> Result<usize>,
) -> Result<EncoderOutput> {
    let mut states: Vec<Option<Vec<f32>>> = vec![None; n_states];
    let frames = encode_windows(&mut |_, window| {
        for (dst, src) in states.iter_mut().zip(window) {
            if let Some(src) = src {
                dst.get_or_insert_with(Vec::new)
                    .extend_from_slice(&backend.download(src)?);
            }
        }
        Ok(())
    })?;
    Ok(EncoderOutput {
        frames,
        hidden,
        states,
    })
}

/// A waveform with a NaN or infinity is an error naming the sample.
pub(super) fn check_finite(wave: &[f32]) -> Result<()> {
    if let Some(i) = wave.iter().position(|v| !v.is_finite()) {
        bail!("waveform sample {i} is {} (not finite)", wave[i]);
    }
    Ok(())
}

/// Run `pass` on each item's window in order, check it produced the planned
/// frames, and hand its states to `visit` (errors name the window).
/// Returns the clip's frame count.
pub(super) fn run_windows<T, B: Backend>(
    items: &[T],
    window: impl Fn(&T) -> &Window,
    visit: &mut WindowVisitor<B>,
    mut pass: impl FnMut(&T) -> Result<(usize, Vec<Option<B::Tensor>>)>,
) -> Result<usize> {
    let mut frames = 0;
    for item in items {
        let w = window(item);
        let context = || format!("window at frame {} ({} frames)", w.frame_start, w.frames);
        let (t, states) = pass(item).with_context(context)?;
        ensure!(
            t == w.frames,
            "window produced {t} frames, planned {}",
            w.frames
        );
        visit(w, &states).with_context(context)?;
        frames += t;
    }
    Ok(frames)
}
