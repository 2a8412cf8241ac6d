// Per column c of x [rows, cols], over rows [start, end): the mean, the sum
// of squared deviations from it (second pass, so no cancellation), the min
// and the max, each scaled by `scale` (> 0; m2 by scale²).
// y = [mean (cols) | m2 (cols) | min (cols) | max (cols)]. One thread a column:
// pooling reduces a few hundred frames, so a column loop is short.
struct Params { cols: u32, start: u32, end: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * 64u;
    if (c >= P.cols) {
        return;
    }
    var sum = 0.0;
    var lo = x[P.start * P.cols + c];
    var hi = lo;
    for (var r = P.start; r < P.end; r = r + 1u) {
        let v = x[r * P.cols + c];
        sum = sum + v;
        lo = min(lo, v);
        hi = max(hi, v);
    }
    let mean = sum / f32(P.end - P.start);
    var m2 = 0.0;
    for (var r = P.start; r < P.end; r = r + 1u) {
        let d = x[r * P.cols + c] - mean;
        m2 = m2 + d * d;
    }
    y[c] = mean * P.scale;
    y[P.cols + c] = m2 * P.scale * P.scale;
    y[2u * P.cols + c] = lo * P.scale;
    y[3u * P.cols + c] = hi * P.scale;
}
