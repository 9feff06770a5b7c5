//! What a snapshot request means for each disk: internal, external onto which overlay, or
//! left out; and the refusals, all made before anything is touched.

use std::path::{Path, PathBuf};

use crate::{
    drivers::{DriverError, DriverResult},
    model::options::SnapshotCreateOptions,
    model::{
        DiskSnapshotKind, DomainDef, MemorySnapshotKind, SnapshotDef, SnapshotDisk,
        devices::{Disk, DiskDevice, DiskFormat, DiskType},
    },
};

/// How one disk is captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// In the qcow2 image itself.
    Internal,
    /// Onto a new overlay; `reuse`: an existing file may be used as it is.
    External { overlay: PathBuf, reuse: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPlan {
    /// Index in the definition's disks.
    pub index: usize,
    pub target: String,
    /// The image the disk uses now.
    pub source: String,
    /// Its format as QEMU opens it.
    pub format: &'static str,
    pub capture: Capture,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub disks: Vec<DiskPlan>,
    /// Guest memory goes into the first disk's image.
    pub memory: bool,
    /// The `<disks>` of the snapshot's XML, one per domain disk.
    pub recorded: Vec<SnapshotDisk>,
}

fn unsupported(m: String) -> DriverError {
    DriverError::NotSupported(m)
}

fn invalid(m: String) -> DriverError {
    DriverError::InvalidArgument(m)
}

/// The format QEMU opens a disk's image as (the command line's rule).
pub fn format_of(disk: &Disk) -> &'static str {
    match disk.driver.as_ref().and_then(|d| d.format) {
        Some(DiskFormat::Qcow2) => "qcow2",
        _ => "raw",
    }
}

/// The writable hard disks of `snap`'s domain that it captured as `kind`, with their image
/// paths: those its `<disks>` names with that kind, or, when it names none, every one
/// `fallback` accepts.
pub fn captured_disks(
    snap: &SnapshotDef,
    kind: DiskSnapshotKind,
    fallback: impl Fn(&Disk) -> bool,
) -> Vec<(&Disk, String)> {
    let Some(def) = &snap.domain else {
        return Vec::new();
    };
    def.devices
        .disks
        .iter()
        .filter(|d| d.device == DiskDevice::Disk && !d.readonly)
        .filter(
            |d| match snap.disks.iter().find(|s| s.name == d.target_dev) {
                Some(s) => s.snapshot == Some(kind),
                None => snap.disks.is_empty() && fallback(d),
            },
        )
        .filter_map(|d| Some((d, d.source.as_ref()?.path.clone()?)))
        .collect()
}

/// `<dir>/<stem>.<snapshot>.qcow2` beside the disk's image.
pub fn default_overlay(source: &str, snapshot: &str) -> PathBuf {
    let p = Path::new(source);
    p.with_file_name(format!("{}.{snapshot}.qcow2", image_stem(p)))
}

/// The file name of image `p` without its extension, the start of every overlay's name.
pub fn image_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "disk".into())
}

