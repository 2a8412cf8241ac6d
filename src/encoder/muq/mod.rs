//! MuQ forward pass (SPEC §2), written once against [`Backend`].
//!
//! waveform → mel front end (host: STFT in f64 with rustfft, HTK mel, dB,
//! global normalisation) → two residual 2-D conv blocks run as patch GEMMs on
//! a time-major image → `c f t → t (c f)` + linear → 12 Conformer blocks
//! (half-step FFN, rotary attention, conv module, half-step FFN, LayerNorm) →
//! encoder LayerNorm on the last state.
//!
//! Load-time folding (exact up to f32 rounding): every BatchNorm into the conv
//! before it; the FFN half step (`0.5·`) into `output_dense`; the
//! `c f → (c f)` flattening into a column permutation of `conv.linear`, so the
//! device's `[(t, f), c]` image reshapes to `[t, (f, c)]` without a copy.
//!
//! # Windowing
//! A clip longer than `max_frames` MuQ frames (default 250 = 10 s, MuQ's
//! training length) is split into the fewest windows of balanced frame counts;
//! a window of `f` frames spans `4·f·hop` samples (the last runs to the clip's
//! end), so frame counts add up to the single-pass count `ceil(floor(N/hop)/4)`.
//! Each window is then encoded on its own as a clip.

pub mod config;
pub mod mel;
pub mod trace;
pub mod weights;

pub use config::{MuqConfig, SUBSAMPLING};
pub use mel::MelWindows;
pub use trace::MuqTrace;
pub use weights::MuqWeights;

use super::window::{
    EncoderOutput, Window, WindowVisitor, check_finite, gather_states, run_windows,
};
use crate::backend::{Backend, LinearOps, Storage};
use crate::encoder::nn::{LinearW, Norm, parse_act, prep_linear, prep_norm};
use crate::ops::{Act, Patches2d};
use anyhow::{Result, bail, ensure};
use config::{BLOCK_EPS, N_FFT};
use mel::MelFrontEnd;
use rayon::prelude::*;
use std::path::Path;
use weights::{ConvBnW, FfnW};

/// Most f32 values of one conv patch matrix (128 MiB): larger ones are built
/// and multiplied a block of output time steps at a time.
pub const PATCH_BUDGET: usize = 1 << 25;

struct ResBlock<B: Backend> {
    c_in: usize,
    conv1: B::Linear,
    conv2: B::Linear,
    conv3: B::Linear,
}

struct Ffn<B: Backend> {
    ln: Norm<B>,
    inner: B::Linear,
    /// `output_dense` with the half step folded in.
    outer: B::Linear,
}

struct Layer<B: Backend> {
    ffn1: Ffn<B>,
    attn_ln: Norm<B>,
    q: B::Linear,
    k: B::Linear,
    v: B::Linear,
    out: B::Linear,
    conv_ln: Norm<B>,
    pointwise1: B::Linear,
    /// Depthwise conv with its BatchNorm folded in (so it has a bias).
    depthwise: B::Conv1d,
    pointwise2: B::Linear,
    ffn2: Ffn<B>,
    final_ln: Norm<B>,
}

/// A MuQ model with its weights prepared on backend `B`.
pub struct Muq<B: Backend> {
    cfg: MuqConfig,
    blocks: Vec<ResBlock<B>>,
    proj: B::Linear,
    layers: Vec<Layer<B>>,
    enc_ln: Norm<B>,
    act: Act,
    front: MelFrontEnd,
    /// Most floats of one patch matrix ([`PATCH_BUDGET`]).
    patch_budget: usize,
}

/// One conv over a shared patch matrix: folded weights, activation, and a
/// residual added after the activation.
type ConvSpec<'a, B> = (
    &'a <B as LinearOps>::Linear,
    Act,
    Option<&'a <B as Storage>::Tensor>,
);

