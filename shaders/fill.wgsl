// y[i] = value, given as raw bits so NaN poison can be written.
struct Params { n: u32, bits: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i < P.n) {
        y[i] = bitcast<f32>(P.bits);
    }
}
