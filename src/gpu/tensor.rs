//! The device tensor: an f32 buffer taken from the process's pool.

use super::device::{Gpu, lock};

/// An f32 tensor resident on the GPU. Its buffer goes back to the pool on drop.
pub struct Tensor {
    buf: Option<wgpu::Buffer>,
    len: usize,
}

impl Tensor {
    /// Take a pooled buffer for `len` floats; contents are unspecified.
    pub(crate) fn uninit(gpu: &Gpu, len: usize) -> anyhow::Result<Tensor> {
        let bytes = (len.max(1) * 4) as u64;
        let max = gpu
            .limits()
            .max_storage_buffer_binding_size
            .min(gpu.limits().max_buffer_size);
        anyhow::ensure!(
            bytes <= max,
            "GPU tensor of {len} floats ({bytes} bytes) exceeds the device's storage binding limit of {max} bytes"
        );
        let buf = lock(&gpu.pool).take(&gpu.device, bytes);
        Ok(Tensor {
            buf: Some(buf),
            len,
        })
    }

    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("tensor buffer present until drop")
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        if let (Some(b), Ok(gpu)) = (self.buf.take(), Gpu::get()) {
            lock(&gpu.pool).release(b);
        }
    }
}
