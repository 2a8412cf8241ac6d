// Gated linear unit over columns: x [rows, 2c] -> y [rows, c] = x[:, :c] * sigmoid(x[:, c:]).
struct Params { rows: u32, c: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i >= P.rows * P.c) {
        return;
    }
    let r = i / P.c;
    let j = i % P.c;
    let a = x[r * 2u * P.c + j];
    let g = x[r * 2u * P.c + P.c + j];
    y[i] = a / (1.0 + exp(-g));
}
