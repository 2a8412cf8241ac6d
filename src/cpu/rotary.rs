//! Rotary position encoding (HF `Wav2Vec2Conformer` style) and its angle table.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
