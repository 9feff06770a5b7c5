//! Live configuration changes a driver carries out on a running guest beyond tuning: I/O
//! threads added, removed or retuned (libvirt's `virDomainAddIOThread`, `DelIOThread`,
//! `SetIOThreadParams`).

/// The I/O thread values `virsh iothreadset` may change (`None`: unchanged). Polling values
/// exist only in the running QEMU; the thread pool bounds are `<iothread thread_pool_*>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoThreadParams {
    pub poll_max_ns: Option<u64>,
    pub poll_grow: Option<u32>,
    pub poll_shrink: Option<u32>,
    /// -1: QEMU's default (a persistent change only).
    pub pool_min: Option<i32>,
    pub pool_max: Option<i32>,
}

impl IoThreadParams {
    /// Whether a polling value is among the changes (they have no persistent form).
    pub fn polling(&self) -> bool {
        self.poll_max_ns.is_some() || self.poll_grow.is_some() || self.poll_shrink.is_some()
    }
}

/// One change of a guest's I/O threads, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoThreadChange {
    Add(u32),
    Remove(u32),
    Set(u32, IoThreadParams),
}

impl IoThreadChange {
    pub fn id(&self) -> u32 {
        match self {
            Self::Add(id) | Self::Remove(id) | Self::Set(id, _) => *id,
        }
    }
}
