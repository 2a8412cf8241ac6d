// Bidirectional multi-head softmax attention, flash style: each workgroup
// owns 64 queries of one head (one query per thread, q and the output row in
// registers) and streams keys/values through workgroup memory 16 at a time with
// an online softmax (running max m and denominator l), so the T×T score matrix
// never exists. Memory is O(T·H) whatever the clip length.
//
// q, k, v and o are rows of `stride`/`o_stride` floats starting at the given
// offsets; head h uses channels h·hd .. h·hd+hd. That lets q, k and v be
// column blocks of one fused [T, 3H] projection. hd ≤ 64; all inner loops
// run over the constant 64 with zero padding so they can be unrolled into
// registers.

struct Params {
    t: u32, hd: u32, stride: u32, o_stride: u32,
    q_off: u32, k_off: u32, v_off: u32, scale: f32,
}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;

const BQ: u32 = 64u;
const BKV: u32 = 16u;
const D: u32 = 64u;

var<workgroup> Ks: array<array<vec4<f32>, 16>, 16>; // [key][dim/4]
var<workgroup> Vs: array<array<vec4<f32>, 16>, 16>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let head = wid.y;
    let qi = wid.x * BQ + lid;
    let valid = qi < P.t;
    let col0 = head * P.hd;

    // q and the output row as 16 vec4 registers (64 dims, zero-padded).
    var qr: array<vec4<f32>, 16>;
    var acc: array<vec4<f32>, 16>;
    if (valid) {
        let base = qi * P.stride + P.q_off + col0;
        for (var j = 0u; j < D; j++) {
            if (j < P.hd) {
                qr[j / 4u][j % 4u] = q[base + j] * P.scale;
            }
        }
    }

    var m = -3.0e38;
    var l = 0.0;
    for (var k0 = 0u; k0 < P.t; k0 += BKV) {
        // 16 keys × 64 dims of K and V, 16 elements per thread each.
        for (var e = lid; e < BKV * D; e += BQ) {
            let r = e / D;
            let c = e % D;
            let kj = k0 + r;
            var kv = 0.0;
            var vv = 0.0;
            if (kj < P.t && c < P.hd) {
                kv = k[kj * P.stride + P.k_off + col0 + c];
                vv = v[kj * P.stride + P.v_off + col0 + c];
            }
            Ks[r][c / 4u][c % 4u] = kv;
            Vs[r][c / 4u][c % 4u] = vv;
        }
        workgroupBarrier();

        var s: array<f32, 16>;
        var mt = m;
        for (var r = 0u; r < BKV; r++) {
            var d = vec4<f32>(0.0);
            for (var j = 0u; j < D / 4u; j++) {
                d = fma(qr[j], Ks[r][j], d);
            }
            let dot_r = (d.x + d.y) + (d.z + d.w);
            s[r] = dot_r;
            if (k0 + r < P.t) {
                mt = max(mt, dot_r);
            }
        }
        let corr = exp(m - mt);
        l *= corr;
        for (var j = 0u; j < D / 4u; j++) {
            acc[j] *= corr;
        }
        for (var r = 0u; r < BKV; r++) {
            var p = 0.0;
            if (k0 + r < P.t) {
                p = exp(s[r] - mt);
            }
            l += p;
            for (var j = 0u; j < D / 4u; j++) {
                acc[j] = fma(vec4<f32>(p), Vs[r][j], acc[j]);
            }
        }
        m = mt;
        workgroupBarrier();
    }

    if (valid) {
        let base = qi * P.o_stride + col0;
        let inv = 1.0 / l;
        for (var j = 0u; j < D; j++) {
            if (j < P.hd) {
                o[base + j] = acc[j / 4u][j % 4u] * inv;
            }
        }
    }
}
