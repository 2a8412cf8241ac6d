//! Command recording: a `Batch` holds one command encoder that many ops are
//! recorded into and submits it once (per layer or per clip, not per op).

use anyhow::Context;

use super::device::{Gpu, Kernel, lock};
use super::pool::UNIFORM_BYTES;
use super::tensor::Tensor;
use super::{u32_of, with_common};

/// Max workgroups along one dispatch dimension (WebGPU's guaranteed minimum).
const MAX_GROUPS: u32 = 65535;

pub struct Batch<'g> {
    gpu: &'g Gpu,
    /// The encoder being recorded and its id in the pool's open set.
    encoder: Option<(wgpu::CommandEncoder, u64)>,
    uniforms: Vec<wgpu::Buffer>,
    dispatches: usize,
}

/// Split `n` workgroups into a grid within the per-dimension limit; kernels
/// rebuild the flat index with `flat_index`.
pub(crate) fn grid_1d(n: usize) -> [u32; 3] {
    let n = n.max(1) as u32;
    if n <= MAX_GROUPS {
        [n, 1, 1]
    } else {
        [MAX_GROUPS, n.div_ceil(MAX_GROUPS), 1]
    }
}

impl Gpu {
    /// Start recording. Batches on different threads may record at once.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            gpu: self,
            encoder: None,
            uniforms: Vec::new(),
            dispatches: 0,
        }
    }

    /// Release every idle pooled buffer.
    pub fn trim_pool(&self) {
        lock(&self.pool).trim();
    }

    /// Device buffers created so far (stays flat when the pool reuses them).
    pub fn buffers_created(&self) -> usize {
        lock(&self.pool).created
    }
}

