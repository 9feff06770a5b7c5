//! Comparing CPUs with the host's and computing baselines (`virsh cpu-compare`,
//! `cpu-baseline`): read-only work over libvirt's CPU map and the host's CPUID, done off the
//! async threads. The map and the decoded host CPU are read once: neither changes while the
//! daemon runs.

use std::{path::Path, sync::OnceLock};

use crate::host::{
    cpu::{Comparison, Cpus, Error},
    cpumodels::CPU_MAP,
};

static CPUS: OnceLock<Result<Cpus, Error>> = OnceLock::new();

fn cpus() -> Result<&'static Cpus, Error> {
    CPUS.get_or_init(|| Cpus::load(Path::new(CPU_MAP)))
        .as_ref()
        .map_err(Clone::clone)
}

async fn run<T: Send + 'static>(
    f: impl FnOnce(&'static Cpus) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || f(cpus()?))
        .await
        .map_err(|e| Error::internal(format!("CPU task failed: {e}")))?
}

/// `xml`'s CPU against the host's; with `fail`, an incompatible CPU is an error.
pub async fn compare(xml: String, fail: bool) -> Result<Comparison, Error> {
    run(move |c| c.compare(None, &xml, fail)).await
}

/// The baseline of the host CPUs `xmls` (`flags`: libvirt's `VIR_CONNECT_BASELINE_CPU_*`),
/// as libvirt's QEMU driver (`qemu`) or its test driver computes it.
pub async fn baseline(xmls: Vec<String>, flags: u32, qemu: bool) -> Result<String, Error> {
    run(move |c| c.baseline(&xmls, flags, qemu)).await
}
