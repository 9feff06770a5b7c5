//! What a driver needs to move a running guest to another host (or another daemon on this
//! one): how the outgoing stream is tuned, what it measured, and the settings libvirt keeps
//! per domain (maximum downtime, bandwidth, compression cache).

/// libvirt's bandwidth of a domain never limited (MiB/s): `INT64_MAX` bytes per second.
pub const UNLIMITED_MIB: u64 = (i64::MAX as u64) / (1024 * 1024);

/// How an outgoing migration runs (libvirt's migration flags that reach the hypervisor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateOut {
    /// `tcp:HOST:PORT`, where the destination listens.
    pub uri: String,
    /// Throttle the guest's vCPUs until the copy converges (`auto-converge`).
    pub auto_converge: bool,
    /// XBZRLE compression of pages sent again (`--compressed`).
    pub compressed: bool,
    /// Allow switching to post-copy (`--postcopy`).
    pub postcopy: bool,
    /// Pause the guest first (a non-live migration).
    pub pause_first: bool,
    /// Bandwidth in MiB/s (0: unlimited).
    pub bandwidth_mib: u64,
}

/// One migration setting libvirt keeps per domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateSetting {
    /// The longest the guest may stand still at the switch-over, in milliseconds.
    MaxDowntime,
    /// The bandwidth in MiB/s (precopy).
    MaxSpeed,
    /// The bandwidth in MiB/s after switching to post-copy.
    MaxPostcopySpeed,
    /// The XBZRLE cache in bytes.
    CompressionCache,
}

/// What an outgoing or incoming migration has done so far (QEMU's `query-migrate`), in the
/// units libvirt's job statistics use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationStats {
    /// `active`, `completed`, `failed`, `cancelled`, `postcopy-active`… (empty: none)
    pub status: String,
    pub time_elapsed_ms: u64,
    pub downtime_ms: Option<u64>,
    pub setup_time_ms: Option<u64>,
    pub memory_total: u64,
    pub memory_processed: u64,
    pub memory_remaining: u64,
    pub memory_bps: u64,
    pub memory_constant: u64,
    pub memory_normal: u64,
    pub memory_normal_bytes: u64,
    pub dirty_rate: u64,
    pub memory_iteration: u64,
    pub memory_page_size: u64,
    pub postcopy_requests: u64,
}

/// QEMU's form (`tcp:HOST:PORT`) of a migration URI given as libvirt takes it
/// (`tcp://HOST:PORT` or `tcp:HOST:PORT`); `None` for another scheme or no port.
pub fn qemu_uri(uri: &str) -> Option<(String, u16)> {
    let rest = uri
        .strip_prefix("tcp://")
        .or_else(|| uri.strip_prefix("tcp:"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port))
}
