// LayerNorm over the last dim of x [rows, dim]. One workgroup per row (rows
// beyond 65535 spill into workgroup_id.y); two-pass mean/variance.

struct Params { rows: u32, dim: u32, eps: f32, _p0: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

// WG and workgroup_sum: shaders/workgroup_sum.wgsl, prepended by gpu/norm.rs.

@compute @workgroup_size(256)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wid.x + wid.y * nwg.x;
    // Uniform per workgroup, so the early return keeps barriers in uniform control flow.
    if (row >= P.rows) {
        return;
    }
    let base = row * P.dim;
    var s = 0.0;
    for (var i = lid; i < P.dim; i += WG) {
        s += x[base + i];
    }
    let mean = workgroup_sum(s, lid) / f32(P.dim);
    var q = 0.0;
    for (var i = lid; i < P.dim; i += WG) {
        let d = x[base + i] - mean;
        q += d * d;
    }
    let inv = 1.0 / sqrt(workgroup_sum(q, lid) / f32(P.dim) + P.eps);
    for (var i = lid; i < P.dim; i += WG) {
        y[base + i] = (x[base + i] - mean) * inv * gamma[i] + beta[i];
    }
}
