//! More of libvirt's remote procedures, in modules of their own so that the shared dispatch
//! table gains one line: storage pool discovery and capabilities ([`storage`]) and the domain
//! procedures virsh's domain commands call beyond the basics ([`domain`]).

mod agent;
mod backup;
mod block;
mod checkpoint;
mod cpu;
mod domain;
mod host;
mod iftune;
mod livecfg;
mod migrate;
mod misc;
mod params;
mod save;
mod storage;
mod tune;

pub(crate) use backup::job_params;

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
    pub const DOMAIN_FSTRIM: i32 = 294;
    pub const DOMAIN_FSFREEZE: i32 = 335;
    pub const DOMAIN_FSTHAW: i32 = 336;
    pub const DOMAIN_GET_TIME: i32 = 337;
    pub const DOMAIN_SET_TIME: i32 = 338;
    pub const DOMAIN_GET_FSINFO: i32 = 349;
    pub const DOMAIN_SET_USER_PASSWORD: i32 = 357;
    pub const DOMAIN_GET_GUEST_VCPUS: i32 = 371;
    pub const DOMAIN_SET_GUEST_VCPUS: i32 = 372;
    pub const CONNECT_GET_STORAGE_POOL_CAPABILITIES: i32 = 403;
    pub const DOMAIN_GET_GUEST_INFO: i32 = 418;
    pub const DOMAIN_AUTHORIZED_SSH_KEYS_GET: i32 = 424;
    pub const DOMAIN_AUTHORIZED_SSH_KEYS_SET: i32 = 425;
    pub const DOMAIN_SEND_KEY: i32 = 226;
    pub const DOMAIN_PM_SUSPEND_FOR_DURATION: i32 = 261;
    pub const DOMAIN_PM_WAKEUP: i32 = 267;
    pub const DOMAIN_RENAME: i32 = 358;
    pub const DOMAIN_SET_LIFECYCLE_ACTION: i32 = 390;
    pub const DOMAIN_GET_LAUNCH_SECURITY_INFO: i32 = 396;
    pub const DOMAIN_START_DIRTY_RATE_CALC: i32 = 427;
    pub const DOMAIN_SET_LAUNCH_SECURITY_STATE: i32 = 439;
    pub const DOMAIN_MANAGED_SAVE_GET_XML_DESC: i32 = 388;
    pub const DOMAIN_MANAGED_SAVE_DEFINE_XML: i32 = 389;

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
    pub const DOMAIN_BACKUP_BEGIN: i32 = 421;
    pub const DOMAIN_BACKUP_GET_XML_DESC: i32 = 422;

    /// `virsh backup-begin` and `backup-dumpxml` (see [`super::backup`]).
    pub const BACKUP: &[i32] = &[DOMAIN_BACKUP_BEGIN, DOMAIN_BACKUP_GET_XML_DESC];

    pub const DOMAIN_CHECKPOINT_CREATE_XML: i32 = 411;
    pub const DOMAIN_CHECKPOINT_GET_XML_DESC: i32 = 412;
    pub const DOMAIN_LIST_ALL_CHECKPOINTS: i32 = 413;
    pub const DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN: i32 = 414;
    pub const DOMAIN_CHECKPOINT_LOOKUP_BY_NAME: i32 = 415;
    pub const DOMAIN_CHECKPOINT_GET_PARENT: i32 = 416;
    pub const DOMAIN_CHECKPOINT_DELETE: i32 = 417;

    /// virsh's `checkpoint-*` procedures (see [`super::checkpoint`]).
    pub const CHECKPOINT: &[i32] = &[
        DOMAIN_CHECKPOINT_CREATE_XML,
        DOMAIN_CHECKPOINT_GET_XML_DESC,
        DOMAIN_LIST_ALL_CHECKPOINTS,
        DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN,
        DOMAIN_CHECKPOINT_LOOKUP_BY_NAME,
        DOMAIN_CHECKPOINT_GET_PARENT,
        DOMAIN_CHECKPOINT_DELETE,
    ];

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

    pub const DOMAIN_SET_INTERFACE_PARAMETERS: i32 = 256;
    pub const DOMAIN_GET_INTERFACE_PARAMETERS: i32 = 257;

    /// The procedures of `virsh domiftune` (see [`super::iftune`]).
    pub const IFTUNE: &[i32] = &[
        DOMAIN_SET_INTERFACE_PARAMETERS,
        DOMAIN_GET_INTERFACE_PARAMETERS,
    ];

    /// The procedures of [`super::misc`].
    pub const MISC: &[i32] = &[
        DOMAIN_SEND_KEY,
        DOMAIN_PM_SUSPEND_FOR_DURATION,
        DOMAIN_PM_WAKEUP,
        DOMAIN_RENAME,
        DOMAIN_SET_LIFECYCLE_ACTION,
        DOMAIN_GET_LAUNCH_SECURITY_INFO,
        DOMAIN_START_DIRTY_RATE_CALC,
        DOMAIN_SET_LAUNCH_SECURITY_STATE,
        DOMAIN_MANAGED_SAVE_GET_XML_DESC,
        DOMAIN_MANAGED_SAVE_DEFINE_XML,
    ];

    pub const DOMAIN_BLOCK_JOB_ABORT: i32 = 237;
    pub const DOMAIN_GET_BLOCK_JOB_INFO: i32 = 238;
    pub const DOMAIN_BLOCK_JOB_SET_SPEED: i32 = 239;
    pub const DOMAIN_BLOCK_PULL: i32 = 240;
    pub const DOMAIN_BLOCK_RESIZE: i32 = 251;
    pub const DOMAIN_SET_BLOCK_IO_TUNE: i32 = 252;
    pub const DOMAIN_GET_BLOCK_IO_TUNE: i32 = 253;
    pub const DOMAIN_GET_DISK_ERRORS: i32 = 263;
    pub const DOMAIN_BLOCK_REBASE: i32 = 266;
    pub const DOMAIN_BLOCK_COMMIT: i32 = 290;
    pub const DOMAIN_BLOCK_COPY: i32 = 345;
    pub const DOMAIN_SET_BLOCK_THRESHOLD: i32 = 386;

    /// The block procedures (disk throttling, errors, thresholds, resize, block jobs).
    pub const BLOCK: &[i32] = &[
        DOMAIN_BLOCK_JOB_ABORT,
        DOMAIN_GET_BLOCK_JOB_INFO,
        DOMAIN_BLOCK_JOB_SET_SPEED,
        DOMAIN_BLOCK_PULL,
        DOMAIN_BLOCK_RESIZE,
        DOMAIN_SET_BLOCK_IO_TUNE,
        DOMAIN_GET_BLOCK_IO_TUNE,
        DOMAIN_GET_DISK_ERRORS,
        DOMAIN_BLOCK_REBASE,
        DOMAIN_BLOCK_COMMIT,
        DOMAIN_BLOCK_COPY,
        DOMAIN_SET_BLOCK_THRESHOLD,
    ];

    // tuning (`tune`)
    pub const DOMAIN_PIN_VCPU: i32 = 26;
    pub const DOMAIN_GET_SCHEDULER_TYPE: i32 = 56;
    pub const DOMAIN_GET_SCHEDULER_PARAMETERS: i32 = 57;
    pub const DOMAIN_SET_SCHEDULER_PARAMETERS: i32 = 58;
    pub const DOMAIN_SET_MEMORY_PARAMETERS: i32 = 197;
    pub const DOMAIN_GET_MEMORY_PARAMETERS: i32 = 198;
    pub const DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS: i32 = 219;
    pub const DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS: i32 = 223;
    pub const DOMAIN_PIN_VCPU_FLAGS: i32 = 225;
    pub const DOMAIN_GET_CPU_STATS: i32 = 262;
    pub const DOMAIN_PIN_EMULATOR: i32 = 279;
    pub const DOMAIN_GET_EMULATOR_PIN_INFO: i32 = 280;
    pub const DOMAIN_GET_IOTHREAD_INFO: i32 = 351;
    pub const DOMAIN_SET_BLKIO_PARAMETERS: i32 = 205;
    pub const DOMAIN_GET_BLKIO_PARAMETERS: i32 = 206;
    pub const DOMAIN_SET_NUMA_PARAMETERS: i32 = 254;
    pub const DOMAIN_GET_NUMA_PARAMETERS: i32 = 255;
    pub const DOMAIN_PIN_IOTHREAD: i32 = 352;

    pub const DOMAIN_MIGRATE_SET_MAX_DOWNTIME: i32 = 166;
    pub const DOMAIN_MIGRATE_SET_MAX_SPEED: i32 = 207;
    pub const DOMAIN_MIGRATE_BEGIN3: i32 = 213;
    pub const DOMAIN_MIGRATE_PREPARE3: i32 = 214;
    pub const DOMAIN_MIGRATE_PERFORM3: i32 = 216;
    pub const DOMAIN_MIGRATE_FINISH3: i32 = 217;
    pub const DOMAIN_MIGRATE_CONFIRM3: i32 = 218;
    pub const DOMAIN_MIGRATE_GET_MAX_SPEED: i32 = 242;
    pub const DOMAIN_MIGRATE_GET_COMPRESSION_CACHE: i32 = 299;
    pub const DOMAIN_MIGRATE_SET_COMPRESSION_CACHE: i32 = 300;
    pub const DOMAIN_MIGRATE_BEGIN3_PARAMS: i32 = 302;
    pub const DOMAIN_MIGRATE_PREPARE3_PARAMS: i32 = 303;
    pub const DOMAIN_MIGRATE_PERFORM3_PARAMS: i32 = 305;
    pub const DOMAIN_MIGRATE_FINISH3_PARAMS: i32 = 306;
    pub const DOMAIN_MIGRATE_CONFIRM3_PARAMS: i32 = 307;
    pub const DOMAIN_MIGRATE_START_POST_COPY: i32 = 364;
    pub const DOMAIN_MIGRATE_GET_MAX_DOWNTIME: i32 = 387;

    /// Migration and its tuning, answered by `migrate`.
    pub const MIGRATE: &[i32] = &[
        DOMAIN_MIGRATE_SET_MAX_DOWNTIME,
        DOMAIN_MIGRATE_SET_MAX_SPEED,
        DOMAIN_MIGRATE_BEGIN3,
        DOMAIN_MIGRATE_PREPARE3,
        DOMAIN_MIGRATE_PERFORM3,
        DOMAIN_MIGRATE_FINISH3,
        DOMAIN_MIGRATE_CONFIRM3,
        DOMAIN_MIGRATE_GET_MAX_SPEED,
        DOMAIN_MIGRATE_GET_COMPRESSION_CACHE,
        DOMAIN_MIGRATE_SET_COMPRESSION_CACHE,
        DOMAIN_MIGRATE_BEGIN3_PARAMS,
        DOMAIN_MIGRATE_PREPARE3_PARAMS,
        DOMAIN_MIGRATE_PERFORM3_PARAMS,
        DOMAIN_MIGRATE_FINISH3_PARAMS,
        DOMAIN_MIGRATE_CONFIRM3_PARAMS,
        DOMAIN_MIGRATE_START_POST_COPY,
        DOMAIN_MIGRATE_GET_MAX_DOWNTIME,
    ];

    /// The tuning procedures, answered by `tune`.
    pub const TUNE: &[i32] = &[
        DOMAIN_PIN_VCPU,
        DOMAIN_GET_SCHEDULER_TYPE,
        DOMAIN_GET_SCHEDULER_PARAMETERS,
        DOMAIN_SET_SCHEDULER_PARAMETERS,
        DOMAIN_SET_MEMORY_PARAMETERS,
        DOMAIN_GET_MEMORY_PARAMETERS,
        DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS,
        DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS,
        DOMAIN_PIN_VCPU_FLAGS,
        DOMAIN_GET_CPU_STATS,
        DOMAIN_PIN_EMULATOR,
        DOMAIN_GET_EMULATOR_PIN_INFO,
        DOMAIN_GET_IOTHREAD_INFO,
        DOMAIN_SET_BLKIO_PARAMETERS,
        DOMAIN_GET_BLKIO_PARAMETERS,
        DOMAIN_SET_NUMA_PARAMETERS,
        DOMAIN_GET_NUMA_PARAMETERS,
        DOMAIN_PIN_IOTHREAD,
    ];

    // live configuration (`livecfg`)
    pub const DOMAIN_ADD_IOTHREAD: i32 = 355;
    pub const DOMAIN_DEL_IOTHREAD: i32 = 356;
    pub const DOMAIN_SET_IOTHREAD_PARAMS: i32 = 402;
    pub const DOMAIN_GET_PERF_EVENTS: i32 = 365;
    pub const DOMAIN_SET_PERF_EVENTS: i32 = 366;

    /// The live configuration procedures, answered by `livecfg`.
    pub const LIVECFG: &[i32] = &[
        DOMAIN_ADD_IOTHREAD,
        DOMAIN_DEL_IOTHREAD,
        DOMAIN_SET_IOTHREAD_PARAMS,
        DOMAIN_GET_PERF_EVENTS,
        DOMAIN_SET_PERF_EVENTS,
    ];

    pub const CONNECT_GET_MAX_VCPUS: i32 = 5;
    pub const NODE_GET_CELLS_FREE_MEMORY: i32 = 101;
    pub const CONNECT_DOMAIN_XML_FROM_NATIVE: i32 = 135;
    pub const CONNECT_DOMAIN_XML_TO_NATIVE: i32 = 136;
    pub const CONNECT_COMPARE_CPU: i32 = 158;
    pub const CONNECT_BASELINE_CPU: i32 = 162;
    pub const NODE_SUSPEND_FOR_DURATION: i32 = 250;
    pub const NODE_SET_MEMORY_PARAMETERS: i32 = 288;
    pub const NODE_GET_MEMORY_PARAMETERS: i32 = 289;
    pub const CONNECT_GET_CPU_MODEL_NAMES: i32 = 312;
    pub const NODE_GET_FREE_PAGES: i32 = 340;
    pub const NODE_ALLOC_PAGES: i32 = 347;
    pub const CONNECT_COMPARE_HYPERVISOR_CPU: i32 = 393;
    pub const CONNECT_BASELINE_HYPERVISOR_CPU: i32 = 394;
    pub const NODE_GET_SEV_INFO: i32 = 395;

    /// Procedures answered here only with `VIR_ERR_NO_SUPPORT` in libvirt's words (not counted
    /// as implemented): comparison with and baselines for the CPU QEMU reports, which
    /// virtbus does not probe, and the QEMU command line of a definition (a format libvirt
    /// lacks refused as it does).
    pub const REFUSED: &[i32] = &[
        CONNECT_DOMAIN_XML_TO_NATIVE,
        CONNECT_COMPARE_HYPERVISOR_CPU,
        CONNECT_BASELINE_HYPERVISOR_CPU,
    ];

    /// Every procedure above but the refused ones, for the coverage count and its test.
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
        // the guest agent's (agent.rs)
        DOMAIN_FSTRIM,
        DOMAIN_GET_TIME,
        DOMAIN_SET_TIME,
        DOMAIN_GET_FSINFO,
        DOMAIN_SET_USER_PASSWORD,
        DOMAIN_GET_GUEST_VCPUS,
        DOMAIN_SET_GUEST_VCPUS,
        DOMAIN_AUTHORIZED_SSH_KEYS_GET,
        DOMAIN_AUTHORIZED_SSH_KEYS_SET,
        DOMAIN_SEND_KEY,
        DOMAIN_PM_SUSPEND_FOR_DURATION,
        DOMAIN_PM_WAKEUP,
        DOMAIN_RENAME,
        DOMAIN_SET_LIFECYCLE_ACTION,
        DOMAIN_GET_LAUNCH_SECURITY_INFO,
        DOMAIN_START_DIRTY_RATE_CALC,
        DOMAIN_SET_LAUNCH_SECURITY_STATE,
        DOMAIN_MANAGED_SAVE_GET_XML_DESC,
        DOMAIN_MANAGED_SAVE_DEFINE_XML,
        DOMAIN_BLOCK_JOB_ABORT,
        DOMAIN_GET_BLOCK_JOB_INFO,
        DOMAIN_BLOCK_JOB_SET_SPEED,
        DOMAIN_BLOCK_PULL,
        DOMAIN_BLOCK_RESIZE,
        DOMAIN_SET_BLOCK_IO_TUNE,
        DOMAIN_GET_BLOCK_IO_TUNE,
        DOMAIN_GET_DISK_ERRORS,
        DOMAIN_BLOCK_REBASE,
        DOMAIN_BLOCK_COMMIT,
        DOMAIN_BLOCK_COPY,
        DOMAIN_SET_BLOCK_THRESHOLD,
        DOMAIN_PIN_VCPU,
        DOMAIN_GET_SCHEDULER_TYPE,
        DOMAIN_GET_SCHEDULER_PARAMETERS,
        DOMAIN_SET_SCHEDULER_PARAMETERS,
        DOMAIN_SET_MEMORY_PARAMETERS,
        DOMAIN_GET_MEMORY_PARAMETERS,
        DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS,
        DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS,
        DOMAIN_PIN_VCPU_FLAGS,
        DOMAIN_GET_CPU_STATS,
        DOMAIN_PIN_EMULATOR,
        DOMAIN_GET_EMULATOR_PIN_INFO,
        DOMAIN_GET_IOTHREAD_INFO,
        DOMAIN_SET_BLKIO_PARAMETERS,
        DOMAIN_GET_BLKIO_PARAMETERS,
        DOMAIN_SET_NUMA_PARAMETERS,
        DOMAIN_GET_NUMA_PARAMETERS,
        DOMAIN_PIN_IOTHREAD,
        CONNECT_GET_MAX_VCPUS,
        NODE_GET_CELLS_FREE_MEMORY,
        CONNECT_DOMAIN_XML_FROM_NATIVE,
        NODE_SUSPEND_FOR_DURATION,
        NODE_SET_MEMORY_PARAMETERS,
        NODE_GET_MEMORY_PARAMETERS,
        CONNECT_GET_CPU_MODEL_NAMES,
        NODE_GET_FREE_PAGES,
        NODE_ALLOC_PAGES,
        NODE_GET_SEV_INFO,
        CONNECT_COMPARE_CPU,
        CONNECT_BASELINE_CPU,
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
        DOMAIN_ADD_IOTHREAD,
        DOMAIN_DEL_IOTHREAD,
        DOMAIN_SET_IOTHREAD_PARAMS,
        DOMAIN_GET_PERF_EVENTS,
        DOMAIN_SET_PERF_EVENTS,
        DOMAIN_BACKUP_BEGIN,
        DOMAIN_BACKUP_GET_XML_DESC,
        DOMAIN_CHECKPOINT_CREATE_XML,
        DOMAIN_CHECKPOINT_GET_XML_DESC,
        DOMAIN_LIST_ALL_CHECKPOINTS,
        DOMAIN_CHECKPOINT_LIST_ALL_CHILDREN,
        DOMAIN_CHECKPOINT_LOOKUP_BY_NAME,
        DOMAIN_CHECKPOINT_GET_PARENT,
        DOMAIN_CHECKPOINT_DELETE,
        DOMAIN_SET_INTERFACE_PARAMETERS,
        DOMAIN_GET_INTERFACE_PARAMETERS,
        // migration (migrate.rs)
        DOMAIN_MIGRATE_SET_MAX_DOWNTIME,
        DOMAIN_MIGRATE_SET_MAX_SPEED,
        DOMAIN_MIGRATE_BEGIN3,
        DOMAIN_MIGRATE_PREPARE3,
        DOMAIN_MIGRATE_PERFORM3,
        DOMAIN_MIGRATE_FINISH3,
        DOMAIN_MIGRATE_CONFIRM3,
        DOMAIN_MIGRATE_GET_MAX_SPEED,
        DOMAIN_MIGRATE_GET_COMPRESSION_CACHE,
        DOMAIN_MIGRATE_SET_COMPRESSION_CACHE,
        DOMAIN_MIGRATE_BEGIN3_PARAMS,
        DOMAIN_MIGRATE_PREPARE3_PARAMS,
        DOMAIN_MIGRATE_PERFORM3_PARAMS,
        DOMAIN_MIGRATE_FINISH3_PARAMS,
        DOMAIN_MIGRATE_CONFIRM3_PARAMS,
        DOMAIN_MIGRATE_START_POST_COPY,
        DOMAIN_MIGRATE_GET_MAX_DOWNTIME,
    ];

    /// The guest agent's procedures, answered by `agent.rs`.
    pub const AGENT: &[i32] = &[
        DOMAIN_FSTRIM,
        DOMAIN_GET_TIME,
        DOMAIN_SET_TIME,
        DOMAIN_GET_FSINFO,
        DOMAIN_SET_USER_PASSWORD,
        DOMAIN_GET_GUEST_VCPUS,
        DOMAIN_SET_GUEST_VCPUS,
        DOMAIN_AUTHORIZED_SSH_KEYS_GET,
        DOMAIN_AUTHORIZED_SSH_KEYS_SET,
    ];
}

