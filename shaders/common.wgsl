// Shared by every kernel: activations. Prepended to each kernel's source by
// `gpu::kernel`, so the GPU uses exactly the erf of `crate::ops::erf`.

const ACT_NONE: u32 = 0u;
const ACT_GELU: u32 = 1u;
const ACT_RELU: u32 = 2u;
const ACT_SILU: u32 = 3u;

// Same piecewise formula as the CPU oracle: Maclaurin series below 0.5,
// Numerical Recipes erfcc above.
fn erf_f(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.5) {
        let z = x * x;
        let p = 1.0 + z * (-1.0 / 3.0 + z * (1.0 / 10.0 + z * (-1.0 / 42.0
            + z * (1.0 / 216.0 + z * (-1.0 / 1320.0 + z * (1.0 / 9360.0))))));
        return 1.1283791670955126 * x * p;
    }
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398
        + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = 1.0 - t * exp(-a * a + poly);
    return select(r, -r, x < 0.0);
}

fn act_f(x: f32, mode: u32) -> f32 {
    switch mode {
        case 1u: { return 0.5 * x * (1.0 + erf_f(x * 0.7071067811865476)); }
        case 2u: { return max(x, 0.0); }
        case 3u: { return x / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

// Flat element index for 1-D work spread over a 2-D grid (x is capped at 65535).
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>, wg_size: u32) -> u32 {
    return gid.x + gid.y * nwg.x * wg_size;
}
