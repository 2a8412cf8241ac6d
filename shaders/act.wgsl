// In-place activation: x[i] = act(x[i]).
struct Params { n: u32, act: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i < P.n) {
        x[i] = act_f(x[i], P.act);
    }
}
