//! What the driver offers guests, for libvirt's domain capabilities and version number: read
//! from an emulator's probed capabilities and limited to what [`super::cmdline`] can express
//! (firmware from QEMU's firmware descriptors; the disk buses, video models, displays and
//! devices it maps), for one machine type.

use super::caps::Caps;
use super::firmware::{self, Descriptor};
use crate::drivers::{CapsSection, DomainCapsInfo};
use crate::model::HvFlag;

/// libvirt's encoding of a version: `major * 1,000,000 + minor * 1,000 + micro`; 0 when
/// `version` is not `major.minor.micro`.
pub fn version_code(version: &str) -> u64 {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => a * 1_000_000 + b * 1_000 + c,
        _ => 0,
    }
}

/// Disk buses the command line builds, with the device each needs.
/// IDE (`ide-hd` behind the machine's own controller) exists on i440fx only.
const DISK_BUSES: &[(&str, &str)] = &[
    ("fdc", "floppy"),
    ("scsi", "lsi53c895a"),
    ("virtio", "virtio-blk-pci"),
    ("sata", "ich9-ahci"),
    ("ide", "ide-hd"),
];

/// Video models the command line builds, with the device each needs.
const VIDEO_MODELS: &[(&str, &str)] = &[
    ("vga", "VGA"),
    ("cirrus", "cirrus-vga"),
    ("vmvga", "vmware-svga"),
    ("qxl", "qxl-vga"),
    ("virtio", "virtio-vga"),
    ("bochs", "bochs-display"),
    ("ramfb", "ramfb"),
];

/// Devices of the `model` enums of virtio devices (`<rng>`), with the device each needs.
const RNG_MODELS: &[(&str, &str)] = &[
    ("virtio", "virtio-rng-pci"),
    ("virtio-transitional", "virtio-rng-pci-transitional"),
    ("virtio-non-transitional", "virtio-rng-pci-non-transitional"),
];

/// `<filesystem><driver type>` values: 9p's only backend, and virtio-fs.
const FS_DRIVERS: &[(&str, &str)] = &[("path", "virtio-9p-pci"), ("virtiofs", "vhost-user-fs-pci")];

const TPM_MODELS: &[(&str, &str)] = &[("tpm-tis", "tpm-tis"), ("tpm-crb", "tpm-crb")];

/// Displays QEMU shows here (`-display help` lists the modules installed), by libvirt name.
const LOCAL_DISPLAYS: &[&str] = &["sdl", "egl-headless", "dbus"];

/// What guests of `caps`'s emulator get; `host_cpu` when they may use the host's CPU as is
/// (a `kvm` domain with KVM usable).
/// UEFI firmware comes from `descriptors` (QEMU's firmware descriptors), those that run this
/// emulator's machines.
pub fn offer(
    caps: &Caps,
    host_cpu: bool,
    descriptors: &[Descriptor],
    machine: Option<&str>,
) -> DomainCapsInfo {
    let with = |table: &[(&str, &str)]| available(caps, table);
    let described = match machine {
        Some(m) => caps.machine(m),
        None => caps.default_machine(),
    };
    // The default machine first (callers that name none get it), then the others, then
    // the aliases they may be asked for by.
    let mut machines: Vec<String> = caps
        .default_machine()
        .map(|m| m.name.clone())
        .into_iter()
        .collect();
    for m in &caps.machines {
        if m.name != "none" && !machines.contains(&m.name) {
            machines.push(m.name.clone());
        }
    }
    machines.extend(caps.machines.iter().filter_map(|m| m.alias.clone()));
    let cpu_suffix = format!("-{}-cpu", caps.arch);
    let cpu_models = caps
        .devices
        .iter()
        .filter_map(|d| d.strip_suffix(&cpu_suffix))
        .filter(|m| !matches!(*m, "base" | "max" | "host"))
        .map(str::to_owned)
        .collect();
    let mut graphics = vec!["vnc".to_owned()];
    if caps.spice {
        graphics.push("spice".to_owned());
    }
    graphics.extend(
        LOCAL_DISPLAYS
            .iter()
            .filter(|d| caps.displays.iter().any(|x| x == *d))
            // egl-headless renders on a DRM render node, which the start checks for
            .filter(|d| **d != "egl-headless" || has_render_node())
            .map(|d| (*d).to_owned()),
    );
    // what runs on the machine described (all of them when the emulator has no default)
    let on: Vec<String> = match described {
        Some(m) => vec![m.name.clone()],
        None => machines.clone(),
    };
    let q35 = on.iter().all(|m| m.contains("q35"));
    let (loaders, secure_boot, firmware) = firmware::offered(descriptors, &caps.arch, &on);
    let mut disk_buses = with(DISK_BUSES);
    if q35 {
        disk_buses.retain(|b| b != "ide");
    }
    let mut video_models = with(VIDEO_MODELS);
    video_models.push("none".to_owned());
    DomainCapsInfo {
        emulator: Some(caps.emulator.display().to_string()),
        max_vcpus: described.map_or(1, |m| m.cpu_max),
        machine: described.map(|m| m.name.clone()),
        machines,
        firmware,
        loaders,
        secure_boot,
        disk_buses,
        graphics,
        video_models,
        host_passthrough: host_cpu,
        cpu_models,
        maximum_cpu: caps.has_device(&format!("max{cpu_suffix}")),
        memory_sources: ["file", "anonymous", "memfd"].map(String::from).to_vec(),
        disk_devices: ["disk", "cdrom", "floppy"].map(String::from).to_vec(),
        devices: devices(caps),
        features: features(caps, host_cpu),
    }
}

