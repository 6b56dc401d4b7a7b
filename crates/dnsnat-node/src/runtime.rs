//! The addon's tokio runtime and what it reports about itself.

use napi_derive::napi;

/// Worker threads of the runtime: one per core on the two-core machines this
/// runs on (a TUN reader and a socket reader can then progress in parallel),
/// capped so a big host does not get a thread per core for a tunnel.
const MAX_WORKERS: usize = 4;
const THREAD_NAME: &str = "dnsnat-rt";

#[napi_derive::module_init]
fn init() {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, MAX_WORKERS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
        .expect("dnsnat: cannot start the tokio runtime");
    napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
}

/// What this native build is, for `dnsnat --version` and bug reports.
#[napi(object)]
pub struct BuildInfo {
    /// Version of the Rust crates (kept equal to the npm package version).
    pub version: String,
    /// Rust target triple the addon was compiled for.
    pub target: String,
    /// Cargo profile (`release` for anything shipped).
    pub profile: String,
    /// `rustc --version` of the compiler that built it.
    pub rustc: String,
}

#[napi]
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        target: env!("DNSNAT_TARGET").to_string(),
        profile: env!("DNSNAT_PROFILE").to_string(),
        rustc: env!("DNSNAT_RUSTC").to_string(),
    }
}

/// Where an async native call actually ran.
#[napi(object)]
pub struct RuntimeInfo {
    /// Name of the runtime thread that executed a spawned task.
    pub thread_name: String,
    /// Worker threads of the runtime.
    pub workers: u32,
    /// Milliseconds the task slept on the runtime's timer before answering.
    pub slept_ms: u32,
}

/// Resolves on the tokio runtime after sleeping `sleep_ms` on its timer,
/// proving the runtime, its timer and the Promise bridge work end to end.
#[napi]
pub async fn runtime_info(sleep_ms: Option<u32>) -> napi::Result<RuntimeInfo> {
    let sleep_ms = sleep_ms.unwrap_or(0).min(10_000);
    let task = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(sleep_ms))).await;
        std::thread::current().name().unwrap_or("").to_string()
    });
    let thread_name = task
        .await
        .map_err(|e| napi::Error::from_reason(format!("runtime task failed: {e}")))?;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    Ok(RuntimeInfo {
        thread_name,
        workers: u32::try_from(workers).unwrap_or(u32::MAX),
        slept_ms: sleep_ms,
    })
}
