// y[c, r] = x[r, c] for x [rows, cols], through a padded shared tile so both
// the read and the write are coalesced.
struct Params { rows: u32, cols: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

var<workgroup> tile: array<array<f32, 17>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r = wid.y * 16u + lid.y;
    let c = wid.x * 16u + lid.x;
    if (r < P.rows && c < P.cols) {
        tile[lid.y][lid.x] = x[r * P.cols + c];
    }
    workgroupBarrier();
    // Output tile: rows are input columns.
    let orow = wid.x * 16u + lid.y;
    let ocol = wid.y * 16u + lid.x;
    if (orow < P.cols && ocol < P.rows) {
        y[orow * P.rows + ocol] = tile[lid.x][lid.y];
    }
}