/// Fold eval BatchNorm into the conv before it: per output channel `o`,
/// `s = γ/√(var + eps)`, `w' = s·w`, `b' = s·(b − mean) + β`.
fn fold_batch_norm(c: &ConvBnW) -> (Vec<f32>, Vec<f32>) {
    let per_out = c.w.len() / c.c_out;
    let bn = &c.bn;
    let mut w = Vec::with_capacity(c.w.len());
    let mut b = Vec::with_capacity(c.c_out);
    for o in 0..c.c_out {
        let s = f64::from(bn.gamma[o]) / (f64::from(bn.var[o]) + f64::from(BLOCK_EPS)).sqrt();
        w.extend(
            c.w[o * per_out..(o + 1) * per_out]
                .iter()
                .map(|&v| (f64::from(v) * s) as f32),
        );
        let bias = c.b.as_ref().map_or(0.0, |b| f64::from(b[o]));
        b.push(((bias - f64::from(bn.mean[o])) * s + f64::from(bn.beta[o])) as f32);
    }
    (w, b)
}

/// `conv.linear`'s columns from PyTorch's `c·F + f` order to the device's `f·C + c`.
fn permute_to_freq_major(l: &LinearW, channels: usize, freq: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; l.w.len()];
    for o in 0..l.out {
        let row = &l.w[o * l.inp..(o + 1) * l.inp];
        let dst = &mut w[o * l.inp..(o + 1) * l.inp];
        for c in 0..channels {
            for f in 0..freq {
                dst[f * channels + c] = row[c * freq + f];
            }
        }
    }
    w
}

fn scaled(l: &LinearW, s: f32) -> LinearW {
    LinearW {
        w: l.w.iter().map(|v| v * s).collect(),
        b: l.b.as_ref().map(|b| b.iter().map(|v| v * s).collect()),
        ..l.clone()
    }
}

fn prep_ffn<B: Backend>(b: &B, f: &FfnW) -> Result<Ffn<B>> {
    Ok(Ffn {
        ln: prep_norm(b, &f.ln)?,
        inner: prep_linear(b, &f.inner)?,
        outer: prep_linear(b, &scaled(&f.outer, 0.5))?,
    })
}

fn prep_conv2d<B: Backend>(b: &B, c: &ConvBnW) -> Result<B::Linear> {
    let (w, bias) = fold_batch_norm(c);
    b.prepare_linear(&w, c.c_out, w.len() / c.c_out, Some(&bias))
}

/// Split a clip of `n` samples into windows of at most `cfg.max_frames` frames (see module docs).
pub fn window_plan(cfg: &MuqConfig, n: usize) -> Result<Vec<Window>> {
    let min = cfg.min_samples();
    ensure!(
        n >= min,
        "clip has {n} samples; MuQ needs at least {min} ({:.1} ms at {} Hz) for its {N_FFT}-point STFT",
        min as f64 * 1000.0 / f64::from(cfg.sample_rate),
        cfg.sample_rate
    );
    let total = cfg.frames_for(n);
    let count = total.div_ceil(cfg.max_frames);
    let (base, extra) = (total / count, total % count);
    let span = SUBSAMPLING * cfg.hop_length;
    let mut out = Vec::with_capacity(count);
    let mut a = 0;
    for w in 0..count {
        let f = base + usize::from(w < extra);
        let sample_end = if w + 1 == count { n } else { (a + f) * span };
        out.push(Window {
            frame_start: a,
            frames: f,
            sample_start: a * span,
            sample_end,
        });
        a += f;
    }
    Ok(out)
}