/// Work out the plan for snapshot `req` (named `name`) of a domain defined by `def`,
/// `active` or not.
pub fn plan(
    req: &SnapshotDef,
    opts: &SnapshotCreateOptions,
    def: &DomainDef,
    active: bool,
    name: &str,
) -> DriverResult<Plan> {
    if opts.live {
        return Err(unsupported(
            "option 'live' needs an external memory snapshot, which the QEMU driver does not \
             take"
                .into(),
        ));
    }
    let memory = match req.memory.as_ref().map(|m| m.snapshot) {
        Some(MemorySnapshotKind::External) => {
            return Err(unsupported(
                "external memory snapshots (<memory snapshot='external'>) are not supported; \
                 take an internal snapshot, or a disk-only one"
                    .into(),
            ));
        }
        Some(MemorySnapshotKind::Internal) if !active => {
            return Err(invalid(format!(
                "domain '{}' is not running: it has no memory to snapshot",
                def.name
            )));
        }
        Some(MemorySnapshotKind::Internal) => true,
        _ if active && !opts.disk_only => {
            return Err(unsupported(
                "an internal snapshot of a running QEMU domain always holds its memory; \
                 use 'disk-only' for a snapshot of the disks alone"
                    .into(),
            ));
        }
        _ => false,
    };

    // which domain disk each <disk> of the request names
    let disks = &def.devices.disks;
    let mut asked: Vec<Option<&SnapshotDisk>> = vec![None; disks.len()];
    for sd in &req.disks {
        let i = disks
            .iter()
            .position(|d| {
                d.target_dev == sd.name
                    || d.source.as_ref().and_then(|s| s.path.as_deref()) == Some(sd.name.as_str())
            })
            .ok_or_else(|| {
                invalid(format!(
                    "<disk name='{}'> of the snapshot is not a disk of domain '{}'",
                    sd.name, def.name
                ))
            })?;
        if asked[i].is_some() {
            return Err(invalid(format!(
                "disk '{}' is named twice in the snapshot's <disks>",
                disks[i].target_dev
            )));
        }
        asked[i] = Some(sd);
    }

    let mut plan = Plan {
        disks: Vec::new(),
        memory,
        recorded: Vec::new(),
    };
    for (i, disk) in disks.iter().enumerate() {
        let dev = &disk.target_dev;
        let source = disk.source.as_ref().and_then(|s| s.path.clone());
        let eligible = disk.device == DiskDevice::Disk && !disk.readonly && source.is_some();
        let default = if !eligible {
            DiskSnapshotKind::No
        } else if opts.disk_only {
            DiskSnapshotKind::External
        } else {
            DiskSnapshotKind::Internal
        };
        let kind = asked[i]
            .and_then(|a| a.snapshot)
            .or(disk.snapshot)
            .unwrap_or(default);
        let mut recorded = SnapshotDisk {
            name: dev.clone(),
            snapshot: Some(kind),
            disk_type: None,
            driver_type: None,
            source: None,
        };
        let capture = match kind {
            DiskSnapshotKind::No => None,
            DiskSnapshotKind::Manual => {
                return Err(unsupported(format!(
                    "disk '{dev}': snapshot='manual' is not supported"
                )));
            }
            _ if !eligible => {
                return Err(unsupported(format!(
                    "disk '{dev}' is a CD-ROM, floppy, read-only or empty disk and cannot be \
                     snapshotted; leave it out with snapshot='no'"
                )));
            }
            DiskSnapshotKind::Internal if opts.disk_only => {
                return Err(unsupported(format!(
                    "disk '{dev}': disk-only snapshots of QEMU domains are external; \
                     snapshot='internal' cannot be part of one"
                )));
            }
            DiskSnapshotKind::External if !opts.disk_only => {
                return Err(unsupported(format!(
                    "disk '{dev}': an external disk in a snapshot with memory is not \
                     supported; take a 'disk-only' snapshot for external disks"
                )));
            }
            DiskSnapshotKind::Internal => {
                if format_of(disk) != "qcow2" {
                    return Err(unsupported(format!(
                        "disk '{dev}' ({}) is a {} image: internal snapshots need qcow2; \
                         leave it out with snapshot='no' or take a 'disk-only' snapshot",
                        source.as_deref().unwrap_or_default(),
                        format_of(disk)
                    )));
                }
                Some(Capture::Internal)
            }
            DiskSnapshotKind::External => {
                let a = asked[i];
                if a.and_then(|a| a.disk_type) == Some(DiskType::Block) {
                    return Err(unsupported(format!(
                        "disk '{dev}': overlays on block devices are not supported; give a file"
                    )));
                }
                if let Some(f) = a.and_then(|a| a.driver_type)
                    && f != DiskFormat::Qcow2
                {
                    return Err(unsupported(format!(
                        "disk '{dev}': overlays are qcow2, not {f}"
                    )));
                }
                let overlay = match a.and_then(|a| a.source.clone()) {
                    Some(p) => PathBuf::from(p),
                    None if disk.disk_type == DiskType::Block => {
                        return Err(invalid(format!(
                            "disk '{dev}' is a block device: name the overlay file in \
                             <disk name='{dev}'><source file='...'/></disk>"
                        )));
                    }
                    None => default_overlay(source.as_deref().unwrap_or_default(), name),
                };
                recorded.disk_type = Some(DiskType::File);
                recorded.driver_type = Some(DiskFormat::Qcow2);
                recorded.source = Some(overlay.display().to_string());
                Some(Capture::External {
                    overlay,
                    reuse: opts.reuse_external,
                })
            }
        };
        plan.recorded.push(recorded);
        if let Some(capture) = capture {
            plan.disks.push(DiskPlan {
                index: i,
                target: dev.clone(),
                source: source.unwrap_or_default(),
                format: format_of(disk),
                capture,
            });
        }
    }
    if plan.disks.is_empty() {
        return Err(if memory {
            unsupported(format!(
                "domain '{}' has no writable qcow2 disk to hold its memory state",
                def.name
            ))
        } else {
            invalid(format!(
                "snapshot of domain '{}' would capture no disk",
                def.name
            ))
        });
    }
    let mut overlays: Vec<&Path> = Vec::new();
    for d in &plan.disks {
        if let Capture::External { overlay, .. } = &d.capture {
            if overlays.contains(&overlay.as_path()) {
                return Err(invalid(format!(
                    "overlay {} is named for two disks",
                    overlay.display()
                )));
            }
            let in_use = crate::model::disk_images(def)
                .iter()
                .any(|(img, _)| Path::new(img) == overlay);
            if in_use {
                return Err(invalid(format!(
                    "disk '{}': overlay {} is an image the domain already uses",
                    d.target,
                    overlay.display()
                )));
            }
            overlays.push(overlay);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SnapshotDef;

    fn domain(disks: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>g</name><memory>1024</memory><os><type>hvm</type></os>\
             <devices>{disks}</devices></domain>"
        ))
        .expect("domain")
    }

    const QCOW: &str = "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
        <source file='/img/a.qcow2'/><target dev='vda' bus='virtio'/></disk>";
    const RAW: &str = "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
        <source file='/img/b.img'/><target dev='vdb' bus='virtio'/></disk>";
    const CD: &str = "<disk type='file' device='cdrom'><source file='/img/c.iso'/>\
        <target dev='sda' bus='sata'/><readonly/></disk>";

    fn snap(xml: &str) -> SnapshotDef {
        SnapshotDef::from_xml(xml).expect("snapshot")
    }

    fn opts(disk_only: bool) -> SnapshotCreateOptions {
        SnapshotCreateOptions {
            disk_only,
            ..Default::default()
        }
    }

    fn mem(kind: &str) -> String {
        format!("<domainsnapshot><memory snapshot='{kind}'/></domainsnapshot>")
    }

    #[test]
    fn internal_with_memory_over_qcow2_skips_cdrom() {
        let d = domain(&format!("{QCOW}{CD}"));
        let p = plan(&snap(&mem("internal")), &opts(false), &d, true, "s1").expect("plan");
        assert!(p.memory);
        assert_eq!(p.disks.len(), 1);
        assert_eq!(p.disks[0].capture, Capture::Internal);
        assert_eq!(p.recorded[1].snapshot, Some(DiskSnapshotKind::No));
    }

    #[test]
    fn raw_disk_is_refused_by_name_for_internal() {
        let d = domain(&format!("{QCOW}{RAW}"));
        let e = plan(&snap(&mem("internal")), &opts(false), &d, true, "s1").expect_err("raw");
        assert!(
            matches!(&e, DriverError::NotSupported(m) if m.contains("'vdb'") && m.contains("raw")),
            "{e:?}"
        );
        // left out explicitly, it is fine
        let s = snap(
            "<domainsnapshot><memory snapshot='internal'/><disks><disk name='vdb' \
             snapshot='no'/></disks></domainsnapshot>",
        );
        assert!(plan(&s, &opts(false), &d, true, "s1").is_ok());
    }

    #[test]
    fn disk_only_is_external_with_default_or_given_overlays() {
        let d = domain(&format!("{QCOW}{RAW}"));
        let s = snap(
            "<domainsnapshot><disks><disk name='/img/b.img'><source file='/o/b-top.qcow2'/>\
             </disk></disks></domainsnapshot>",
        );
        let p = plan(&s, &opts(true), &d, true, "s2").expect("plan");
        assert!(!p.memory);
        let overlays: Vec<_> = p
            .disks
            .iter()
            .map(|d| match &d.capture {
                Capture::External { overlay, .. } => overlay.display().to_string(),
                c => panic!("{c:?}"),
            })
            .collect();
        assert_eq!(overlays, ["/img/a.s2.qcow2", "/o/b-top.qcow2"]);
        assert_eq!(p.disks[1].format, "raw");
        assert_eq!(p.recorded[0].source.as_deref(), Some("/img/a.s2.qcow2"));
    }

    #[test]
    fn refusals() {
        let d = domain(QCOW);
        let cases = [
            (mem("no"), false, true, "always holds its memory"),
            (
                "<domainsnapshot><memory snapshot='external' file='/m'/></domainsnapshot>".into(),
                false,
                true,
                "external memory",
            ),
            (
                "<domainsnapshot><disks><disk name='vdz'/></disks></domainsnapshot>".into(),
                true,
                true,
                "not a disk",
            ),
            (
                "<domainsnapshot><disks><disk name='vda' snapshot='internal'/></disks>\
                 </domainsnapshot>"
                    .into(),
                true,
                true,
                "external",
            ),
            (
                "<domainsnapshot><disks><disk name='vda' snapshot='external'/></disks>\
                 </domainsnapshot>"
                    .into(),
                false,
                true,
                "disk-only",
            ),
            (
                "<domainsnapshot><disks><disk name='vda'><source file='/img/a.qcow2'/></disk>\
                 </disks></domainsnapshot>"
                    .into(),
                true,
                true,
                "already uses",
            ),
        ];
        for (xml, disk_only, active, needle) in cases {
            let e = plan(&snap(&xml), &opts(disk_only), &d, active, "s").expect_err(needle);
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
        let e = plan(
            &snap("<domainsnapshot/>"),
            &SnapshotCreateOptions {
                live: true,
                ..Default::default()
            },
            &d,
            true,
            "s",
        )
        .expect_err("live");
        assert!(matches!(e, DriverError::NotSupported(_)));
    }

    #[test]
    fn offline_internal_has_no_memory() {
        let d = domain(QCOW);
        let p = plan(&snap(&mem("no")), &opts(false), &d, false, "s").expect("plan");
        assert!(!p.memory && p.disks.len() == 1);
    }
}
