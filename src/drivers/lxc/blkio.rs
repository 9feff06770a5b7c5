//! `<blkiotune>` on a container's cgroup: v1's `blkio` controller where it is mounted, v2's
//! `io` otherwise. What the host's controller offers is applied; what it lacks (v1 weights
//! need the BFQ scheduler, v2 needs the `io` controller) is refused at start, naming the
//! element and the missing file, before anything is created.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cgroup::Cgroups;
use crate::model::blkiotune::Blkiotune;

/// One `<device>`, resolved to its device number at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub path: String,
    pub major: u32,
    pub minor: u32,
    pub weight: u32,
    pub read_iops: u32,
    pub write_iops: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// The settings a start applies (0: unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blkio {
    pub weight: u32,
    pub devices: Vec<Device>,
}

/// The block device numbers of `<blkiotune>`'s devices; the error names the one that is not
/// a block device.
pub fn resolve(tune: &Blkiotune) -> Result<Blkio, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut devices = Vec::new();
    for d in tune.devices.iter().filter(|d| d.is_set()) {
        let m = std::fs::metadata(&d.path)
            .ok()
            .filter(|m| m.file_type().is_block_device())
            .ok_or_else(|| {
                format!(
                    "<blkiotune><device><path> '{}' is not a block device on this host",
                    d.path
                )
            })?;
        let rdev = m.rdev();
        devices.push(Device {
            path: d.path.clone(),
            major: libc::major(rdev),
            minor: libc::minor(rdev),
            weight: d.weight,
            read_iops: d.read_iops,
            write_iops: d.write_iops,
            read_bytes: d.read_bytes,
            write_bytes: d.write_bytes,
        });
    }
    Ok(Blkio {
        weight: tune.weight,
        devices,
    })
}

/// A directory's file, looked for in the nearest existing ancestor while the directory
/// itself is not created yet (a v1 child has its parent's files).
fn offered(dir: &Path, file: &str) -> bool {
    dir.ancestors()
        .find(|a| a.is_dir())
        .is_some_and(|a| a.join(file).exists())
}

impl Blkio {
    pub fn is_set(&self) -> bool {
        self.weight != 0 || !self.devices.is_empty()
    }

    /// The (file, value) writes the settings take on this host, or what it lacks.
    fn writes(&self, cg: &Cgroups) -> Result<Vec<(PathBuf, String)>, String> {
        let mut out = Vec::new();
        if !self.is_set() {
            return Ok(out);
        }
        if let Some(d) = cg.v1_dir("blkio") {
            // the legacy CFQ names first, BFQ's where CFQ is gone
            let pick = |el: &str, files: &[&str]| {
                files
                    .iter()
                    .find(|f| offered(d, f))
                    .map(|f| d.join(f))
                    .ok_or_else(|| {
                        format!(
                            "{el}: this host's blkio controller has no {} (weights need the \
                             BFQ or CFQ I/O scheduler)",
                            files.join(" or ")
                        )
                    })
            };
            if self.weight != 0 {
                let f = pick("<blkiotune><weight>", &["blkio.weight", "blkio.bfq.weight"])?;
                out.push((f, self.weight.to_string()));
            }
            for dev in &self.devices {
                let at = |el: &str| format!("<blkiotune><device> '{}' <{el}>", dev.path);
                let id = format!("{}:{}", dev.major, dev.minor);
                let wd = ["blkio.weight_device", "blkio.bfq.weight_device"];
                for (el, files, v) in [
                    ("weight", &wd[..], u64::from(dev.weight)),
                    (
                        "read_iops_sec",
                        &["blkio.throttle.read_iops_device"][..],
                        u64::from(dev.read_iops),
                    ),
                    (
                        "write_iops_sec",
                        &["blkio.throttle.write_iops_device"][..],
                        u64::from(dev.write_iops),
                    ),
                    (
                        "read_bytes_sec",
                        &["blkio.throttle.read_bps_device"][..],
                        dev.read_bytes,
                    ),
                    (
                        "write_bytes_sec",
                        &["blkio.throttle.write_bps_device"][..],
                        dev.write_bytes,
                    ),
                ] {
                    if v != 0 {
                        out.push((pick(&at(el), files)?, format!("{id} {v}")));
                    }
                }
            }
            return Ok(out);
        }
        let Some(d) = cg.v2_dir().filter(|_| cg.v2_offers("io")) else {
            return Err(
                "<blkiotune>: no cgroup hierarchy offers the blkio (v1) or io (v2) controller"
                    .into(),
            );
        };
        // v2's files appear once the parent enables `io` (at create): go by the kernel's
        // names; BFQ's weight file is used when the kernel has it
        let weight_file = if offered(d, "io.bfq.weight") && !offered(d, "io.weight") {
            "io.bfq.weight"
        } else {
            "io.weight"
        };
        if self.weight != 0 {
            out.push((d.join(weight_file), format!("default {}", self.weight)));
        }
        for dev in &self.devices {
            let id = format!("{}:{}", dev.major, dev.minor);
            if dev.weight != 0 {
                out.push((d.join(weight_file), format!("{id} {}", dev.weight)));
            }
            let mut max = Vec::new();
            for (k, v) in [
                ("rbps", dev.read_bytes),
                ("wbps", dev.write_bytes),
                ("riops", u64::from(dev.read_iops)),
                ("wiops", u64::from(dev.write_iops)),
            ] {
                if v != 0 {
                    max.push(format!("{k}={v}"));
                }
            }
            if !max.is_empty() {
                out.push((d.join("io.max"), format!("{id} {}", max.join(" "))));
            }
        }
        Ok(out)
    }

    /// Whether this host can apply the settings; the error names the element and the file.
    pub fn check(&self, cg: &Cgroups) -> Result<(), String> {
        self.writes(cg).map(drop)
    }

    /// Write the settings into the container's (created) cgroup directories.
    pub fn apply(&self, cg: &Cgroups) -> Result<(), String> {
        for (f, v) in self.writes(cg)? {
            std::fs::write(&f, &v)
                .map_err(|e| format!("cannot write '{v}' to {}: {e}", f.display()))?;
        }
        Ok(())
    }
}
