// GroupNorm over x [C, T] (channel-major): each group is the contiguous block
// of Cg = C/G channels × T frames. One workgroup per group: mean, then the
// population variance of (x − mean) (two passes, no E[x²]−E[x]² cancellation),
// then y = act((x − mean)/sqrt(var + eps)·γ[c] + β[c]).

struct Params { t: u32, cg: u32, act: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

// WG and workgroup_sum: shaders/workgroup_sum.wgsl, prepended by gpu/norm.rs.

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = P.cg * P.t;
    let base = wid.x * n;
    var s = 0.0;
    for (var i = lid; i < n; i += WG) {
        s += x[base + i];
    }
    let mean = workgroup_sum(s, lid) / f32(n);
    var q = 0.0;
    for (var i = lid; i < n; i += WG) {
        let d = x[base + i] - mean;
        q += d * d;
    }
    let inv = 1.0 / sqrt(workgroup_sum(q, lid) / f32(n) + P.eps);
    for (var i = lid; i < n; i += WG) {
        let c = wid.x * P.cg + i / P.t;
        let v = (x[base + i] - mean) * inv * gamma[c] + beta[c];
        y[base + i] = act_f(v, P.act);
    }
}
