// 2-D conv patches (im2col) of a time-major image x [time*freq, channels] for
// output steps t_start .. t_start + t_count:
// y[((to - t_start)*out_freq + fo), c*k*k + kf*k + kt] = x[(to*s - p + kt)*freq + (fo*s - p + kf), c],
// zero outside the image. One thread per output element.
struct Params {
    time: u32, freq: u32, channels: u32, k: u32,
    stride: u32, pad: u32, out_freq: u32, t_start: u32,
    t_count: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    let kk = P.k * P.k;
    let len = P.channels * kk;
    if (i >= P.t_count * P.out_freq * len) {
        return;
    }
    let row = i / len;
    let col = i % len;
    let c = col / kk;
    let kf = (col % kk) / P.k;
    let kt = col % P.k;
    let to = P.t_start + row / P.out_freq;
    let fo = row % P.out_freq;
    // Padded coordinates; below `pad` or past the image is the zero border.
    let tp = to * P.stride + kt;
    let fp = fo * P.stride + kf;
    var v = 0.0;
    if (tp >= P.pad && fp >= P.pad && tp - P.pad < P.time && fp - P.pad < P.freq) {
        v = x[((tp - P.pad) * P.freq + (fp - P.pad)) * P.channels + c];
    }
    y[i] = v;
}
