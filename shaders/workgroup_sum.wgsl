// Sum of one value per invocation over a 256-wide workgroup (tree reduction in
// shared memory). Prepended to the kernels that normalise (gpu/norm.rs); every
// invocation must call it (it has barriers).

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}
