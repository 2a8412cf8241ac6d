// Rotary position encoding, rotate-half within each head_dim chunk of a row:
// y = x*cos(theta) + rot(x)*sin(theta), rot(x)[j] = -x[j + d/2] (j < d/2), x[j - d/2] above.
// table [t, head_dim]: cos of the row's d/2 angles, then their sin.
struct Params { rows: u32, cols: u32, head_dim: u32, _p0: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i >= P.rows * P.cols) {
        return;
    }
    let r = i / P.cols;
    let j = (i % P.cols) % P.head_dim;
    let half = P.head_dim / 2u;
    let t = r * P.head_dim;
    if (j < half) {
        y[i] = x[i] * table[t + j] - x[i + half] * table[t + half + j];
    } else {
        let jj = j - half;
        y[i] = x[i] * table[t + jj] + x[i - half] * table[t + half + jj];
    }
}
