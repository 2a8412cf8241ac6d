//! MERT-v1 forward pass (SPEC §1.3), written once against [`Backend`].
//!
//! waveform → per-window normalisation → conv feature encoder → feature
//! projection → positional conv → post-LN (95M) or pre-LN (330M) transformer →
//! the requested hidden states (index 0 = embedding, i = output of block i).
//!
//! # Windowing
//!
//! A clip longer than `max_frames` frames is split into the fewest windows of at
//! most `max_frames` frames, with frame counts as equal as possible (so there is
//! no tiny tail window). Window `w` covering global frames `a..a+f` gets samples
//! `320·a .. 320·(a+f−1) + 400` (the last window runs to the clip's end): consecutive windows overlap by 80 samples (the
//! receptive field minus the hop), every frame keeps its place on the clip's
//! 320-sample grid, and the concatenated frame count equals the single-pass
//! count `floor((N − 400)/320) + 1`. Each window is then processed on its own as
//! a clip (normalisation, GroupNorm statistics and attention all stay inside
//! the window), as the study did with its segments.

pub mod config;
pub mod weights;

pub use config::MertConfig;
pub use weights::MertWeights;

use crate::backend::Backend;
use crate::encoder::nn::{Norm, parse_act, prep_linear, prep_norm};
use crate::encoder::window::{
    EncoderOutput, Window, WindowVisitor, check_finite, gather_states, run_windows,
};
use crate::ops::Act;
use anyhow::{Result, bail, ensure};
use std::path::Path;
use weights::ConvW;

/// Eps of the conv-0 GroupNorm (PyTorch default; not `layer_norm_eps`).
const GROUP_NORM_EPS: f32 = 1e-5;
/// Added to the variance by the HF `Wav2Vec2FeatureExtractor` normalisation.
const NORMALIZE_EPS: f32 = 1e-7;

struct Conv<B: Backend> {
    w: B::Conv1d,
    stride: usize,
    norm: Option<Norm<B>>,
}

struct Layer<B: Backend> {
    q: B::Linear,
    k: B::Linear,
    v: B::Linear,
    out: B::Linear,
    ln_attn: Norm<B>,
    ffn_in: B::Linear,
    ffn_out: B::Linear,
    ln_ffn: Norm<B>,
}

/// A MERT-v1 model with its weights prepared on backend `B`.
pub struct Mert<B: Backend> {
    cfg: MertConfig,
    conv: Vec<Conv<B>>,
    conv_act: Act,
    proj_ln: Option<Norm<B>>,
    proj: B::Linear,
    pos_conv: B::Conv1d,
    enc_ln: Norm<B>,
    layers: Vec<Layer<B>>,
    ffn_act: Act,
}

/// Intermediate tensors of one pass, for golden tests (host copies).
#[derive(Clone, Debug, Default)]
pub struct MertTrace {
    /// Normalised waveform `[N]`.
    pub input_values: Vec<f32>,
    /// Conv encoder output `[T, conv_dim]`.
    pub conv_features: Vec<f32>,
    /// Feature projection `[T, H]`.
    pub projected: Vec<f32>,
    /// Positional conv embedding after gelu `[T, H]`.
    pub pos_conv: Vec<f32>,
}

/// Split a clip of `n` samples into windows of at most `cfg.max_frames` frames (see module docs).
pub fn window_plan(cfg: &MertConfig, n: usize) -> Result<Vec<Window>> {
    let field = cfg.receptive_field();
    ensure!(
        n >= field,
        "clip has {n} samples, shorter than MERT's receptive field of {field} samples ({:.1} ms at {} Hz)",
        field as f64 * 1000.0 / cfg.sample_rate as f64,
        cfg.sample_rate
    );
    let total = cfg.frames_for(n);
    let hop = cfg.hop();
    let count = total.div_ceil(cfg.max_frames);
    let (base, extra) = (total / count, total % count);
    let mut out = Vec::with_capacity(count);
    let mut a = 0;
    for w in 0..count {
        let f = base + usize::from(w < extra);
        // The last window runs to the end of the clip: the extra (< hop) samples add no
        // frame but enter the normalisation, so one window is exactly the whole-clip pass.
        let sample_end = if w + 1 == count {
            n
        } else {
            (a + f - 1) * hop + field
        };
        out.push(Window {
            frame_start: a,
            frames: f,
            sample_start: a * hop,
            sample_end,
        });
        a += f;
    }
    Ok(out)
}

