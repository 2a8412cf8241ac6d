//! 2-D convolution patches (im2col) on a time-major image: MuQ's conv
//! subsampling runs as these patches times the conv weight.

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
}
