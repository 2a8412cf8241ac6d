//! The one wgpu device of the process: adapter choice, limits, error capture
//! and the compiled-pipeline cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::pool::Pool;

/// Why no GPU device could be opened. The caller falls back to the CPU backend.
#[derive(Clone, Debug)]
pub enum InitError {
    /// No Vulkan adapter at all (no GPU, and no lavapipe installed).
    NoAdapter,
    /// An adapter exists but refused to give a device.
    Device { adapter: String, reason: String },
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::NoAdapter => write!(
                f,
                "no Vulkan GPU adapter found (install a GPU driver, or `mesa-vulkan-drivers` for the lavapipe CPU fallback)"
            ),
            InitError::Device { adapter, reason } => {
                write!(f, "GPU adapter {adapter:?} refused a device: {reason}")
            }
        }
    }
}

impl std::error::Error for InitError {}

/// What the chosen adapter is, for logs and for proving a run used a real GPU.
#[derive(Clone, Debug)]
pub struct AdapterInfo {
    pub name: String,
    pub device_type: wgpu::DeviceType,
    pub backend: wgpu::Backend,
    pub driver: String,
    pub driver_info: String,
}

impl AdapterInfo {
    /// True for lavapipe/SwiftShader-style software rasterisers.
    pub fn is_cpu(&self) -> bool {
        self.device_type == wgpu::DeviceType::Cpu
    }
}

impl fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}, {} {})",
            self.name, self.device_type, self.backend, self.driver, self.driver_info
        )
    }
}

/// A compiled kernel: its pipeline and the bind group layout derived from the shader.
#[derive(Clone)]
pub(crate) struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// The process-wide GPU context.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: AdapterInfo,
    limits: wgpu::Limits,
    kernels: Mutex<HashMap<&'static str, Kernel>>,
    pub(crate) pool: Mutex<Pool>,
    lost: Arc<Mutex<Option<String>>>,
    poison: std::sync::atomic::AtomicBool,
}

static GPU: OnceLock<Result<Gpu, InitError>> = OnceLock::new();

/// Mesa's Vulkan device-select layer (an implicit layer wherever Mesa is
/// installed, lavapipe included) connects to a Wayland display to find the
/// "default" GPU; with no desktop session (`XDG_RUNTIME_DIR` unset: servers,
/// CI, containers) libwayland then prints `error: XDG_RUNTIME_DIR is invalid
/// or not set in the environment.` on every GPU probe, in runs that succeed.
/// pipe ranks adapters itself, so there the layer adds nothing: this turns it
/// off (`NODEVICE_SELECT=1`, the layer's own switch) unless the user chose.
/// Call it first thing in `main`, before any thread exists (it sets an
/// environment variable).
pub fn quiet_device_select_layer() {
    if std::env::var_os("NODEVICE_SELECT").is_none()
        && std::env::var_os("XDG_RUNTIME_DIR").is_none()
    {
        // SAFETY: called at the start of main, while the process has one thread.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// Lower is preferred: a real GPU over the CPU fallback.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl Gpu {
    /// The shared device, opened on first use.
    pub fn get() -> Result<&'static Gpu, InitError> {
        GPU.get_or_init(|| pollster::block_on(Gpu::open()))
            .as_ref()
            .map_err(Clone::clone)
    }

    async fn open() -> Result<Gpu, InitError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let mut adapters = instance.enumerate_adapters(wgpu::Backends::VULKAN).await;
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let adapter = adapters.into_iter().next().ok_or(InitError::NoAdapter)?;
        let ai = adapter.get_info();
        let info = AdapterInfo {
            name: ai.name.clone(),
            device_type: ai.device_type,
            backend: ai.backend,
            driver: ai.driver.clone(),
            driver_info: ai.driver_info.clone(),
        };
        // Ask for everything the adapter offers: the WebGPU defaults (128 MiB
        // storage bindings) are too small for long clips' conv activations.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("pipe"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| InitError::Device {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        let lost = Arc::new(Mutex::new(None));
        let lost_cb = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *lost_cb.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{reason:?}: {msg}"));
        });
        // Errors outside our error scopes would otherwise panic inside wgpu.
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("pipe gpu: uncaptured wgpu error: {e}");
        }));
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            kernels: Mutex::new(HashMap::new()),
            pool: Mutex::new(Pool::default()),
            lost,
            poison: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The chosen adapter.
    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    /// The limits the device was opened with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Fill every newly handed-out output buffer with NaN before the kernel
    /// writes it, so tests catch elements a kernel forgot to write.
    pub fn set_poison(&self, on: bool) {
        self.poison.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn poison(&self) -> bool {
        self.poison.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Error if the device has been lost (driver reset, out of memory...).
    pub(crate) fn check_lost(&self) -> anyhow::Result<()> {
        match &*lock(&self.lost) {
            Some(why) => anyhow::bail!("GPU device lost: {why}"),
            None => Ok(()),
        }
    }

    /// The compiled kernel `name`, built from `source()` on first use.
    pub(crate) fn kernel(
        &self,
        name: &'static str,
        source: impl FnOnce() -> String,
    ) -> anyhow::Result<Kernel> {
        if let Some(k) = lock(&self.kernels).get(name) {
            return Ok(k.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!("compiling GPU kernel {name}: {e}");
        }
        let layout = pipeline.get_bind_group_layout(0);
        let k = Kernel {
            name,
            pipeline,
            layout,
        };
        lock(&self.kernels).insert(name, k.clone());
        Ok(k)
    }

    /// Number of kernels compiled so far (each is compiled once).
    pub fn compiled_kernels(&self) -> usize {
        lock(&self.kernels).len()
    }
}

/// Lock, ignoring poisoning: the guarded data stays consistent across a panic
/// in a test thread.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