impl<'g> Batch<'g> {
    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Dispatches recorded into the current, unsubmitted encoder.
    pub fn pending_dispatches(&self) -> usize {
        self.dispatches
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let gpu = self.gpu;
        &mut self
            .encoder
            .get_or_insert_with(|| {
                let id = lock(&gpu.pool).open_encoder();
                let enc = gpu
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("pipe batch"),
                    });
                (enc, id)
            })
            .0
    }

    /// An output tensor of `len` floats; NaN-filled when poisoning is on.
    pub fn alloc(&mut self, len: usize) -> anyhow::Result<Tensor> {
        let t = Tensor::uninit(self.gpu, len)?;
        if self.gpu.poison() {
            self.fill(&t, f32::NAN)?;
        }
        Ok(t)
    }

    /// Set the first `t.len()` elements of `t` to `value` (NaN allowed): the
    /// poison of [`Batch::alloc`].
    fn fill(&mut self, t: &Tensor, value: f32) -> anyhow::Result<()> {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct Params {
            n: u32,
            bits: u32,
            _p: [u32; 2],
        }
        let k = self.gpu.kernel("fill", || {
            with_common(include_str!("../../shaders/fill.wgsl"))
        })?;
        let p = Params {
            n: u32_of("fill", "len", t.len())?,
            bits: value.to_bits(),
            _p: [0; 2],
        };
        let op = || format!("fill(len={})", t.len());
        self.dispatch(
            &k,
            &op,
            &[t.buffer()],
            bytemuck::bytes_of(&p),
            grid_1d(t.len().div_ceil(256)),
        )
    }

    /// Copy `len` floats from `src` (starting at float `offset`) into a new tensor.
    pub fn copy(&mut self, src: &Tensor, offset: usize, len: usize) -> anyhow::Result<Tensor> {
        anyhow::ensure!(
            offset + len <= src.len(),
            "GPU copy: {offset}..{} out of a {}-float tensor",
            offset + len,
            src.len()
        );
        let t = Tensor::uninit(self.gpu, len)?;
        if len > 0 {
            self.encoder().copy_buffer_to_buffer(
                src.buffer(),
                (offset * 4) as u64,
                t.buffer(),
                0,
                (len * 4) as u64,
            );
        }
        Ok(t)
    }

    /// Copy all of `src` into `dst` starting at float `at`.
    pub fn copy_into(&mut self, src: &Tensor, dst: &Tensor, at: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            at + src.len() <= dst.len(),
            "GPU copy: {} floats at {at} overrun a {}-float tensor",
            src.len(),
            dst.len()
        );
        if !src.is_empty() {
            self.encoder().copy_buffer_to_buffer(
                src.buffer(),
                0,
                dst.buffer(),
                (at * 4) as u64,
                (src.len() * 4) as u64,
            );
        }
        Ok(())
    }

    /// Copy host data into a new device tensor.
    pub fn upload(&mut self, data: &[f32]) -> anyhow::Result<Tensor> {
        let t = Tensor::uninit(self.gpu, data.len())?;
        if !data.is_empty() {
            // The buffer came from the free list, so no unsubmitted command uses it.
            self.gpu
                .queue
                .write_buffer(t.buffer(), 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    /// Record one compute dispatch. `op` describes the call (name and shapes)
    /// for error messages; `params` is the kernel's uniform struct.
    pub(crate) fn dispatch(
        &mut self,
        kernel: &Kernel,
        op: &dyn Fn() -> String,
        buffers: &[&wgpu::Buffer],
        params: &[u8],
        groups: [u32; 3],
    ) -> anyhow::Result<()> {
        anyhow::ensure!(params.len() as u64 <= UNIFORM_BYTES, "params too large");
        if groups.contains(&0) {
            return Ok(());
        }
        let device = &self.gpu.device;
        let uniform = lock(&self.gpu.pool).take_uniform(device);
        let mut bytes = [0u8; UNIFORM_BYTES as usize];
        bytes[..params.len()].copy_from_slice(params);
        self.gpu.queue.write_buffer(&uniform, 0, &bytes);

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: buffers.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &kernel.layout,
            entries: &entries,
        });
        {
            let mut pass = self
                .encoder()
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(kernel.name),
                    timestamp_writes: None,
                });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.uniforms.push(uniform);
        self.dispatches += 1;
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!("GPU op {} failed: {e}", op());
        }
        Ok(())
    }

    /// Submit what was recorded (no wait). Released buffers become reusable.
    pub fn submit(&mut self) -> anyhow::Result<()> {
        self.gpu.check_lost()?;
        let scope = self
            .gpu
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let id = match self.encoder.take() {
            Some((enc, id)) => {
                self.gpu.queue.submit([enc.finish()]);
                Some(id)
            }
            None => {
                // Still flush queued write_buffer calls.
                self.gpu.queue.submit([]);
                None
            }
        };
        let n = std::mem::take(&mut self.dispatches);
        {
            let mut pool = lock(&self.gpu.pool);
            pool.return_uniforms(std::mem::take(&mut self.uniforms));
            if let Some(id) = id {
                pool.close_encoder(id);
            }
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!("GPU submit of {n} dispatches failed: {e}");
        }
        Ok(())
    }

    /// Submit and block until the device is idle.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.submit()?;
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("waiting for the GPU")?;
        self.gpu.check_lost()
    }

    /// Read a tensor back to the host (submits everything recorded so far).
    pub fn read(&mut self, t: &Tensor) -> anyhow::Result<Vec<f32>> {
        let bytes = (t.len() * 4) as u64;
        if bytes == 0 {
            self.finish()?;
            return Ok(Vec::new());
        }
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pipe readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.encoder()
            .copy_buffer_to_buffer(t.buffer(), 0, &staging, 0, bytes);
        self.finish()?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("waiting for GPU readback")?;
        rx.recv()
            .context("GPU readback callback dropped")?
            .context("mapping GPU readback buffer")?;
        let out = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .context("GPU readback range")?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Unsubmitted work is still submitted so released buffers stay safe to reuse.
        if self.encoder.is_some() || !self.uniforms.is_empty() {
            let _ = self.submit();
        }
    }
}
