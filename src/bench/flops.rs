//! FLOP count of one encoder forward pass, from the config and the frame arithmetic.
//!
//! Counted (one multiply-add = 2 FLOP), per window of the clip's window plan.
//!
//! MERT-v1:
//! - conv feature encoder: `2·c_out·c_in·k·t_out` per layer (`c_in = 1` for layer 0),
//! - feature projection: `2·T·conv_dim·H`,
//! - positional conv (grouped, pad `K/2`): `2·H·(H/groups)·K·t_out`, with the
//!   `t_out = T + 1` outputs an even `K` computes before the last one is dropped,
//! - per transformer layer: q, k, v, out projections `4 · 2·T·H·H`, FFN
//!   `2 · 2·T·H·F`, attention core `2·2·T²·H` (`QKᵀ` and `PV`).
//!
//! MuQ (M mel frames, T = ceil(M/4) output frames, C conv channels):
//! - conv subsampling: each block's conv1 and conv3 `2·C·c_in·9·T'·F'` and
//!   conv2 `2·C·C·9·T'·F'` at the block's output size `T'×F'`,
//! - projection `2·T·(C·F/4)·H`,
//! - per Conformer block: q, k, v, out `4 · 2·T·H·H`, two FFNs `2 · 2·2·T·H·F`,
//!   attention core `2·2·T²·H`, conv module `2·T·H·2H + 2·H·K·T + 2·T·H·H`.
//!
//! Not counted: norms, activations, softmax, residual adds and transposes (each
//! `O(T·H)` or `O(T²·heads)` against `O(T·H²)` for the counted ops), and
//! MuQ's mel front end (host STFT, `O(M·n_fft·log n_fft)`).

use crate::encoder::{ArchConfig, MertConfig, MuqConfig};
use anyhow::Result;
use serde::Serialize;

/// FLOP of one clip, by part of the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Flops {
    /// MERT's conv feature encoder; MuQ's 2-D conv subsampling.
    pub conv_stack: u64,
    pub projection: u64,
    /// MERT's positional conv.
    pub pos_conv: u64,
    /// MuQ's Conformer convolution modules.
    pub conv_module: u64,
    /// q, k, v, out and the two FFN linears of every layer.
    pub linears: u64,
    /// `QKᵀ` and `PV` of every layer.
    pub attention: u64,
}

impl Flops {
    pub fn total(&self) -> u64 {
        self.conv_stack
            + self.projection
            + self.pos_conv
            + self.conv_module
            + self.linears
            + self.attention
    }

    fn add(&mut self, o: &Flops) {
        self.conv_stack += o.conv_stack;
        self.projection += o.projection;
        self.pos_conv += o.pos_conv;
        self.conv_module += o.conv_module;
        self.linears += o.linears;
        self.attention += o.attention;
    }
}

/// FLOP of encoding a clip of `samples` samples (all windows).
pub fn clip_flops(cfg: &ArchConfig, samples: usize) -> Result<Flops> {
    let mut total = Flops::default();
    for w in cfg.window_plan(samples)? {
        let n = w.sample_end - w.sample_start;
        total.add(&match cfg {
            ArchConfig::Mert(c) => window_flops(c, n),
            ArchConfig::Muq(c) => muq_window_flops(c, n),
        });
    }
    Ok(total)
}

/// FLOP of one MuQ forward pass over `samples` samples (no windowing).
pub fn muq_window_flops(cfg: &MuqConfig, samples: usize) -> Flops {
    let u = |v: usize| v as u64;
    let mut f = Flops::default();
    let c = u(cfg.conv_dim);
    let (mut time, mut freq, mut c_in) = (cfg.mel_frames(samples), cfg.n_mels, 1u64);
    for _ in 0..2 {
        (time, freq) = (time.div_ceil(2), freq.div_ceil(2));
        let px = u(time * freq);
        f.conv_stack += 2 * (2 * c * c_in * 9 * px) + 2 * c * c * 9 * px;
        c_in = c;
    }
    let (t, h, ffn) = (u(time), u(cfg.encoder_dim), u(cfg.intermediate_size));
    f.projection = 2 * t * c * u(freq) * h;
    let layers = u(cfg.encoder_depth);
    let k = u(cfg.conv_depthwise_kernel_size);
    f.linears = layers * (4 * 2 * t * h * h + 2 * 2 * 2 * t * h * ffn);
    f.attention = layers * 2 * 2 * t * t * h;
    f.conv_module = layers * (2 * t * h * 2 * h + 2 * h * k * t + 2 * t * h * h);
    f
}

