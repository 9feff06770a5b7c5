//! More of libvirt's remote procedures, in modules of their own so that the shared dispatch
//! table gains one line: storage pool discovery and capabilities ([`storage`]) and the domain
//! procedures virsh's domain commands call beyond the basics ([`domain`]).

mod domain;
mod save;
mod storage;

use super::{Shared, dispatch::Session, error::RpcResult};

/// `remote_procedure` numbers of the procedures implemented here.
pub mod procs {
    pub const DOMAIN_ATTACH_DEVICE: i32 = 8;
    pub const DOMAIN_DETACH_DEVICE: i32 = 13;
    pub const DOMAIN_SET_MAX_MEMORY: i32 = 30;
    pub const DOMAIN_SET_MEMORY: i32 = 31;
    pub const DOMAIN_SET_VCPUS: i32 = 32;
    pub const CONNECT_FIND_STORAGE_POOL_SOURCES: i32 = 75;
    pub const DOMAIN_ATTACH_DEVICE_FLAGS: i32 = 160;
    pub const DOMAIN_DETACH_DEVICE_FLAGS: i32 = 161;
    pub const DOMAIN_GET_JOB_INFO: i32 = 163;
    pub const DOMAIN_UPDATE_DEVICE_FLAGS: i32 = 174;
    pub const DOMAIN_MANAGED_SAVE: i32 = 182;
    pub const DOMAIN_MANAGED_SAVE_REMOVE: i32 = 184;
    pub const DOMAIN_GET_BLOCK_INFO: i32 = 194;
    pub const DOMAIN_SET_VCPUS_FLAGS: i32 = 199;
    pub const DOMAIN_SET_MEMORY_FLAGS: i32 = 204;
    pub const DOMAIN_INJECT_NMI: i32 = 210;
    pub const DOMAIN_GET_VCPU_PIN_INFO: i32 = 230;
    pub const DOMAIN_SET_METADATA: i32 = 264;
    pub const DOMAIN_GET_METADATA: i32 = 265;
    pub const DOMAIN_GET_HOSTNAME: i32 = 277;
    pub const DOMAIN_FSFREEZE: i32 = 335;
    pub const DOMAIN_FSTHAW: i32 = 336;
    pub const CONNECT_GET_STORAGE_POOL_CAPABILITIES: i32 = 403;
    pub const DOMAIN_GET_GUEST_INFO: i32 = 418;
    pub const DOMAIN_CORE_DUMP: i32 = 53;
    pub const DOMAIN_RESTORE: i32 = 54;
    pub const DOMAIN_SAVE: i32 = 55;
    pub const DOMAIN_SAVE_FLAGS: i32 = 232;
    pub const DOMAIN_RESTORE_FLAGS: i32 = 233;
    pub const DOMAIN_SAVE_IMAGE_GET_XML_DESC: i32 = 235;
    pub const DOMAIN_SAVE_IMAGE_DEFINE_XML: i32 = 236;
    pub const DOMAIN_SET_MEMORY_STATS_PERIOD: i32 = 308;
    pub const DOMAIN_CORE_DUMP_WITH_FORMAT: i32 = 334;
    pub const DOMAIN_SAVE_PARAMS: i32 = 440;
    pub const DOMAIN_RESTORE_PARAMS: i32 = 441;
    pub const DOMAIN_GET_JOB_STATS: i32 = 298;
    pub const DOMAIN_ABORT_JOB: i32 = 164;
    pub const DOMAIN_ABORT_JOB_FLAGS: i32 = 442;

