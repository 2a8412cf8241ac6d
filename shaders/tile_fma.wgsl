// The register-blocked GEMM step that matmul.wgsl and conv1d.wgsl share.
// Both stage one K slice of 16 in workgroup memory, As[k][row] (64 rows of
// the output tile) and Bs[k][col] (64 columns); each thread of the 16×16
// workgroup then accumulates its 4×4 register block: rows ly + 16i, columns
// lx + 16j, so shared-memory reads are conflict-free. Prepended to those
// kernels by gpu/matmul.rs and gpu/conv.rs.

var<workgroup> As: array<array<f32, 64>, 16>; // [k][output row]
var<workgroup> Bs: array<array<f32, 64>, 16>; // [k][output column]

fn tile_fma(acc: ptr<function, array<array<f32, 4>, 4>>, lx: u32, ly: u32) {
    for (var kk = 0u; kk < 16u; kk++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            a[i] = As[kk][ly + 16u * i];
            b[i] = Bs[kk][lx + 16u * i];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i][j] = fma(a[i], b[j], (*acc)[i][j]);
            }
        }
    }
}
