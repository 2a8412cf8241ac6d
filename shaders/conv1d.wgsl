// Grouped, strided, zero-padded 1-D convolution as an implicit GEMM:
//   y[g·Cog + o, t] = b[g·Cog + o] + Σ_{c<Cig, j<k} w[g·Cog + o, c, j] · x[g·Cig + c, t·s + j − pad]
// Per group this is A[Cog, Cig·k] (the weights, contiguous) times
// B[Cig·k, T_out] (gathered from x on the fly), so it uses the matmul tiling:
// 64 output channels × 64 output frames per 16×16 workgroup, 4×4 per thread,
// K slices of 16 in workgroup memory. workgroup_id.z is the group.
// x is [C_in, T_in], y is [C_out, T_out] (channel-major, like the CPU op).
// An activation can be fused after the bias (the feature extractor's GELU).

struct Params {
    t_in: u32, t_out: u32, cig: u32, cog: u32,
    k: u32, stride: u32, pad: u32, has_bias: u32,
    act: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

// As [k][row] and Bs [k][col] and tile_fma come from tile_fma.wgsl.

@compute @workgroup_size(16, 16)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let g = wid.z;
    let o0 = wid.y * 64u;
    let t0 = wid.x * 64u;
    let kc = P.cig * P.k;
    let w_base = g * P.cog * kc;
    let x_base = g * P.cig * P.t_in;

    // Weight staging: row (tid / 4), 4 consecutive kidx.
    let arow = tid / 4u;
    let ak = (tid % 4u) * 4u;
    // Input staging: frame (tid % 64), 4 consecutive kidx rows.
    let bcol = tid % 64u;
    let bk = (tid / 64u) * 4u;
    let tb = t0 + bcol;

    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < kc; k0 += 16u) {
        for (var e = 0u; e < 4u; e++) {
            let o = o0 + arow;
            let kk = k0 + ak + e;
            var wv = 0.0;
            if (o < P.cog && kk < kc) {
                wv = w[w_base + o * kc + kk];
            }
            As[ak + e][arow] = wv;

            let kb = k0 + bk + e;
            var xv = 0.0;
            if (tb < P.t_out && kb < kc) {
                let c = kb / P.k;
                let pos = i32(tb * P.stride + kb % P.k) - i32(P.pad);
                if (pos >= 0 && u32(pos) < P.t_in) {
                    xv = x[x_base + c * P.t_in + u32(pos)];
                }
            }
            Bs[bk + e][bcol] = xv;
        }
        workgroupBarrier();
        tile_fma(&acc, lid.x, lid.y);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let o = o0 + lid.y + 16u * i;
        if (o >= P.cog) {
            continue;
        }
        let oc = g * P.cog + o;
        for (var j = 0u; j < 4u; j++) {
            let t = t0 + lid.x + 16u * j;
            if (t >= P.t_out) {
                continue;
            }
            var v = acc[i][j];
            if (P.has_bias != 0u) {
                v += bias[oc];
            }
            y[oc * P.t_out + t] = act_f(v, P.act);
        }
    }
}