    /// The procedures of `virsh save`, `restore`, `save-image-*`, `dump` and
    /// `set-memory-stats-period` (see [`super::save`]).
    pub const SAVE: &[i32] = &[
        DOMAIN_CORE_DUMP,
        DOMAIN_RESTORE,
        DOMAIN_SAVE,
        DOMAIN_SAVE_FLAGS,
        DOMAIN_RESTORE_FLAGS,
        DOMAIN_SAVE_IMAGE_GET_XML_DESC,
        DOMAIN_SAVE_IMAGE_DEFINE_XML,
        DOMAIN_SET_MEMORY_STATS_PERIOD,
        DOMAIN_CORE_DUMP_WITH_FORMAT,
        DOMAIN_SAVE_PARAMS,
        DOMAIN_RESTORE_PARAMS,
        DOMAIN_GET_JOB_STATS,
        DOMAIN_ABORT_JOB,
        DOMAIN_ABORT_JOB_FLAGS,
    ];

    /// Every procedure above, for the coverage count and its test.
    pub const IMPLEMENTED: &[i32] = &[
        DOMAIN_ATTACH_DEVICE,
        DOMAIN_DETACH_DEVICE,
        DOMAIN_SET_MAX_MEMORY,
        DOMAIN_SET_MEMORY,
        DOMAIN_SET_VCPUS,
        CONNECT_FIND_STORAGE_POOL_SOURCES,
        DOMAIN_ATTACH_DEVICE_FLAGS,
        DOMAIN_DETACH_DEVICE_FLAGS,
        DOMAIN_GET_JOB_INFO,
        DOMAIN_UPDATE_DEVICE_FLAGS,
        DOMAIN_MANAGED_SAVE,
        DOMAIN_MANAGED_SAVE_REMOVE,
        DOMAIN_GET_BLOCK_INFO,
        DOMAIN_SET_VCPUS_FLAGS,
        DOMAIN_SET_MEMORY_FLAGS,
        DOMAIN_INJECT_NMI,
        DOMAIN_GET_VCPU_PIN_INFO,
        DOMAIN_SET_METADATA,
        DOMAIN_GET_METADATA,
        DOMAIN_GET_HOSTNAME,
        DOMAIN_FSFREEZE,
        DOMAIN_FSTHAW,
        CONNECT_GET_STORAGE_POOL_CAPABILITIES,
        DOMAIN_GET_GUEST_INFO,
        DOMAIN_CORE_DUMP,
        DOMAIN_RESTORE,
        DOMAIN_SAVE,
        DOMAIN_SAVE_FLAGS,
        DOMAIN_RESTORE_FLAGS,
        DOMAIN_SAVE_IMAGE_GET_XML_DESC,
        DOMAIN_SAVE_IMAGE_DEFINE_XML,
        DOMAIN_SET_MEMORY_STATS_PERIOD,
        DOMAIN_CORE_DUMP_WITH_FORMAT,
        DOMAIN_SAVE_PARAMS,
        DOMAIN_RESTORE_PARAMS,
        DOMAIN_GET_JOB_STATS,
        DOMAIN_ABORT_JOB,
        DOMAIN_ABORT_JOB_FLAGS,
    ];
}

/// Whether procedure `p` is answered here.
pub(super) fn handles(p: i32) -> bool {
    procs::IMPLEMENTED.contains(&p)
}

/// Carry out procedure `p` (one of [`procs::IMPLEMENTED`]).
pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    match p {
        procs::CONNECT_FIND_STORAGE_POOL_SOURCES | procs::CONNECT_GET_STORAGE_POOL_CAPABILITIES => {
            storage::call(shared, s, p, body).await
        }
        p if procs::SAVE.contains(&p) => save::call(shared, s, p, body).await,
        p => domain::call(shared, s, p, body).await,
    }
}

#[cfg(test)]
mod tests {
    use super::procs;

    #[test]
    fn procedures_are_distinct_declared_and_not_answered_elsewhere() {
        let mut v = procs::IMPLEMENTED.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), procs::IMPLEMENTED.len());
        for p in procs::IMPLEMENTED {
            assert!((1..=crate::rpc::proto::REMOTE_PROCEDURES as i32).contains(p));
            assert!(!crate::rpc::proto::procs::IMPLEMENTED.contains(p), "{p}");
            assert!(!crate::rpc::objproto::procs::IMPLEMENTED.contains(p), "{p}");
        }
    }
}