/// FLOP of one MERT forward pass over `samples` samples (no windowing).
pub fn window_flops(cfg: &MertConfig, samples: usize) -> Flops {
    let u = |v: usize| v as u64;
    let mut f = Flops::default();
    let (mut len, mut c_in) = (samples, 1);
    for ((&c_out, &k), &s) in cfg
        .conv_dim
        .iter()
        .zip(&cfg.conv_kernel)
        .zip(&cfg.conv_stride)
    {
        len = crate::cpu::conv1d_out_len(len, k, s, 0);
        f.conv_stack += 2 * u(c_out) * u(c_in) * u(k) * u(len);
        c_in = c_out;
    }
    let t = u(len);
    let h = u(cfg.hidden_size);
    f.projection = 2 * t * u(c_in) * h;
    let k = cfg.num_conv_pos_embeddings;
    let pos_t = u(crate::cpu::conv1d_out_len(len, k, 1, k / 2));
    f.pos_conv = 2 * h * (h / u(cfg.num_conv_pos_embedding_groups)) * u(k) * pos_t;
    let layers = u(cfg.num_hidden_layers);
    let ffn = u(cfg.intermediate_size);
    f.linears = layers * (4 * 2 * t * h * h + 2 * 2 * t * h * ffn);
    f.attention = layers * 2 * 2 * t * t * h;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_cfg() -> MertConfig {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/spec/mert_tiny_postln/config.json"
        );
        MertConfig::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn tiny_fixture_count_by_hand() {
        // Fixture: conv_dim 32 ×7, kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2,
        // H 64, 2 layers, F 128, pos conv K 128 in 16 groups; 1 s = 24 000 samples.
        // Conv lengths: 4799, 2399, 1199, 599, 299, 149, 74 (T = 74).
        //   L0 2·32·1·10·4799   =  3 071 360
        //   L1 2·32·32·3·2399   = 14 739 456
        //   L2 6144·1199        =  7 366 656
        //   L3 6144·599         =  3 680 256
        //   L4 6144·299         =  1 837 056
        //   L5 2·32·32·2·149    =    610 304
        //   L6 4096·74          =    303 104   → conv stack 31 608 192
        // Projection 2·74·32·64  =    303 104
        // Pos conv 2·64·4·128·75 =  4 915 200 (75 = 74 + 2·64 − 128 + 1 outputs)
        // Per layer: 4·2·74·64·64 + 2·2·74·64·128 = 2 424 832 + 2 424 832 = 4 849 664
        //   ×2 layers            =  9 699 328
        // Attention 2·(2·2·74²·64) = 2·1 401 856 = 2 803 712
        // Total                  = 49 329 536
        let f = clip_flops(&ArchConfig::Mert(fixture_cfg()), 24_000).unwrap();
        assert_eq!(
            f,
            Flops {
                conv_stack: 31_608_192,
                projection: 303_104,
                pos_conv: 4_915_200,
                conv_module: 0,
                linears: 9_699_328,
                attention: 2_803_712,
            }
        );
        assert_eq!(f.total(), 49_329_536);
    }

    #[test]
    fn real_models_on_10_s_are_about_0_2_and_0_6_tflop() {
        let n = 240_000;
        let f95 = clip_flops(&ArchConfig::Mert(MertConfig::mert_95m()), n)
            .unwrap()
            .total() as f64;
        let f330 = clip_flops(&ArchConfig::Mert(MertConfig::mert_330m()), n)
            .unwrap()
            .total() as f64;
        assert!((0.2e12..0.25e12).contains(&f95), "{f95}");
        assert!((0.55e12..0.65e12).contains(&f330), "{f330}");
    }

    #[test]
    fn windows_add_up() {
        // A clip over max_frames is counted window by window.
        let cfg = MertConfig {
            max_frames: 40,
            ..fixture_cfg()
        };
        let plan = crate::encoder::window_plan(&cfg, 24_000).unwrap();
        assert_eq!(plan.len(), 2);
        let sum: u64 = plan
            .iter()
            .map(|w| window_flops(&cfg, w.sample_end - w.sample_start).total())
            .sum();
        assert_eq!(
            clip_flops(&ArchConfig::Mert(cfg), 24_000).unwrap().total(),
            sum
        );
    }

    #[test]
    fn muq_tiny_fixture_count_by_hand() {
        // muq_tiny: C 8, 128 mels, H 64, 2 blocks, F 128, K 31; 1 s = 100 mel frames.
        // Block 0 out 50×64 = 3200 px: conv1+conv3 2·(2·8·1·9·3200) = 921 600,
        //   conv2 2·8·8·9·3200 = 3 686 400. Block 1 out 25×32 = 800 px:
        //   conv1+conv3 2·(2·8·8·9·800) = 1 843 200, conv2 921 600 → 7 372 800.
        // Projection 2·25·256·64 = 819 200.
        // Per block: 4·2·25·64·64 = 819 200 + FFNs 2·2·2·25·64·128 = 1 638 400.
        //   ×2 = 4 915 200. Attention 2·(2·2·625·64) = 320 000.
        // Conv module per block 2·25·64·128 + 2·64·31·25 + 2·25·64·64 = 409 600
        //   + 99 200 + 204 800 = 713 600, ×2 = 1 427 200.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/spec/muq_tiny/config.json"
        );
        let cfg = MuqConfig::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
        let f = clip_flops(&ArchConfig::Muq(cfg), 24_000).unwrap();
        assert_eq!(
            f,
            Flops {
                conv_stack: 7_372_800,
                projection: 819_200,
                pos_conv: 0,
                conv_module: 1_427_200,
                linears: 4_915_200,
                attention: 320_000,
            }
        );
        // MuQ-large on 10 s: the 2-D conv subsampling dominates (~0.27 TFLOP of ~0.42).
        let big = clip_flops(&ArchConfig::Muq(MuqConfig::large()), 240_000).unwrap();
        assert!(
            (0.38e12..0.46e12).contains(&(big.total() as f64)),
            "{big:?}"
        );
    }
}
