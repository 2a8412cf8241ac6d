//! The gated linear unit (the Conformer conv module's gate).

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
    fn glu_gates_the_first_half_by_the_second() {
        let y = glu(&[2.0, -4.0, 0.0, 1e9, 3.0, 5.0, -1e9, 0.0], 2, 4);
        assert_eq!(y, vec![1.0, -4.0, 0.0, 2.5]);
    }
}
