//! libvirt's flag words: for each method the facade implements, the bits it accepts with
//! libvirt's names for them and the core option each one sets. One table per method drives
//! the check of unknown bits (`virCheckFlags`' wording), the options given to the core, and
//! the wording of the core's option errors.

use super::errors::{Reply, bare};

/// Which libvirt driver a connect stands in for: it names the driver functions in errors
/// and picks the driver's wording where libvirt's drivers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Qemu,
    Test,
    /// `lxc:///`: the LXC driver's domains; it words errors as QEMU does.
    Lxc,
}

impl Flavor {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Test => "test",
            Self::Lxc => "lxc",
        }
    }
}

/// One flag bit.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub bit: u32,
    /// libvirt's name, as its errors quote it.
    pub name: &'static str,
    /// The core option it sets (as [`crate::core::error::OptionError`] names them).
    pub option: &'static str,
}

/// A libvirt API the facade implements.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    /// The public API, as `VIR_ERR_NO_SUPPORT` names it.
    pub api: &'static str,
    /// The driver function without its driver prefix, as `virCheckFlags` names it.
    pub driver_fn: &'static str,
    pub flags: &'static [Flag],
}

impl Method {
    /// Refuse bits the method does not know, in libvirt's words.
    pub fn check(&self, flags: u32, flavor: Flavor) -> Reply<()> {
        let known = self.flags.iter().fold(0, |a, f| a | f.bit);
        let bad = flags & !known;
        if bad != 0 {
            return Err(bare(format!(
                "unsupported flags (0x{bad:x}) in function {}{}",
                flavor.prefix(),
                self.driver_fn
            )));
        }
        Ok(())
    }

    /// Whether `flags` has the flag of `option` set. (Every option name the facade asks
    /// for is checked against the tables by a test, so a misspelt one cannot read as unset.)
    pub fn has(&self, flags: u32, option: &str) -> bool {
        self.flags
            .iter()
            .any(|f| f.option == option && flags & f.bit != 0)
    }
}

const fn flag(bit: u32, name: &'static str, option: &'static str) -> Flag {
    Flag { bit, name, option }
}

const fn method(api: &'static str, driver_fn: &'static str, flags: &'static [Flag]) -> Method {
    Method {
        api,
        driver_fn,
        flags,
    }
}

const LIVE: Flag = flag(1, "VIR_DOMAIN_AFFECT_LIVE", "live");
const CONFIG: Flag = flag(2, "VIR_DOMAIN_AFFECT_CONFIG", "config");

/// libvirt's domain list filters (`VIR_CONNECT_LIST_DOMAINS_*`, also the state filters of
/// `VIR_CONNECT_GET_ALL_DOMAINS_STATS_*`).
const LIST_DOMAINS: &[Flag] = &[
    flag(1, "VIR_CONNECT_LIST_DOMAINS_ACTIVE", "active"),
    flag(2, "VIR_CONNECT_LIST_DOMAINS_INACTIVE", "inactive"),
    flag(4, "VIR_CONNECT_LIST_DOMAINS_PERSISTENT", "persistent"),
    flag(8, "VIR_CONNECT_LIST_DOMAINS_TRANSIENT", "transient"),
    flag(16, "VIR_CONNECT_LIST_DOMAINS_RUNNING", "running"),
    flag(32, "VIR_CONNECT_LIST_DOMAINS_PAUSED", "paused"),
    flag(64, "VIR_CONNECT_LIST_DOMAINS_SHUTOFF", "shut-off"),
    flag(128, "VIR_CONNECT_LIST_DOMAINS_OTHER", "other"),
    flag(256, "VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE", "managed-save"),
    flag(
        512,
        "VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE",
        "no-managed-save",
    ),
    flag(1024, "VIR_CONNECT_LIST_DOMAINS_AUTOSTART", "autostart"),
    flag(
        2048,
        "VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART",
        "no-autostart",
    ),
    flag(
        4096,
        "VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT",
        "has-snapshot",
    ),
    flag(8192, "VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT", "no-snapshot"),
    flag(
        16384,
        "VIR_CONNECT_LIST_DOMAINS_HAS_CHECKPOINT",
        "has-checkpoint",
    ),
    flag(
        32768,
        "VIR_CONNECT_LIST_DOMAINS_NO_CHECKPOINT",
        "no-checkpoint",
    ),
];