impl<B: Backend> Muq<B> {
    /// Fold and upload host weights once.
    pub fn new(backend: &B, cfg: MuqConfig, w: &MuqWeights) -> Result<Self> {
        cfg.validate()?;
        ensure!(
            w.layers.len() == cfg.encoder_depth && w.blocks.len() == 2,
            "weights have {} Conformer blocks and {} conv blocks; config says {} and 2",
            w.layers.len(),
            w.blocks.len(),
            cfg.encoder_depth
        );
        let (h, c, f4) = (cfg.encoder_dim, cfg.conv_dim, cfg.sub_freq());
        ensure!(
            (w.proj.out, w.proj.inp) == (h, c * f4),
            "conv.linear is [{}, {}], expected [{h}, {}]",
            w.proj.out,
            w.proj.inp,
            c * f4
        );
        let blocks = w
            .blocks
            .iter()
            .map(|blk| {
                Ok(ResBlock {
                    c_in: blk.c_in,
                    conv1: prep_conv2d(backend, &blk.conv1)?,
                    conv2: prep_conv2d(backend, &blk.conv2)?,
                    conv3: prep_conv2d(backend, &blk.conv3)?,
                })
            })
            .collect::<Result<_>>()?;
        let proj = backend.prepare_linear(
            &permute_to_freq_major(&w.proj, c, f4),
            h,
            c * f4,
            w.proj.b.as_deref(),
        )?;
        let k = cfg.conv_depthwise_kernel_size;
        let layers = w
            .layers
            .iter()
            .map(|l| {
                let (dw, dw_b) = fold_batch_norm(&l.depthwise);
                Ok(Layer {
                    ffn1: prep_ffn(backend, &l.ffn1)?,
                    attn_ln: prep_norm(backend, &l.attn_ln)?,
                    q: prep_linear(backend, &l.q)?,
                    k: prep_linear(backend, &l.k)?,
                    v: prep_linear(backend, &l.v)?,
                    out: prep_linear(backend, &l.out)?,
                    conv_ln: prep_norm(backend, &l.conv_ln)?,
                    pointwise1: prep_linear(backend, &l.pointwise1)?,
                    depthwise: backend.prepare_conv1d(&dw, h, h, k, h, Some(&dw_b))?,
                    pointwise2: prep_linear(backend, &l.pointwise2)?,
                    ffn2: prep_ffn(backend, &l.ffn2)?,
                    final_ln: prep_norm(backend, &l.final_ln)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            act: parse_act(&cfg.hidden_act)?,
            blocks,
            proj,
            layers,
            enc_ln: prep_norm(backend, &w.enc_ln)?,
            patch_budget: PATCH_BUDGET,
            front: MelFrontEnd::new(&cfg),
            cfg,
        })
    }

    /// Load `dir/config.json` and `dir/model.safetensors`.
    pub fn load(backend: &B, dir: &Path) -> Result<Self> {
        let cfg = MuqConfig::from_dir(dir)?;
        let w = MuqWeights::from_dir(&cfg, dir)?;
        Self::new(backend, cfg, &w)
    }

    pub fn config(&self) -> &MuqConfig {
        &self.cfg
    }

    /// Cap the conv patch matrices at `floats` values (default [`PATCH_BUDGET`];
    /// small values exercise the blocked path in tests).
    pub fn set_patch_budget(&mut self, floats: usize) {
        self.patch_budget = floats.max(1);
    }

    /// The normalised log-mel input `[M, n_mels]` of one window (SPEC §2.3),
    /// in f64 up to the last cast; fills the front-end part of `trace`.
    pub fn front_end(&self, wave: &[f32], trace: Option<&mut MuqTrace>) -> Result<Vec<f32>> {
        self.front.run(wave, trace)
    }

    /// Encode a whole clip (windowed if long), downloading the hidden states in
    /// `want` (indices `0..=L`). Frames of all windows are concatenated.
    pub fn encode(&self, backend: &B, wave: &[f32], want: &[usize]) -> Result<EncoderOutput> {
        let cfg = &self.cfg;
        gather_states(backend, cfg.num_hidden_states(), cfg.encoder_dim, |visit| {
            self.encode_windows(backend, wave, want, visit)
        })
    }

    /// The host half of a clip's pass (see [`window_plan`]): each window's
    /// normalised log-mel, windows in parallel. Callers that share a device
    /// run this outside their turn on it.
    pub fn prepare(&self, wave: &[f32]) -> Result<MelWindows> {
        let plan = window_plan(&self.cfg, wave.len())?;
        check_finite(wave)?;
        let front = &self.front;
        let windows = plan
            .into_par_iter()
            .map(|w| {
                let mel = front.run(&wave[w.sample_start..w.sample_end], None)?;
                Ok((w, mel))
            })
            .collect::<Result<_>>()?;
        Ok(MelWindows { windows })
    }

    /// The device half: run the network on each prepared window, handing its
    /// wanted hidden states, still on the device, to `visit`. Returns the
    /// clip's frame count.
    pub fn encode_mels(
        &self,
        backend: &B,
        mels: &MelWindows,
        want: &[usize],
        visit: &mut WindowVisitor<B>,
    ) -> Result<usize> {
        run_windows::<_, B>(
            &mels.windows,
            |(w, _): &(Window, Vec<f32>)| w,
            visit,
            |(_, mel)| self.network(backend, mel, want, None),
        )
    }

    /// Encode a whole clip window by window: [`Self::prepare`], then [`Self::encode_mels`].
    pub fn encode_windows(
        &self,
        backend: &B,
        wave: &[f32],
        want: &[usize],
        visit: &mut WindowVisitor<B>,
    ) -> Result<usize> {
        self.encode_mels(backend, &self.prepare(wave)?, want, visit)
    }

    /// One forward pass over `wave` as a single clip; downloads the states in
    /// `want` `[T, H]` (None elsewhere) and the intermediates into `trace`.
    pub fn forward_window(
        &self,
        b: &B,
        wave: &[f32],
        want: &[usize],
        trace: Option<&mut MuqTrace>,
    ) -> Result<(usize, Vec<Option<Vec<f32>>>)> {
        let (t, states) = self.window_states(b, wave, want, trace)?;
        let states = states
            .iter()
            .map(|s| s.as_ref().map(|x| b.download(x)).transpose())
            .collect::<Result<_>>()?;
        Ok((t, states))
    }

    /// The network alone on a given normalised log-mel `[M, n_mels]` (what
    /// [`Self::front_end`] returns), downloading the states in `want`: to check
    /// the network against a reference's own front-end output.
    pub fn forward_mel(
        &self,
        b: &B,
        mel: &[f32],
        want: &[usize],
    ) -> Result<(usize, Vec<Option<Vec<f32>>>)> {
        let (t, states) = self.network(b, mel, want, None)?;
        let states = states
            .iter()
            .map(|s| s.as_ref().map(|x| b.download(x)).transpose())
            .collect::<Result<_>>()?;
        Ok((t, states))
    }

    fn window_states(
        &self,
        b: &B,
        wave: &[f32],
        want: &[usize],
        mut trace: Option<&mut MuqTrace>,
    ) -> Result<(usize, Vec<Option<B::Tensor>>)> {
        let mel = self.front_end(wave, trace.as_deref_mut())?;
        self.network(b, &mel, want, trace)
    }

    /// Subsampling and Conformer on one window's normalised mel `[M, n_mels]`.
    fn network(
        &self,
        b: &B,
        mel: &[f32],
        want: &[usize],
        mut trace: Option<&mut MuqTrace>,
    ) -> Result<(usize, Vec<Option<B::Tensor>>)> {
        let cfg = &self.cfg;
        let n_states = cfg.num_hidden_states();
        if let Some(&bad) = want.iter().find(|&&i| i >= n_states) {
            bail!(
                "hidden state {bad} requested; this model has {n_states} (0..={})",
                n_states - 1
            );
        }
        ensure!(
            !mel.is_empty() && mel.len().is_multiple_of(cfg.n_mels),
            "mel input has {} values, not [frames, {}]",
            mel.len(),
            cfg.n_mels
        );
        let m = mel.len() / cfg.n_mels;
        let t_out = m.div_ceil(SUBSAMPLING);
        ensure!(
            t_out <= cfg.max_frames,
            "{t_out} frames exceed max_frames {} in one pass",
            cfg.max_frames
        );

        // 1. The mel [M, n_mels] is a time-major 1-channel image.
        let mut x = b.upload(mel, m * cfg.n_mels, 1)?;

        // 2. Conv2dSubsampling: two residual blocks, each conv a patch GEMM.
        let (mut time, mut freq) = (m, cfg.n_mels);
        for blk in &self.blocks {
            let g = Patches2d {
                time,
                freq,
                channels: blk.c_in,
                k: 3,
                stride: 2,
                pad: 1,
            };
            let [main, shortcut] = self.conv3x3(
                b,
                &x,
                g,
                [(&blk.conv1, Act::Relu, None), (&blk.conv3, Act::None, None)],
            )?;
            let g2 = Patches2d {
                time: g.out_time(),
                freq: g.out_freq(),
                channels: cfg.conv_dim,
                k: 3,
                stride: 1,
                pad: 1,
            };
            let [y] = self.conv3x3(b, &main, g2, [(&blk.conv2, Act::None, Some(&shortcut))])?;
            x = b.activate(y, Act::Relu)?;
            (time, freq) = (g.out_time(), g.out_freq());
        }
        ensure!(
            time == t_out && freq == cfg.sub_freq(),
            "subsampling gave {time} x {freq}, expected {t_out} x {}",
            cfg.sub_freq()
        );
        if let Some(tr) = trace.as_deref_mut() {
            tr.conv_stack = b.download(&x)?;
        }
        let flat = b.reshape(x, time, freq * cfg.conv_dim)?;
        let mut h = b.linear(&flat, &self.proj, Act::None, None)?;
        if let Some(tr) = trace {
            tr.subsampled = b.download(&h)?;
        }

        // 3. Conformer.
        let mut states: Vec<Option<B::Tensor>> = (0..n_states).map(|_| None).collect();
        let wanted = |i: usize| want.contains(&i);
        if wanted(0) {
            states[0] = Some(b.slice_rows(&h, 0, time)?);
        }
        let hd = cfg.head_dim();
        let table = crate::cpu::rope_table(time, hd, cfg.rotary_embedding_base);
        let table = b.upload(&table, time, hd)?;
        let scale = (hd as f32).powf(-0.5);
        for (l, layer) in self.layers.iter().enumerate() {
            h = self.ffn(b, &h, &layer.ffn1)?;
            // Attention: rotary on the normalised input, before the q/k projections.
            let a = b.layer_norm(&h, &layer.attn_ln.gamma, &layer.attn_ln.beta, BLOCK_EPS)?;
            let r = b.rope(&a, &table, hd)?;
            let q = b.linear(&r, &layer.q, Act::None, None)?;
            let k = b.linear(&r, &layer.k, Act::None, None)?;
            let v = b.linear(&a, &layer.v, Act::None, None)?;
            let ctx = b.attention(&q, &k, &v, cfg.num_attention_heads, scale)?;
            h = b.linear(&ctx, &layer.out, Act::None, Some(&h))?;
            // Convolution module on [H, T] for the depthwise conv.
            let c = b.layer_norm(&h, &layer.conv_ln.gamma, &layer.conv_ln.beta, BLOCK_EPS)?;
            let c = b.glu(&b.linear(&c, &layer.pointwise1, Act::None, None)?)?;
            let pad = cfg.conv_depthwise_kernel_size / 2;
            let c = b.conv1d(&b.transpose(&c)?, &layer.depthwise, 1, pad, Act::Silu)?;
            h = b.linear(&b.transpose(&c)?, &layer.pointwise2, Act::None, Some(&h))?;
            h = self.ffn(b, &h, &layer.ffn2)?;
            h = b.layer_norm(&h, &layer.final_ln.gamma, &layer.final_ln.beta, BLOCK_EPS)?;
            if l + 1 == self.layers.len() {
                let eps = cfg.layer_norm_eps;
                h = b.layer_norm(&h, &self.enc_ln.gamma, &self.enc_ln.beta, eps)?;
            }
            if wanted(l + 1) {
                states[l + 1] = Some(b.slice_rows(&h, 0, time)?);
            }
        }
        Ok((time, states))
    }

    /// The convs `convs` (folded weights, activation, residual added after it)
    /// over one shared patch matrix of `x`. The patch matrix is built for a
    /// block of output time steps at a time, so it stays within the device's
    /// largest tensor and [`PATCH_BUDGET`] (MuQ-large's first block would
    /// otherwise need 590 MB for a 10 s window).
    fn conv3x3<const N: usize>(
        &self,
        b: &B,
        x: &B::Tensor,
        g: Patches2d,
        convs: [ConvSpec<B>; N],
    ) -> Result<[B::Tensor; N]> {
        let budget = self.patch_budget.min(b.max_tensor_len());
        let rows_per_step = g.out_freq();
        let steps = (budget / (rows_per_step * g.patch_len()).max(1)).clamp(1, g.out_time());
        let mut parts: Vec<Vec<B::Tensor>> = (0..N).map(|_| Vec::new()).collect();
        for start in (0..g.out_time()).step_by(steps) {
            let times = start..(start + steps).min(g.out_time());
            let whole = times.len() == g.out_time();
            let rows = times.len() * rows_per_step;
            let p = b.patches2d(x, g, times)?;
            for ((w, act, residual), out) in convs.iter().zip(&mut parts) {
                let sliced;
                let r = match residual {
                    Some(r) if !whole => {
                        sliced = b.slice_rows(r, start * rows_per_step, rows)?;
                        Some(&sliced)
                    }
                    other => *other,
                };
                out.push(b.linear(&p, w, *act, r)?);
            }
        }
        let mut out = Vec::with_capacity(N);
        for mut p in parts {
            out.push(if p.len() == 1 {
                p.pop().expect("one part")
            } else {
                b.concat_rows(&p.iter().collect::<Vec<_>>())?
            });
        }
        Ok(out
            .try_into()
            .unwrap_or_else(|_| unreachable!("one output per conv")))
    }

    /// `h + 0.5·FFN(LN(h))` (the half is folded into `outer`).
    fn ffn(&self, b: &B, h: &B::Tensor, f: &Ffn<B>) -> Result<B::Tensor> {
        let x = b.layer_norm(h, &f.ln.gamma, &f.ln.beta, BLOCK_EPS)?;
        let y = b.linear(&x, &f.inner, self.act, None)?;
        b.linear(&y, &f.outer, Act::None, Some(h))
    }
}

#[cfg(test)]
mod tests {
    use super::weights::BatchNormW;
    use super::*;

    #[test]
    fn window_plan_balances_frames_on_the_mel_grid() {
        let cfg = MuqConfig::large();
        // 25 s: 2500 mel frames, 625 MuQ frames in windows of ≤ 250: 209/208/208.
        let n = 25 * 24_000;
        let plan = window_plan(&cfg, n).unwrap();
        let frames: Vec<usize> = plan.iter().map(|w| w.frames).collect();
        assert_eq!(frames, vec![209, 208, 208]);
        assert_eq!(plan[1].sample_start, 209 * 960);
        assert_eq!(plan[2].sample_end, n);
        for w in &plan {
            assert_eq!(cfg.frames_for(w.sample_end - w.sample_start), w.frames);
        }
        // Within max_frames: one window, the whole clip.
        assert_eq!(window_plan(&cfg, 240_000).unwrap().len(), 1);
        assert_eq!(window_plan(&cfg, 240_960).unwrap().len(), 2);
        let e = window_plan(&cfg, 1000).unwrap_err().to_string();
        assert!(e.contains("1000 samples") && e.contains("1025"), "{e}");
    }

    #[test]
    fn batch_norm_folds_into_the_conv() {
        // One output channel, two taps: conv(x) = 2·x0 − x1 + 0.5; BN γ 3, β 1, mean 0.25, var 3.
        let c = ConvBnW {
            w: vec![2.0, -1.0],
            b: Some(vec![0.5]),
            c_out: 1,
            bn: BatchNormW {
                gamma: vec![3.0],
                beta: vec![1.0],
                mean: vec![0.25],
                var: vec![4.0 - BLOCK_EPS],
            },
        };
        let (w, b) = fold_batch_norm(&c);
        // s = 3/2: w' = [3, −1.5], b' = 1.5·(0.5 − 0.25) + 1 = 1.375.
        assert_eq!(w, vec![3.0, -1.5]);
        assert!((b[0] - 1.375).abs() < 1e-6);
    }

    #[test]
    fn projection_columns_move_from_channel_major_to_freq_major() {
        // 2 channels × 3 freqs; input index c·3 + f holds 10c + f.
        let l = LinearW {
            w: vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0],
            b: None,
            out: 1,
            inp: 6,
        };
        assert_eq!(
            permute_to_freq_major(&l, 2, 3),
            vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]
        );
    }

    #[test]
    fn random_control_has_the_muq_layout_and_is_seeded() {
        let cc = MuqConfig::control();
        let w = MuqWeights::random_init(&cc, 7).unwrap();
        assert_eq!(w.layers.len(), 12);
        assert_eq!(w.proj.w.len(), 64 * 16 * 32);
        assert_eq!(w.layers[0].depthwise.w.len(), 64 * 31);
        assert_eq!(w.layers[0].pointwise1.w.len(), 128 * 64);
        assert_eq!(w.enc_ln.gamma.len(), 64);
        assert_eq!(w.blocks[1].conv2.w.len(), 16 * 16 * 9);
        assert_eq!(
            w.layers[3].q.w,
            MuqWeights::random_init(&cc, 7).unwrap().layers[3].q.w
        );
    }
}