/// The host and hypervisor procedures ([`host`]).
const HOST: &[i32] = &[
    procs::CONNECT_GET_MAX_VCPUS,
    procs::NODE_GET_CELLS_FREE_MEMORY,
    procs::CONNECT_DOMAIN_XML_FROM_NATIVE,
    procs::CONNECT_DOMAIN_XML_TO_NATIVE,
    procs::NODE_SUSPEND_FOR_DURATION,
    procs::NODE_SET_MEMORY_PARAMETERS,
    procs::NODE_GET_MEMORY_PARAMETERS,
    procs::CONNECT_GET_CPU_MODEL_NAMES,
    procs::NODE_GET_FREE_PAGES,
    procs::NODE_ALLOC_PAGES,
    procs::CONNECT_COMPARE_HYPERVISOR_CPU,
    procs::CONNECT_BASELINE_HYPERVISOR_CPU,
    procs::NODE_GET_SEV_INFO,
];

/// CPU comparison and baselines ([`cpu`]).
const CPU: &[i32] = &[procs::CONNECT_COMPARE_CPU, procs::CONNECT_BASELINE_CPU];

/// Whether procedure `p` is answered here.
pub(super) fn handles(p: i32) -> bool {
    procs::IMPLEMENTED.contains(&p) || procs::REFUSED.contains(&p)
}