/// HF `Wav2Vec2FeatureExtractor` normalisation: `(x − mean)/sqrt(var + 1e-7)`, population variance.
pub fn normalize(wave: &[f32]) -> Vec<f32> {
    let n = wave.len().max(1) as f64;
    let mean = wave.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = wave.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + NORMALIZE_EPS as f64).sqrt();
    wave.iter()
        .map(|&v| ((v as f64 - mean) * inv) as f32)
        .collect()
}

fn prep_conv<B: Backend>(b: &B, c: &ConvW) -> Result<Conv<B>> {
    Ok(Conv {
        w: b.prepare_conv1d(&c.w, c.c_out, c.c_in, c.k, 1, c.b.as_deref())?,
        stride: c.stride,
        norm: c.norm.as_ref().map(|n| prep_norm(b, n)).transpose()?,
    })
}

impl<B: Backend> Mert<B> {
    /// Upload host weights to the backend once.
    pub fn new(backend: &B, cfg: MertConfig, w: &MertWeights) -> Result<Self> {
        cfg.validate()?;
        ensure!(
            w.layers.len() == cfg.num_hidden_layers && w.conv.len() == cfg.conv_dim.len(),
            "weights have {} layers and {} conv layers; config says {} and {}",
            w.layers.len(),
            w.conv.len(),
            cfg.num_hidden_layers,
            cfg.conv_dim.len()
        );
        let h = cfg.hidden_size;
        let g = cfg.num_conv_pos_embedding_groups;
        let pc = &w.pos_conv;
        let pos_conv =
            backend.prepare_conv1d(&pc.w, h, h, cfg.num_conv_pos_embeddings, g, pc.b.as_deref())?;
        let layers = w
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    q: prep_linear(backend, &l.q)?,
                    k: prep_linear(backend, &l.k)?,
                    v: prep_linear(backend, &l.v)?,
                    out: prep_linear(backend, &l.out)?,
                    ln_attn: prep_norm(backend, &l.ln_attn)?,
                    ffn_in: prep_linear(backend, &l.ffn_in)?,
                    ffn_out: prep_linear(backend, &l.ffn_out)?,
                    ln_ffn: prep_norm(backend, &l.ln_ffn)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv: w
                .conv
                .iter()
                .map(|c| prep_conv(backend, c))
                .collect::<Result<_>>()?,
            conv_act: parse_act(&cfg.feat_extract_activation)?,
            proj_ln: w
                .proj_ln
                .as_ref()
                .map(|n| prep_norm(backend, n))
                .transpose()?,
            proj: prep_linear(backend, &w.proj)?,
            pos_conv,
            enc_ln: prep_norm(backend, &w.enc_ln)?,
            layers,
            ffn_act: parse_act(&cfg.hidden_act)?,
            cfg,
        })
    }

    /// Load `dir/config.json` (+ `preprocessor_config.json`) and `dir/model.safetensors`.
    pub fn load(backend: &B, dir: &Path) -> Result<Self> {
        let cfg = MertConfig::from_dir(dir)?;
        let w = MertWeights::from_dir(&cfg, dir)?;
        Self::new(backend, cfg, &w)
    }

    pub fn config(&self) -> &MertConfig {
        &self.cfg
    }

    /// Encode a whole clip (windowed if long), downloading the hidden states in `want`
    /// (indices `0..=L`). Frames of all windows are concatenated.
    pub fn encode(&self, backend: &B, wave: &[f32], want: &[usize]) -> Result<EncoderOutput> {
        let cfg = &self.cfg;
        gather_states(backend, cfg.num_hidden_states(), cfg.hidden_size, |visit| {
            self.encode_windows(backend, wave, want, visit)
        })
    }

    /// Encode a whole clip window by window (see [`window_plan`]), handing each
    /// window's wanted hidden states, still on the device, to `visit` with the
    /// window's place in the clip. Returns the clip's frame count.
    pub fn encode_windows(
        &self,
        backend: &B,
        wave: &[f32],
        want: &[usize],
        visit: &mut WindowVisitor<B>,
    ) -> Result<usize> {
        let plan = window_plan(&self.cfg, wave.len())?;
        check_finite(wave)?;
        run_windows::<_, B>(
            &plan,
            |w: &Window| w,
            visit,
            |w| self.window_states(backend, &wave[w.sample_start..w.sample_end], want, None),
        )
    }

    /// One forward pass over `wave` as a single clip (no windowing; the caller keeps it
    /// within `max_frames`). Downloads the states in `want`, and the intermediates into `trace`.
    pub fn forward_window(
        &self,
        b: &B,
        wave: &[f32],
        want: &[usize],
        trace: Option<&mut MertTrace>,
    ) -> Result<EncoderOutput> {
        let (frames, states) = self.window_states(b, wave, want, trace)?;
        let states = states
            .iter()
            .map(|s| s.as_ref().map(|t| b.download(t)).transpose())
            .collect::<Result<_>>()?;
        Ok(EncoderOutput {
            frames,
            hidden: self.cfg.hidden_size,
            states,
        })
    }

    /// [`Self::forward_window`] with the wanted states left on the device
    /// (copies: the running state moves on); returns the frame count too.
    fn window_states(
        &self,
        b: &B,
        wave: &[f32],
        want: &[usize],
        mut trace: Option<&mut MertTrace>,
    ) -> Result<(usize, Vec<Option<B::Tensor>>)> {
        let cfg = &self.cfg;
        let n_states = cfg.num_hidden_states();
        if let Some(&bad) = want.iter().find(|&&i| i >= n_states) {
            bail!(
                "hidden state {bad} requested; this model has {n_states} (0..={})",
                n_states - 1
            );
        }
        let field = cfg.receptive_field();
        ensure!(
            wave.len() >= field,
            "clip has {} samples, shorter than the receptive field {field}",
            wave.len()
        );
        let t = cfg.frames_for(wave.len());
        ensure!(
            t <= cfg.max_frames,
            "{t} frames exceed max_frames {} in one pass",
            cfg.max_frames
        );

        // 1. Normalise on the host (cheap, and needs the whole clip's statistics).
        let x = if cfg.do_normalize {
            normalize(wave)
        } else {
            wave.to_vec()
        };
        let mut h = b.upload(&x, 1, x.len())?;
        if let Some(tr) = trace.as_deref_mut() {
            tr.input_values = x;
        }

        // 2. Conv feature encoder on [channels, time].
        for c in &self.conv {
            h = match &c.norm {
                Some(n) => {
                    let y = b.conv1d(&h, &c.w, c.stride, 0, Act::None)?;
                    let (channels, _) = b.shape(&y);
                    b.group_norm(
                        &y,
                        channels,
                        &n.gamma,
                        &n.beta,
                        GROUP_NORM_EPS,
                        self.conv_act,
                    )?
                }
                None => b.conv1d(&h, &c.w, c.stride, 0, self.conv_act)?,
            };
        }
        ensure!(
            b.shape(&h).1 == t,
            "conv encoder produced {} frames, expected {t}",
            b.shape(&h).1
        );

        // 3-4. [T, C] features, LayerNorm, projection to H.
        let feats = b.transpose(&h)?;
        if let Some(tr) = trace.as_deref_mut() {
            tr.conv_features = b.download(&feats)?;
        }
        let normed = match &self.proj_ln {
            Some(n) => b.layer_norm(&feats, &n.gamma, &n.beta, cfg.layer_norm_eps)?,
            None => feats,
        };
        let projected = b.linear(&normed, &self.proj, Act::None, None)?;

        // 5. Positional conv on [H, T]: kernel K, pad K/2, groups; an even K gives T+1
        //    outputs and SamePad drops the last one.
        let k = cfg.num_conv_pos_embeddings;
        let pc = b.conv1d(
            &b.transpose(&projected)?,
            &self.pos_conv,
            1,
            k / 2,
            Act::Gelu,
        )?;
        let mut pos = b.transpose(&pc)?;
        if b.shape(&pos).0 != t {
            pos = b.slice_rows(&pos, 0, t)?;
        }
        if let Some(tr) = trace {
            tr.projected = b.download(&projected)?;
            tr.pos_conv = b.download(&pos)?;
        }

        // 6. Transformer.
        let mut states: Vec<Option<B::Tensor>> = (0..n_states).map(|_| None).collect();
        let wanted = |i: usize| want.contains(&i);
        let eps = cfg.layer_norm_eps;
        let mut h = b.add(&projected, &pos)?;
        let pre_ln = cfg.do_stable_layer_norm;
        if !pre_ln {
            h = b.layer_norm(&h, &self.enc_ln.gamma, &self.enc_ln.beta, eps)?;
        }
        if wanted(0) {
            states[0] = Some(b.slice_rows(&h, 0, t)?);
        }
        let heads = cfg.num_attention_heads;
        let scale = (cfg.head_dim() as f32).powf(-0.5);
        for (l, layer) in self.layers.iter().enumerate() {
            h = if pre_ln {
                let x = b.layer_norm(&h, &layer.ln_attn.gamma, &layer.ln_attn.beta, eps)?;
                let h = self.attention(b, &x, &h, layer, heads, scale)?;
                let x = b.layer_norm(&h, &layer.ln_ffn.gamma, &layer.ln_ffn.beta, eps)?;
                let f = b.linear(&x, &layer.ffn_in, self.ffn_act, None)?;
                b.linear(&f, &layer.ffn_out, Act::None, Some(&h))?
            } else {
                let a = self.attention(b, &h, &h, layer, heads, scale)?;
                let h = b.layer_norm(&a, &layer.ln_attn.gamma, &layer.ln_attn.beta, eps)?;
                let f = b.linear(&h, &layer.ffn_in, self.ffn_act, None)?;
                let y = b.linear(&f, &layer.ffn_out, Act::None, Some(&h))?;
                b.layer_norm(&y, &layer.ln_ffn.gamma, &layer.ln_ffn.beta, eps)?
            };
            let last = l + 1 == self.layers.len();
            if last && pre_ln {
                h = b.layer_norm(&h, &self.enc_ln.gamma, &self.enc_ln.beta, eps)?;
            }
            if wanted(l + 1) {
                states[l + 1] = Some(b.slice_rows(&h, 0, t)?);
            }
        }
        Ok((t, states))
    }

    /// `residual + out_proj(MHA(x))`.
    fn attention(
        &self,
        b: &B,
        x: &B::Tensor,
        residual: &B::Tensor,
        layer: &Layer<B>,
        heads: usize,
        scale: f32,
    ) -> Result<B::Tensor> {
        let q = b.linear(x, &layer.q, Act::None, None)?;
        let k = b.linear(x, &layer.k, Act::None, None)?;
        let v = b.linear(x, &layer.v, Act::None, None)?;
        let ctx = b.attention(&q, &k, &v, heads, scale)?;
        b.linear(&ctx, &layer.out, Act::None, Some(residual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_frames: usize) -> MertConfig {
        MertConfig {
            max_frames,
            ..MertConfig::mert_95m()
        }
    }

    #[test]
    fn window_plan_balances_and_keeps_the_frame_grid() {
        // 2500 frames in windows of at most 1000: three windows of 834/833/833.
        let n = 2499 * 320 + 400 + 100;
        let plan = window_plan(&cfg(1000), n).unwrap();
        let frames: Vec<usize> = plan.iter().map(|w| w.frames).collect();
        assert_eq!(frames, vec![834, 833, 833]);
        assert_eq!(plan[1].frame_start, 834);
        assert_eq!(
            (plan[1].sample_start, plan[1].sample_end),
            (834 * 320, (834 + 832) * 320 + 400)
        );
        assert_eq!(plan[2].sample_end, n, "last window runs to the clip's end");
        let c = cfg(1000);
        for w in &plan {
            assert_eq!(c.frames_for(w.sample_end - w.sample_start), w.frames);
        }
        // A clip within max_frames is one window over the whole clip.
        assert_eq!(
            window_plan(&c, 24_000).unwrap(),
            vec![Window {
                frame_start: 0,
                frames: 74,
                sample_start: 0,
                sample_end: 24_000
            }]
        );
        // Exactly max_frames: still one window.
        assert_eq!(window_plan(&c, 999 * 320 + 400).unwrap().len(), 1);
        assert_eq!(window_plan(&c, 1000 * 320 + 400).unwrap().len(), 2);
        assert!(
            window_plan(&c, 399)
                .unwrap_err()
                .to_string()
                .contains("receptive field")
        );
    }

    #[test]
    fn normalize_is_zero_mean_unit_variance() {
        // mean 2, population variance 2/3.
        let y = normalize(&[1.0, 2.0, 3.0]);
        let s = 1.0 / (2.0f64 / 3.0 + 1e-7).sqrt();
        for (g, w) in y.iter().zip([-s, 0.0, s]) {
            assert!((*g as f64 - w).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn the_330m_control_has_330m_depth_and_layer_norm_order() {
        let c = MertConfig::preset("control_330m").unwrap();
        let big = MertConfig::mert_330m();
        assert_eq!(
            (c.num_hidden_states(), c.do_stable_layer_norm),
            (big.num_hidden_states(), big.do_stable_layer_norm)
        );
        assert_eq!(
            (c.conv_kernel, c.conv_stride),
            (big.conv_kernel, big.conv_stride)
        );
        let backend = crate::cpu::CpuBackend::new();
        let model = Mert::new(
            &backend,
            MertConfig::mert_control_330m(),
            &MertWeights::random_init(&MertConfig::mert_control_330m(), 0).unwrap(),
        )
        .unwrap();
        let wave: Vec<f32> = (0..12_000).map(|i| (i as f32 * 0.01).sin() * 0.3).collect();
        let out = model.encode(&backend, &wave, &[0, 13, 24]).unwrap();
        assert_eq!((out.frames, out.hidden), (37, 64));
        assert!(
            out.states[24]
                .as_ref()
                .unwrap()
                .iter()
                .all(|v| v.is_finite())
        );
    }

    #[test]
    fn random_init_has_the_real_95m_shapes() {
        let c = MertConfig::mert_95m();
        let w = MertWeights::random_init(&c, 1).unwrap();
        use crate::encoder::nn::{LinearW, NormW};
        let lin = |l: &LinearW| l.w.len() + l.b.as_ref().map_or(0, Vec::len);
        let norm = |n: &NormW| n.gamma.len() + n.beta.len();
        let mut count =
            lin(&w.proj) + lin(&w.pos_conv) + norm(&w.enc_ln) + w.proj_ln.as_ref().map_or(0, norm);
        for cv in &w.conv {
            count += cv.w.len() + cv.norm.as_ref().map_or(0, norm);
        }
        for l in &w.layers {
            count += [&l.q, &l.k, &l.v, &l.out, &l.ffn_in, &l.ffn_out]
                .into_iter()
                .map(lin)
                .sum::<usize>();
            count += norm(&l.ln_attn) + norm(&l.ln_ffn);
        }
        // 94.4M as SPEC §1.5 (weight_g and masked_spec_embed excluded).
        assert_eq!(count, 94_370_816);
        assert_eq!(w.pos_conv.w.len(), 768 * 48 * 128);
        assert_eq!(w.layers[11].ffn_in.w.len(), 3072 * 768);
        // Seeded: same seed, same weights; another seed differs.
        let tiny = MertConfig {
            hidden_size: 32,
            num_conv_pos_embedding_groups: 4,
            ..cfg(10)
        };
        let a = MertWeights::random_init(&tiny, 3).unwrap();
        assert_eq!(
            a.layers[0].q.w,
            MertWeights::random_init(&tiny, 3).unwrap().layers[0].q.w
        );
        assert_ne!(
            a.layers[0].q.w,
            MertWeights::random_init(&tiny, 4).unwrap().layers[0].q.w
        );
    }
}
