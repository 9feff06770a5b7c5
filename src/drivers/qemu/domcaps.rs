//! What the driver offers guests, for libvirt's domain capabilities and version number: read
//! from an emulator's probed capabilities and limited to what [`super::cmdline`] can express
//! (BIOS, and UEFI from QEMU's firmware descriptors; virtio, SATA and IDE disks; the video models it maps).

use super::caps::Caps;
use super::firmware::{self, Descriptor};
use crate::drivers::DomainCapsInfo;

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
const DISK_BUSES: &[(&str, &str)] = &[
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

/// What guests of `caps`'s emulator get; `host_cpu` when they may use the host's CPU as is
/// (a `kvm` domain with KVM usable).
/// UEFI firmware comes from `descriptors` (QEMU's firmware descriptors), those that run this
/// emulator's machines.
pub fn offer(caps: &Caps, host_cpu: bool, descriptors: &[Descriptor]) -> DomainCapsInfo {
    let with = |table: &[(&str, &str)]| -> Vec<String> {
        table
            .iter()
            .filter(|(_, dev)| caps.has_device(dev))
            .map(|(name, _)| (*name).to_owned())
            .collect()
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
    let (loaders, secure_boot) = firmware::offered(descriptors, &caps.arch, &machines);
    let mut firmware = vec!["bios".to_owned()];
    if !loaders.is_empty() {
        firmware.push("efi".to_owned());
    }
    DomainCapsInfo {
        emulator: Some(caps.emulator.display().to_string()),
        max_vcpus: caps.default_machine().map_or(1, |m| m.cpu_max),
        machines,
        firmware,
        loaders,
        secure_boot,
        disk_buses: with(DISK_BUSES),
        graphics,
        video_models: with(VIDEO_MODELS),
        host_passthrough: host_cpu,
        cpu_models,
    }
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
        let o = offer(&caps, false, &[]);
        assert_eq!(o.emulator.as_deref(), Some("/usr/bin/qemu-system-x86_64"));
        assert_eq!(o.machines, ["pc-i440fx-7.2", "pc-q35-7.2", "pc", "q35"]);
        assert_eq!(o.max_vcpus, 255);
        assert_eq!(o.firmware, ["bios"]);
        assert_eq!(o.disk_buses, ["virtio", "sata", "ide"]);
        assert_eq!(o.graphics, ["vnc", "spice"]);
        assert_eq!(o.video_models, ["vga", "cirrus", "qxl", "virtio"]);
        assert_eq!(o.cpu_models, ["qemu64"]);
        assert!(!o.host_passthrough);
        assert!(offer(&caps, true, &[]).host_passthrough);
    }
}