/// Carry out procedure `p` (one of [`procs::IMPLEMENTED`]).
pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    match p {
        procs::CONNECT_FIND_STORAGE_POOL_SOURCES | procs::CONNECT_GET_STORAGE_POOL_CAPABILITIES => {
            storage::call(shared, s, p, body).await
        }
        p if procs::AGENT.contains(&p) => agent::call(shared, s, p, body).await,
        p if procs::MISC.contains(&p) => misc::call(shared, s, p, body).await,
        p if procs::BLOCK.contains(&p) => block::call(shared, s, p, body).await,
        p if procs::TUNE.contains(&p) => tune::call(shared, s, p, body).await,
        p if procs::LIVECFG.contains(&p) => livecfg::call(shared, s, p, body).await,
        p if CPU.contains(&p) => cpu::call(shared, s, p, body).await,
        p if HOST.contains(&p) => host::call(shared, s, p, body).await,
        p if procs::SAVE.contains(&p) => save::call(shared, s, p, body).await,
        p if procs::BACKUP.contains(&p) => backup::call(shared, s, p, body).await,
        p if procs::CHECKPOINT.contains(&p) => checkpoint::call(shared, s, p, body).await,
        p if procs::IFTUNE.contains(&p) => iftune::call(shared, s, p, body).await,
        p if procs::MIGRATE.contains(&p) => migrate::call(shared, s, p, body).await,
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

    /// Each module's list is counted, and the refused ones are not.
    #[test]
    fn routed_procedures_are_counted() {
        for list in [
            procs::AGENT,
            procs::MISC,
            procs::BLOCK,
            procs::TUNE,
            procs::SAVE,
            procs::LIVECFG,
            procs::IFTUNE,
            procs::BACKUP,
            procs::CHECKPOINT,
            procs::MIGRATE,
            super::CPU,
        ] {
            for p in list {
                assert!(procs::IMPLEMENTED.contains(p), "{p}");
            }
        }
        for p in super::HOST {
            assert!(
                procs::IMPLEMENTED.contains(p) != procs::REFUSED.contains(p),
                "{p}"
            );
        }
    }
}
