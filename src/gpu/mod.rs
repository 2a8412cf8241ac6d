//! GPU backend: the encoder ops as hand-written WGSL compute kernels run
//! through wgpu (Vulkan; lavapipe on machines without a GPU).
//!
//! - [`device`]: the one device of the process, adapter choice, pipeline cache.
//! - [`pool`]: pooled device buffers; [`tensor`]: the [`Tensor`] handle over one.
//! - [`batch`]: records many ops into one command encoder, reads results back.
//! - one module per kernel family, each a thin wrapper over `shaders/<name>.wgsl`.
//!
//! Every kernel is tested against the CPU reference op in `tests/gpu_kernels.rs`.
//!
//! Imports only `ops` and the backend contract (`backend`) it implements.

pub mod attention;
pub mod backend;
pub mod batch;
pub mod bench;
pub mod conv;
pub mod device;
pub mod eltwise;
pub mod glu;
pub mod matmul;
pub mod norm;
pub mod patches;
pub mod pool;
pub mod rotary;
pub mod tensor;

pub use backend::GpuBackend;
pub use batch::Batch;
pub use bench::{MatmulBench, bench_matmul};
pub use device::{AdapterInfo, Gpu, InitError, quiet_device_select_layer};
pub use tensor::Tensor;

use crate::ops::Act;

/// Activations shared by every kernel (erf, GELU, SiLU, ReLU, index helper).
const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

/// Full WGSL source of a kernel: the common prelude, then the kernel body.
pub(crate) fn with_common(body: &str) -> String {
    format!("{COMMON_WGSL}\n{body}")
}

/// The `act` code the shaders' `act_f` switches on.
pub(crate) fn act_code(act: Act) -> u32 {
    match act {
        Act::None => 0,
        Act::Gelu => 1,
        Act::Relu => 2,
        Act::Silu => 3,
    }
}

/// Check a host-side length before an op (clear error instead of garbage).
pub(crate) fn check_len(op: &str, what: &str, got: usize, want: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        got == want,
        "GPU {op}: {what} has {got} elements, expected {want}"
    );
    Ok(())
}

/// u32 for a shader parameter, with a clear error for sizes the kernels cannot index.
pub(crate) fn u32_of(op: &str, what: &str, v: usize) -> anyhow::Result<u32> {
    u32::try_from(v).map_err(|_| anyhow::anyhow!("GPU {op}: {what} = {v} does not fit in u32"))
}
