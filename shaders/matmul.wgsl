// y[M,N] = act(x[M,K] · W[N,K]ᵀ + b[N]) (+ res[M,N]).
//
// W is the PyTorch Linear layout [out, in], so both operands are K-contiguous
// and are read the same way. The Rust wrapper prepends a header that declares
// the x/W bindings and `load_x4`/`load_w4`: vec4 loads when K % 4 == 0, scalar
// bounds-checked loads otherwise. Loads past M, N or K return 0.
//
// Tiling: a 16×16 workgroup computes a 64×64 output tile; each thread holds a
// 4×4 register block (rows ty+16i, cols tx+16j, so shared reads are
// conflict-free). K is walked in slices of 16 staged in workgroup memory (8 KiB).

struct Params { M: u32, N: u32, K: u32, act: u32, has_bias: u32, has_res: u32, _p0: u32, _p1: u32 }
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> res: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> P: Params;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// As [k][row] and Bs [k][col] and tile_fma come from tile_fma.wgsl.

@compute @workgroup_size(16, 16)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let m0 = wid.y * BM;
    let n0 = wid.x * BN;
    // Each thread stages one vec4 of x and one of W per K slice.
    let lrow = tid / 4u;
    let lk = (tid % 4u) * 4u;

    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < P.K; k0 += BK) {
        let xv = load_x4(m0 + lrow, k0 + lk);
        As[lk][lrow] = xv.x;
        As[lk + 1u][lrow] = xv.y;
        As[lk + 2u][lrow] = xv.z;
        As[lk + 3u][lrow] = xv.w;
        let wv = load_w4(n0 + lrow, k0 + lk);
        Bs[lk][lrow] = wv.x;
        Bs[lk + 1u][lrow] = wv.y;
        Bs[lk + 2u][lrow] = wv.z;
        Bs[lk + 3u][lrow] = wv.w;
        workgroupBarrier();
        tile_fma(&acc, lid.x, lid.y);
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y + 16u * i;
        if (m >= P.M) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x + 16u * j;
            if (n >= P.N) {
                continue;
            }
            var v = acc[i][j];
            if (P.has_bias != 0u) {
                v += bias[n];
            }
            v = act_f(v, P.act);
            if (P.has_res != 0u) {
                v += res[m * P.N + n];
            }
            y[m * P.N + n] = v;
        }
    }
}
