//! Buffer pool: the device buffers behind [`Tensor`](super::Tensor)s.
//!
//! Buffers are bucketed by capacity (steps of 1/4 octave, so at most 25%
//! waste) and reused. A released buffer may still be used by commands recorded
//! into an encoder that is not yet submitted, and `Queue::write_buffer` (uploads,
//! kernel params) runs before those commands. So a released buffer waits in
//! `pending` until every encoder that was open when it was released has been
//! submitted; only then can it be handed out again.

use std::collections::HashMap;

/// Storage buffers for tensors.
const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);
/// Every kernel's parameters fit in this many bytes.
pub(crate) const UNIFORM_BYTES: u64 = 64;

#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Released buffers and the encoders (ids) that may still use them.
    pending: Vec<(wgpu::Buffer, Vec<u64>)>,
    /// Ids of encoders being recorded.
    open: Vec<u64>,
    next_id: u64,
    uniforms: Vec<wgpu::Buffer>,
    /// Buffers created (not reused) so far, for tests of the reuse.
    pub created: usize,
}

/// Bucketed capacity in bytes for `bytes`: 256-byte aligned, ≤ 25% slack.
fn bucket(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let octave = 63 - b.leading_zeros(); // 2^octave <= b
    let step = (1u64 << octave) / 4;
    let cap = b.div_ceil(step) * step;
    cap.div_ceil(256) * 256
}

impl Pool {
    /// A buffer of at least `bytes`, reused from its capacity bucket if one is free.
    pub(crate) fn take(&mut self, device: &wgpu::Device, bytes: u64) -> wgpu::Buffer {
        let cap = bucket(bytes);
        if let Some(b) = self.free.get_mut(&cap).and_then(Vec::pop) {
            return b;
        }
        self.created += 1;
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pipe tensor"),
            size: cap,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        })
    }

    pub(crate) fn take_uniform(&mut self, device: &wgpu::Device) -> wgpu::Buffer {
        self.uniforms.pop().unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pipe params"),
                size: UNIFORM_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// Uniform buffers of a batch, returned once the batch is submitted.
    pub(crate) fn return_uniforms(&mut self, bufs: Vec<wgpu::Buffer>) {
        self.uniforms.extend(bufs);
    }

    /// A command encoder started recording; returns its id.
    pub(crate) fn open_encoder(&mut self) -> u64 {
        self.next_id += 1;
        self.open.push(self.next_id);
        self.next_id
    }

    /// Encoder `id` was submitted (or dropped): buffers no open encoder can
    /// still use become reusable.
    pub(crate) fn close_encoder(&mut self, id: u64) {
        self.open.retain(|&o| o != id);
        let open = &self.open;
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, ids)| ids.iter().all(|i| !open.contains(i)));
        self.pending = wait;
        for (b, _) in ready {
            self.free.entry(b.size()).or_default().push(b);
        }
    }

    pub(crate) fn release(&mut self, b: wgpu::Buffer) {
        if self.open.is_empty() {
            self.free.entry(b.size()).or_default().push(b);
        } else {
            self.pending.push((b, self.open.clone()));
        }
    }

    /// Drop every idle buffer (frees device memory between clips of very different lengths).
    pub(crate) fn trim(&mut self) {
        self.free.clear();
        self.uniforms.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_cover_request_with_bounded_slack() {
        for bytes in [
            1u64,
            4,
            255,
            256,
            257,
            1000,
            4096,
            5000,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let c = bucket(bytes);
            assert!(c >= bytes && c.is_multiple_of(256), "{bytes} -> {c}");
            assert!(
                c <= (bytes.max(256) * 5 / 4).div_ceil(256) * 256 + 256,
                "{bytes} -> {c}"
            );
        }
        assert_eq!(bucket(1000), bucket(1010));
    }
}