/// Whether the host has a DRM render node (`/dev/dri/renderD*`).
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// `<devices>` after disk, graphics and video: what the command line builds.
/// The names of `table` whose device the emulator has.
fn available(caps: &Caps, table: &[(&str, &str)]) -> Vec<String> {
    table
        .iter()
        .filter(|(_, dev)| caps.has_device(dev))
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

fn devices(caps: &Caps) -> Vec<CapsSection> {
    let with = |table: &[(&str, &str)]| available(caps, table);
    let section = |name: &str, enums: Vec<(&str, Vec<String>)>| CapsSection {
        name: name.to_owned(),
        supported: enums.first().is_some_and(|(_, v)| !v.is_empty()),
        enums: enums.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
    };
    let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut channels = strs(&["pty", "unix"]);
    if caps.spice {
        channels.push("spicevmc".to_owned());
    }
    let redir = if caps.has_device("usb-redir") {
        strs(&["usb"])
    } else {
        Vec::new()
    };
    vec![
        // no PCI, USB or SCSI host device assignment
        CapsSection::unsupported("hostdev"),
        section(
            "rng",
            vec![
                ("model", with(RNG_MODELS)),
                ("backendModel", strs(&["random", "egd", "builtin"])),
            ],
        ),
        section("filesystem", vec![("driverType", with(FS_DRIVERS))]),
        section(
            "tpm",
            vec![
                ("model", with(TPM_MODELS)),
                // an `external` swtpm someone else runs is not modelled
                ("backendModel", strs(&["passthrough", "emulator"])),
                ("backendVersion", strs(&["1.2", "2.0"])),
            ],
        ),
        section("redirdev", vec![("bus", redir)]),
        section("channel", vec![("type", channels)]),
    ]
}

/// `<features>`: what the command line writes. Under TCG QEMU hands Hyper-V's CPUID leaves
/// to no guest, so only the two settings that are not enlightenments are offered there.
fn features(caps: &Caps, kvm: bool) -> Vec<CapsSection> {
    let flag = |name: &str, yes: bool| {
        if yes {
            CapsSection::new(name, &[])
        } else {
            CapsSection::unsupported(name)
        }
    };
    let hyperv: Vec<String> = if kvm {
        HvFlag::ALL.iter().map(|f| f.as_str().to_owned()).collect()
    } else {
        vec!["spinlocks".to_owned(), "vendor_id".to_owned()]
    };
    vec![
        CapsSection::unsupported("gic"),
        flag("vmcoreinfo", caps.has_device("vmcoreinfo")),
        flag("genid", caps.has_device("vmgenid")),
        // a `<backingStore>` given in the definition is not used: QEMU opens the chain
        CapsSection::unsupported("backingStoreInput"),
        // no backup jobs
        CapsSection::unsupported("backup"),
        CapsSection::unsupported("sev"),
        CapsSection::unsupported("sgx"),
        CapsSection {
            name: "hyperv".to_owned(),
            supported: true,
            enums: vec![("features".to_owned(), hyperv)],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::qemu::caps::tests::x86_64;

    #[test]
    fn versions() {
        assert_eq!(version_code("7.2.22"), 7_002_022);
        assert_eq!(version_code("10.0.0"), 10_000_000);
        assert_eq!(version_code("7.2"), 0);
        assert_eq!(version_code("7.2.x"), 0);
    }

    #[test]
    fn offers_what_the_command_line_builds() {
        let mut caps = x86_64();
        caps.devices.push("qemu64-x86_64-cpu".into());
        caps.devices.push("max-x86_64-cpu".into());
        caps.devices.sort();
        let o = offer(&caps, false, &[], None);
        assert_eq!(o.emulator.as_deref(), Some("/usr/bin/qemu-system-x86_64"));
        assert_eq!(o.machines, ["pc-i440fx-7.2", "pc-q35-7.2", "pc", "q35"]);
        assert_eq!(o.machine.as_deref(), Some("pc-i440fx-7.2"));
        assert_eq!(o.max_vcpus, 255);
        assert!(o.firmware.is_empty(), "no firmware descriptors");
        assert_eq!(o.disk_buses, ["fdc", "scsi", "virtio", "sata", "ide"]);
        assert_eq!(o.graphics[..3], ["vnc", "spice", "dbus"]);
        assert_eq!(o.video_models, ["vga", "cirrus", "qxl", "virtio", "none"]);
        assert_eq!(o.cpu_models, ["qemu64"]);
        assert!(!o.host_passthrough);
        assert!(o.maximum_cpu);
        let hyperv = o
            .features
            .iter()
            .find(|f| f.name == "hyperv")
            .expect("hyperv");
        assert_eq!(hyperv.enums[0].1, ["spinlocks", "vendor_id"]);
        let kvm = offer(&caps, true, &[], None);
        assert!(kvm.host_passthrough);
        let hyperv = kvm
            .features
            .iter()
            .find(|f| f.name == "hyperv")
            .expect("hyperv");
        assert!(hyperv.enums[0].1.len() > 10);
        // by alias: the full name, that machine's limits, no IDE on q35
        let q35 = offer(&caps, false, &[], Some("q35"));
        assert_eq!(q35.machine.as_deref(), Some("pc-q35-7.2"));
        assert_eq!(q35.max_vcpus, 288);
        assert_eq!(q35.disk_buses, ["fdc", "scsi", "virtio", "sata"]);
    }
}
