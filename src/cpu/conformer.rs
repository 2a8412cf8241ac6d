//! Reference ops the Conformer (MuQ) adds to the op set: 2-D conv patches,
//! rotary position encoding and the gated linear unit.

use crate::ops::Patches2d;
use rayon::prelude::*;
use std::ops::Range;

/// im2col for a 2-D conv on a time-major image `x` `[time·freq, channels]`
/// (see [`Patches2d`]), for the output time steps `times` (a block of the
/// conv's output, so a large one can run in pieces): returns
/// `[times.len()·out_freq, channels·k·k]` where row `(to − times.start)·out_freq + fo`,
/// column `c·k·k + kf·k + kt` holds
/// `x[(to·s − p + kt)·freq + (fo·s − p + kf), c]`, zero outside the image.
/// A linear layer with the PyTorch conv weight `[c_out, c_in·k·k]` then is the conv.
pub fn patches2d(x: &[f32], g: Patches2d, times: Range<usize>) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.time * g.freq * g.channels,
        "patches2d: x is not [time·freq, channels]"
    );
    assert!(
        times.end <= g.out_time(),
        "patches2d: times {times:?} beyond {} output steps",
        g.out_time()
    );
    let (of, len, k) = (g.out_freq(), g.patch_len(), g.k);
    let mut y = vec![0.0f32; times.len() * of * len];
    if len == 0 {
        return y;
    }
    // Rows in parallel (MuQ-large's first block writes 32,000 rows of 4,608 a 10 s clip).
    y.par_chunks_mut(len).enumerate().for_each(|(r, row)| {
        let (to, fo) = (times.start + r / of, r % of);
        for kf in 0..k {
            let fi = (fo * g.stride + kf) as isize - g.pad as isize;
            for kt in 0..k {
                let ti = (to * g.stride + kt) as isize - g.pad as isize;
                if fi < 0 || ti < 0 || fi as usize >= g.freq || ti as usize >= g.time {
                    continue;
                }
                let src = (ti as usize * g.freq + fi as usize) * g.channels;
                for c in 0..g.channels {
                    row[c * k * k + kf * k + kt] = x[src + c];
                }
            }
        }
    });
    y
}

/// Rotary position encoding, HF `Wav2Vec2Conformer` style (rotate-half within
/// each `head_dim` chunk of the row), on `x` `[t, cols]`:
/// `y = x·cos θ + rot(x)·sin θ` with `rot(x)[j] = −x[j + d/2]` for `j < d/2`
/// and `x[j − d/2]` above. `table` is `[t, head_dim]`: `cos θ` of the row's
/// `d/2` frequencies, then their `sin θ` (see [`rope_table`]).
pub fn rope(x: &[f32], t: usize, cols: usize, table: &[f32], head_dim: usize) -> Vec<f32> {
    assert_eq!(x.len(), t * cols, "rope: x is not [t, cols]");
    assert!(
        head_dim >= 2 && head_dim.is_multiple_of(2) && cols.is_multiple_of(head_dim),
        "rope: head_dim {head_dim} must be even and divide {cols}"
    );
    assert_eq!(
        table.len(),
        t * head_dim,
        "rope: table is not [t, head_dim]"
    );
    let half = head_dim / 2;
    let mut y = vec![0.0f32; x.len()];
    for r in 0..t {
        let (cos, sin) = table[r * head_dim..(r + 1) * head_dim].split_at(half);
        for (xh, yh) in x[r * cols..(r + 1) * cols]
            .chunks_exact(head_dim)
            .zip(y[r * cols..(r + 1) * cols].chunks_exact_mut(head_dim))
        {
            for j in 0..half {
                let (a, b) = (xh[j], xh[j + half]);
                yh[j] = a * cos[j] - b * sin[j];
                yh[j + half] = b * cos[j] + a * sin[j];
            }
        }
    }
    y
}