/// Whether a network or storage pool with these states passes the state filters of
/// libvirt's `ListAllNetworks`/`ListAllStoragePools` flags (the same bits for both): each pair
/// (inactive 1 / active 2, persistent 4 / transient 8, autostart 16 / no-autostart 32) admits
/// everything when both or neither of its bits are set.
pub fn state_filter(flags: u32, active: bool, persistent: bool, autostart: bool) -> bool {
    let pair = |on: bool, yes: u32, no: u32| {
        let (y, n) = (flags & yes != 0, flags & no != 0);
        y == n || (on && y) || (!on && n)
    };
    pair(active, 2, 1) && pair(persistent, 4, 8) && pair(autostart, 16, 32)
}

pub const LIST_ALL_DOMAINS: Method = method(
    "virConnectListAllDomains",
    "ConnectListAllDomains",
    LIST_DOMAINS,
);

pub const GET_ALL_DOMAIN_STATS: Method = method(
    "virConnectGetAllDomainStats",
    "ConnectGetAllDomainStats",
    &[
        flag(1, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE", "active"),
        flag(2, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE", "inactive"),
        flag(
            4,
            "VIR_CONNECT_GET_ALL_DOMAINS_STATS_PERSISTENT",
            "persistent",
        ),
        flag(
            8,
            "VIR_CONNECT_GET_ALL_DOMAINS_STATS_TRANSIENT",
            "transient",
        ),
        flag(16, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING", "running"),
        flag(32, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_PAUSED", "paused"),
        flag(64, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_SHUTOFF", "shut-off"),
        flag(128, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_OTHER", "other"),
        flag(
            1 << 29,
            "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT",
            "nowait",
        ),
        flag(
            1 << 30,
            "VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING",
            "backing",
        ),
        flag(
            1 << 31,
            "VIR_CONNECT_GET_ALL_DOMAINS_STATS_ENFORCE_STATS",
            "enforce",
        ),
    ],
);

/// The flags of one domain's statistics: as for all domains (the list filters select
/// nothing here).
pub const DOMAIN_LIST_GET_STATS: Method = Method {
    api: "virDomainListGetStats",
    ..GET_ALL_DOMAIN_STATS
};

pub const DOMAIN_CREATE_XML: Method = method(
    "virDomainCreateXML",
    "DomainCreateXML",
    &[
        flag(1, "VIR_DOMAIN_START_PAUSED", "paused"),
        flag(16, "VIR_DOMAIN_START_VALIDATE", "validate"),
    ],
);

pub const DOMAIN_DEFINE_XML: Method = method("virDomainDefineXML", "DomainDefineXMLFlags", &[]);
/// `virDomainDefineXMLFlags`, which libvirt's RPC clients call (the parser always validates).
pub const DOMAIN_DEFINE_XML_FLAGS: Method = method(
    "virDomainDefineXMLFlags",
    "DomainDefineXMLFlags",
    &[flag(1, "VIR_DOMAIN_DEFINE_VALIDATE", "validate")],
);
pub const LOOKUP_BY_ID: Method = method("virDomainLookupByID", "DomainLookupByID", &[]);
pub const LOOKUP_BY_NAME: Method = method("virDomainLookupByName", "DomainLookupByName", &[]);
pub const LOOKUP_BY_UUID: Method = method("virDomainLookupByUUIDString", "DomainLookupByUUID", &[]);
pub const GET_CAPABILITIES: Method =
    method("virConnectGetCapabilities", "ConnectGetCapabilities", &[]);
pub const GET_CPU_MODEL_NAMES: Method =
    method("virConnectGetCPUModelNames", "ConnectGetCPUModelNames", &[]);
pub const GET_DOMAIN_CAPABILITIES: Method = method(
    "virConnectGetDomainCapabilities",
    "ConnectGetDomainCapabilities",
    &[flag(
        1,
        "VIR_CONNECT_GET_DOMAIN_CAPABILITIES_DISABLE_DEPRECATED_FEATURES",
        "disable-deprecated",
    )],
);
pub const GET_SYSINFO: Method = method("virConnectGetSysinfo", "ConnectGetSysinfo", &[]);
pub const NODE_GET_CPU_MAP: Method = method("virNodeGetCPUMap", "NodeGetCPUMap", &[]);
pub const NODE_GET_CPU_STATS: Method = method("virNodeGetCPUStats", "NodeGetCPUStats", &[]);
pub const NODE_GET_FREE_MEMORY: Method = method("virNodeGetFreeMemory", "NodeGetFreeMemory", &[]);
pub const NODE_GET_MEMORY_STATS: Method =
    method("virNodeGetMemoryStats", "NodeGetMemoryStats", &[]);
pub const NODE_GET_MEMORY_PARAMETERS: Method = method(
    "virNodeGetMemoryParameters",
    "NodeGetMemoryParameters",
    &[flag(4, "VIR_TYPED_PARAM_STRING_OKAY", "string-okay")],
);
pub const NODE_GET_SECURITY_MODEL: Method =
    method("virNodeGetSecurityModel", "NodeGetSecurityModel", &[]);

pub const CREATE: Method = method(
    "virDomainCreateWithFlags",
    "DomainCreateWithFlags",
    &[
        flag(1, "VIR_DOMAIN_START_PAUSED", "paused"),
        flag(4, "VIR_DOMAIN_START_BYPASS_CACHE", "bypass-cache"),
        flag(8, "VIR_DOMAIN_START_FORCE_BOOT", "force-boot"),
    ],
);
pub const DESTROY: Method = method(
    "virDomainDestroyFlags",
    "DomainDestroyFlags",
    &[flag(1, "VIR_DOMAIN_DESTROY_GRACEFUL", "graceful")],
);
pub const SHUTDOWN: Method = method(
    "virDomainShutdownFlags",
    "DomainShutdownFlags",
    &[
        flag(1, "VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN", "acpi"),
        flag(2, "VIR_DOMAIN_SHUTDOWN_GUEST_AGENT", "agent"),
    ],
);
pub const REBOOT: Method = method(
    "virDomainReboot",
    "DomainReboot",
    &[
        flag(1, "VIR_DOMAIN_REBOOT_ACPI_POWER_BTN", "acpi"),
        flag(2, "VIR_DOMAIN_REBOOT_GUEST_AGENT", "agent"),
    ],
);
/// `lxc:///`'s shutdown: libvirt's LXC driver takes the container modes only.
pub const SHUTDOWN_LXC: Method = method(
    "virDomainShutdownFlags",
    "DomainShutdownFlags",
    &[
        flag(4, "VIR_DOMAIN_SHUTDOWN_INITCTL", "initctl"),
        flag(8, "VIR_DOMAIN_SHUTDOWN_SIGNAL", "signal"),
    ],
);
pub const REBOOT_LXC: Method = method(
    "virDomainReboot",
    "DomainReboot",
    &[
        flag(4, "VIR_DOMAIN_REBOOT_INITCTL", "initctl"),
        flag(8, "VIR_DOMAIN_REBOOT_SIGNAL", "signal"),
    ],
);

/// The shutdown (or reboot) flag table of a flavor's driver.
pub fn power_method(flavor: Flavor, reboot: bool) -> &'static Method {
    match (flavor, reboot) {
        (Flavor::Lxc, false) => &SHUTDOWN_LXC,
        (Flavor::Lxc, true) => &REBOOT_LXC,
        (Flavor::Qemu | Flavor::Test, false) => &SHUTDOWN,
        (Flavor::Qemu | Flavor::Test, true) => &REBOOT,
    }
}

pub const RESET: Method = method("virDomainReset", "DomainReset", &[]);
pub const OPEN_GRAPHICS_FD: Method = method(
    "virDomainOpenGraphicsFD",
    "DomainOpenGraphicsFD",
    &[flag(1, "VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH", "skipauth")],
);
pub const INJECT_NMI: Method = method("virDomainInjectNMI", "DomainInjectNMI", &[]);
pub const SUSPEND: Method = method("virDomainSuspend", "DomainSuspend", &[]);
pub const RESUME: Method = method("virDomainResume", "DomainResume", &[]);
pub const UNDEFINE: Method = method(
    "virDomainUndefineFlags",
    "DomainUndefineFlags",
    &[
        flag(1, "VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "managed-save"),
        flag(
            2,
            "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
            "snapshots-metadata",
        ),
        flag(4, "VIR_DOMAIN_UNDEFINE_NVRAM", "nvram"),
        flag(8, "VIR_DOMAIN_UNDEFINE_KEEP_NVRAM", "keep-nvram"),
        flag(
            16,
            "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA",
            "checkpoints-metadata",
        ),
        flag(64, "VIR_DOMAIN_UNDEFINE_KEEP_TPM", "keep-tpm"),
    ],
);
pub const GET_XML_DESC: Method = method(
    "virDomainGetXMLDesc",
    "DomainGetXMLDesc",
    &[
        flag(1, "VIR_DOMAIN_XML_SECURE", "secure"),
        flag(2, "VIR_DOMAIN_XML_INACTIVE", "inactive"),
        flag(4, "VIR_DOMAIN_XML_UPDATE_CPU", "update-cpu"),
        flag(8, "VIR_DOMAIN_XML_MIGRATABLE", "migratable"),
    ],
);
/// The test driver's: its common flags only.
pub const GET_XML_DESC_TEST: Method = method(
    "virDomainGetXMLDesc",
    "DomainGetXMLDesc",
    &[
        flag(1, "VIR_DOMAIN_XML_SECURE", "secure"),
        flag(2, "VIR_DOMAIN_XML_INACTIVE", "inactive"),
        flag(8, "VIR_DOMAIN_XML_MIGRATABLE", "migratable"),
    ],
);
pub const GET_STATE: Method = method("virDomainGetState", "DomainGetState", &[]);
pub const GET_METADATA: Method =
    method("virDomainGetMetadata", "DomainGetMetadata", &[LIVE, CONFIG]);
pub const SET_METADATA: Method =
    method("virDomainSetMetadata", "DomainSetMetadata", &[LIVE, CONFIG]);
pub const MANAGED_SAVE: Method = method(
    "virDomainManagedSave",
    "DomainManagedSave",
    &[
        flag(1, "VIR_DOMAIN_SAVE_BYPASS_CACHE", "bypass-cache"),
        flag(2, "VIR_DOMAIN_SAVE_RUNNING", "running"),
        flag(4, "VIR_DOMAIN_SAVE_PAUSED", "paused"),
    ],
);
pub const HAS_MANAGED_SAVE: Method = method(
    "virDomainHasManagedSaveImage",
    "DomainHasManagedSaveImage",
    &[],
);
pub const MANAGED_SAVE_REMOVE: Method =
    method("virDomainManagedSaveRemove", "DomainManagedSaveRemove", &[]);
pub const GET_VCPUS: Method = method(
    "virDomainGetVcpusFlags",
    "DomainGetVcpusFlags",
    &[LIVE, CONFIG, flag(4, "VIR_DOMAIN_VCPU_MAXIMUM", "maximum")],
);
pub const SET_VCPUS: Method = method(
    "virDomainSetVcpusFlags",
    "DomainSetVcpusFlags",
    &[LIVE, CONFIG, flag(4, "VIR_DOMAIN_VCPU_MAXIMUM", "maximum")],
);
pub const SET_MEMORY: Method = method(
    "virDomainSetMemoryFlags",
    "DomainSetMemoryFlags",
    &[LIVE, CONFIG, flag(4, "VIR_DOMAIN_MEM_MAXIMUM", "maximum")],
);
pub const GET_VCPU_PIN_INFO: Method = method(
    "virDomainGetVcpuPinInfo",
    "DomainGetVcpuPinInfo",
    &[LIVE, CONFIG],
);
pub const MEMORY_STATS: Method = method("virDomainMemoryStats", "DomainMemoryStats", &[]);
pub const INTERFACE_ADDRESSES: Method = method(
    "virDomainInterfaceAddresses",
    "DomainInterfaceAddresses",
    &[],
);
pub const GET_HOSTNAME: Method = method(
    "virDomainGetHostname",
    "DomainGetHostname",
    &[
        flag(1, "VIR_DOMAIN_GET_HOSTNAME_LEASE", "lease"),
        flag(2, "VIR_DOMAIN_GET_HOSTNAME_AGENT", "agent"),
    ],
);
pub const FS_FREEZE: Method = method("virDomainFSFreeze", "DomainFSFreeze", &[]);
pub const FS_THAW: Method = method("virDomainFSThaw", "DomainFSThaw", &[]);
pub const ATTACH_DEVICE: Method = method(
    "virDomainAttachDeviceFlags",
    "DomainAttachDeviceFlags",
    &[LIVE, CONFIG],
);
pub const DETACH_DEVICE: Method = method(
    "virDomainDetachDeviceFlags",
    "DomainDetachDeviceFlags",
    &[LIVE, CONFIG],
);
pub const UPDATE_DEVICE: Method = method(
    "virDomainUpdateDeviceFlags",
    "DomainUpdateDeviceFlags",
    &[
        LIVE,
        CONFIG,
        flag(4, "VIR_DOMAIN_DEVICE_MODIFY_FORCE", "force"),
    ],
);

/// The snapshot list filters (`VIR_DOMAIN_SNAPSHOT_LIST_*`); bit 0 is `ROOTS` for a
/// domain's list and `DESCENDANTS` for a snapshot's children.
const fn snapshot_list(first: Flag) -> [Flag; 11] {
    [
        first,
        flag(2, "VIR_DOMAIN_SNAPSHOT_LIST_METADATA", "metadata"),
        flag(4, "VIR_DOMAIN_SNAPSHOT_LIST_LEAVES", "leaves"),
        flag(8, "VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES", "no-leaves"),
        flag(16, "VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA", "no-metadata"),
        flag(32, "VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE", "inactive"),
        flag(64, "VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE", "active"),
        flag(128, "VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY", "disk-only"),
        flag(256, "VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL", "internal"),
        flag(512, "VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL", "external"),
        flag(1024, "VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL", "topological"),
    ]
}

const LIST_SNAPSHOT_FLAGS: [Flag; 11] =
    snapshot_list(flag(1, "VIR_DOMAIN_SNAPSHOT_LIST_ROOTS", "roots"));
const LIST_CHILDREN_FLAGS: [Flag; 11] = snapshot_list(flag(
    1,
    "VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS",
    "descendants",
));

pub const LIST_SNAPSHOTS: Method = method(
    "virDomainListAllSnapshots",
    "DomainListAllSnapshots",
    &LIST_SNAPSHOT_FLAGS,
);
pub const SNAPSHOT_CURRENT: Method =
    method("virDomainSnapshotCurrent", "DomainSnapshotCurrent", &[]);
pub const SNAPSHOT_CREATE_XML: Method = method(
    "virDomainSnapshotCreateXML",
    "DomainSnapshotCreateXML",
    &[
        flag(1, "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE", "redefine"),
        flag(2, "VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT", "current"),
        flag(4, "VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA", "no-metadata"),
        flag(8, "VIR_DOMAIN_SNAPSHOT_CREATE_HALT", "halt"),
        flag(16, "VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY", "disk-only"),
        flag(32, "VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT", "reuse-external"),
        flag(64, "VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE", "quiesce"),
        flag(128, "VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC", "atomic"),
        flag(256, "VIR_DOMAIN_SNAPSHOT_CREATE_LIVE", "live"),
        flag(512, "VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE", "validate"),
    ],
);
pub const SNAPSHOT_LOOKUP_BY_NAME: Method = method(
    "virDomainSnapshotLookupByName",
    "DomainSnapshotLookupByName",
    &[],
);
pub const SNAPSHOT_DELETE: Method = method(
    "virDomainSnapshotDelete",
    "DomainSnapshotDelete",
    &[
        flag(1, "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN", "children"),
        flag(
            2,
            "VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY",
            "metadata-only",
        ),
        flag(
            4,
            "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY",
            "children-only",
        ),
    ],
);
pub const SNAPSHOT_GET_PARENT: Method =
    method("virDomainSnapshotGetParent", "DomainSnapshotGetParent", &[]);
pub const SNAPSHOT_GET_XML_DESC: Method = method(
    "virDomainSnapshotGetXMLDesc",
    "DomainSnapshotGetXMLDesc",
    &[flag(1, "VIR_DOMAIN_SNAPSHOT_XML_SECURE", "secure")],
);
pub const SNAPSHOT_IS_CURRENT: Method =
    method("virDomainSnapshotIsCurrent", "DomainSnapshotIsCurrent", &[]);
pub const SNAPSHOT_LIST_CHILDREN: Method = method(
    "virDomainSnapshotListAllChildren",
    "DomainSnapshotListAllChildren",
    &LIST_CHILDREN_FLAGS,
);
pub const REVERT: Method = method(
    "virDomainRevertToSnapshot",
    "DomainRevertToSnapshot",
    &[
        flag(1, "VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING", "running"),
        flag(2, "VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED", "paused"),
        flag(4, "VIR_DOMAIN_SNAPSHOT_REVERT_FORCE", "force"),
    ],
);

/// Properties are read through these (for errors).
pub const PROPERTY: Method = method("virDomainGetInfo", "DomainGetInfo", &[]);
pub const SET_AUTOSTART: Method = method("virDomainSetAutostart", "DomainSetAutostart", &[]);

#[cfg(test)]
mod tests {

    #[test]
    fn state_filter_pairs() {
        // no filter, and both halves of a pair, admit everything
        assert!(state_filter(0, false, false, false));
        assert!(state_filter(1 | 2, true, false, true));
        // active only / inactive only
        assert!(state_filter(2, true, false, false) && !state_filter(2, false, true, true));
        assert!(state_filter(1, false, true, true) && !state_filter(1, true, true, true));
        // transient and autostart together
        assert!(state_filter(8 | 16, true, false, true));
        assert!(
            !state_filter(8 | 16, true, true, true) && !state_filter(8 | 16, true, false, false)
        );
    }
    use super::*;

    #[test]
    fn check_names_the_driver_function() {
        assert!(GET_STATE.check(0, Flavor::Test).is_ok());
        assert_eq!(
            GET_STATE
                .check(1, Flavor::Test)
                .expect_err("bad")
                .to_string(),
            "unsupported flags (0x1) in function testDomainGetState"
        );
        assert_eq!(
            GET_XML_DESC
                .check(1 | 4 | 16, Flavor::Qemu)
                .expect_err("bad")
                .to_string(),
            "unsupported flags (0x10) in function qemuDomainGetXMLDesc"
        );
        assert_eq!(
            GET_XML_DESC_TEST
                .check(1 | 4, Flavor::Test)
                .expect_err("bad")
                .to_string(),
            "unsupported flags (0x4) in function testDomainGetXMLDesc"
        );
        assert!(
            GET_ALL_DOMAIN_STATS
                .check(1 << 31 | 1, Flavor::Qemu)
                .is_ok()
        );
        assert!(MANAGED_SAVE.has(4, "paused") && !MANAGED_SAVE.has(4, "running"));
    }
}

#[cfg(test)]
mod option_name_tests {
    /// Every option name the facade's handlers ask `Method::has` about is one some flag
    /// table defines: a misspelt name would otherwise read as an unset flag.
    #[test]
    fn every_option_asked_for_exists() {
        let tables = include_str!("flags.rs");
        let handlers = [
            include_str!("domain.rs"),
            include_str!("connect.rs"),
            include_str!("snapshot.rs"),
            include_str!("props.rs"),
        ];
        let mut asked = Vec::new();
        for text in handlers {
            for (i, _) in text.match_indices("has(") {
                let rest = &text[i + 4..];
                let Some(q) = rest.find('"') else { continue };
                // Only `has(flags, "x")` and `has("x")` calls: the quote comes right after.
                let before = &rest[..q];
                if !(before.is_empty() || before.trim_end() == "flags,") {
                    continue;
                }
                let name: String = rest[q + 1..].chars().take_while(|c| *c != '"').collect();
                asked.push(name);
            }
        }
        assert!(asked.len() > 30, "the scan finds the calls: {asked:?}");
        // Every quoted string of the tables: flag names, APIs and option names.
        let quoted: Vec<&str> = tables.split('"').skip(1).step_by(2).collect();
        let defined = |name: &str| quoted.contains(&name);
        for name in asked {
            assert!(defined(&name), "no flag table has option '{name}'");
        }
        assert!(!defined("force_boot"), "a misspelling is not found");
    }
}