/// The `[t, head_dim]` table [`rope`] reads, for positions `0..t`: HF computes
/// `inv_freq = 1/base^(2j/d)` and `θ = t·inv_freq` in f32, so do we; cos and
/// sin of that f32 angle are then taken in f64 (exact to f32 rounding on every
/// device, where a shader's `cos` of a large angle would not be).
pub fn rope_table(t: usize, head_dim: usize, base: f64) -> Vec<f32> {
    let half = head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|j| (1.0 / base.powf((2 * j) as f64 / head_dim as f64)) as f32)
        .collect();
    let mut out = Vec::with_capacity(t * head_dim);
    for p in 0..t {
        let theta: Vec<f64> = inv.iter().map(|&f| f64::from(p as f32 * f)).collect();
        out.extend(theta.iter().map(|a| a.cos() as f32));
        out.extend(theta.iter().map(|a| a.sin() as f32));
    }
    out
}

/// Gated linear unit over columns: `x` `[t, 2c]` → `x[:, :c] · sigmoid(x[:, c:])`.
pub fn glu(x: &[f32], t: usize, cols: usize) -> Vec<f32> {
    assert!(cols.is_multiple_of(2), "glu: {cols} columns is odd");
    assert_eq!(x.len(), t * cols, "glu: x is not [t, cols]");
    let c = cols / 2;
    let mut y = Vec::with_capacity(t * c);
    for row in x.chunks_exact(cols.max(1)) {
        let (a, g) = row.split_at(c);
        y.extend(a.iter().zip(g).map(|(&a, &g)| a / (1.0 + (-g).exp())));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_follow_the_torch_weight_order_and_pad_with_zeros() {
        // One channel, time 3 × freq 2, values 10·t + f; 3×3 kernel, stride 2, pad 1.
        let x: Vec<f32> = (0..3)
            .flat_map(|t| (0..2).map(move |f| (10 * t + f) as f32))
            .collect();
        let g = Patches2d {
            time: 3,
            freq: 2,
            channels: 1,
            k: 3,
            stride: 2,
            pad: 1,
        };
        assert_eq!((g.out_time(), g.out_freq(), g.patch_len()), (2, 1, 9));
        let y = patches2d(&x, g, 0..2);
        // Output (to=1, fo=0) centres on (t=2, f=0): taps kf (freq) major, kt (time) minor.
        // kf=0 is f=-1 (pad); kf=1 is f=0: t=1,2,3 -> 10, 20, pad; kf=2 is f=1: 11, 21, pad.
        assert_eq!(
            &y[9..18],
            &[0.0, 0.0, 0.0, 10.0, 20.0, 0.0, 11.0, 21.0, 0.0]
        );
        // Two channels interleave per row and split by channel in the patch.
        let x2: Vec<f32> = x.iter().flat_map(|&v| [v, -v]).collect();
        let y2 = patches2d(&x2, Patches2d { channels: 2, ..g }, 0..2);
        assert_eq!(&y2[18..27], &y[9..18]);
        assert_eq!(y2[27 + 4], -20.0);
        // A block of output steps is those rows of the whole.
        assert_eq!(patches2d(&x, g, 1..2), &y[9..18]);
    }

    #[test]
    fn rope_rotates_each_head_pair_by_its_angle() {
        // head_dim 4, base 10000: inv_freq = [1, 0.01]; position 2 → θ = [2, 0.02].
        let table = rope_table(3, 4, 10_000.0);
        assert_eq!(&table[..4], &[1.0, 1.0, 0.0, 0.0]);
        let (c0, s0) = (2f64.cos() as f32, 2f64.sin() as f32);
        assert!((table[8] - c0).abs() < 1e-7 && (table[10] - s0).abs() < 1e-7);
        // Row 2, two heads: pair (x0, x2) rotates by θ0, (x1, x3) by θ1.
        let mut x = vec![0.0f32; 3 * 8];
        x[16..24].copy_from_slice(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let y = rope(&x, 3, 8, &table, 4);
        assert!((y[16] - c0).abs() < 1e-7 && (y[18] - s0).abs() < 1e-7);
        // Second head: x2 = 1 → y0 = −sin θ0, y2 = cos θ0.
        assert!((y[20] + s0).abs() < 1e-7 && (y[22] - c0).abs() < 1e-7);
        assert_eq!(&y[..16], &x[..16], "positions 0 and 1 of zeros stay zero");
    }

    #[test]
    fn glu_gates_the_first_half_by_the_second() {
        let y = glu(&[2.0, -4.0, 0.0, 1e9, 3.0, 5.0, -1e9, 0.0], 2, 4);
        assert_eq!(y, vec![1.0, -4.0, 0.0, 2.5]);
    }
}
