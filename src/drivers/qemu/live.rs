//! What a started guest's live definition says beyond its command line, as libvirt's does
//! after start: each disk's detected backing chain and the storage indices of its images,
//! the state of virtio channels, removable drives without a medium as QEMU reports them, and
//! the DAC security label of the user QEMU runs as.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cmdline::CmdlineError;
use crate::model::{
    DomainDef,
    devices::{
        BackingImage, BackingStore, ChannelState, DiskDevice, DiskFormat, DiskSource, DiskType,
    },
    seclabel::{SecLabel, SecLabelType},
};

type Result<T> = std::result::Result<T, CmdlineError>;

/// Deepest backing chain followed; libvirt stops at 200 too.
const MAX_CHAIN: usize = 200;

/// Fill in the live definition's runtime parts that follow from the definition alone (the
/// command line's, so define refuses what no start could honour): security labels, virtio
/// channel states, empty removable drives. Refuses security labels this driver cannot honour.
pub fn prepare(live: &mut DomainDef) -> Result<()> {
    // SAFETY: getuid and getgid have no preconditions. QEMU runs as the daemon's user.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    seclabels(live, uid, gid)?;
    for c in &mut live.devices.channels {
        if c.target_type.as_deref() == Some("virtio") {
            // the guest cannot have opened the port before its CPUs ran
            c.target_state = Some(ChannelState::Disconnected);
        }
    }
    for d in &mut live.devices.disks {
        let removable = matches!(d.device, DiskDevice::Cdrom | DiskDevice::Floppy);
        let empty = d.source.as_ref().is_none_or(|s| s.path.is_none());
        if removable && empty {
            // QEMU reports the drive empty, and an empty drive has no format
            if let Some(drv) = &mut d.driver {
                drv.format = None;
            }
        }
    }
    Ok(())
}

/// At start (not at define: libvirt reads no image then), each disk's backing chain as its
/// image headers tell it, and the storage indices of the images.
pub fn storage(live: &mut DomainDef) -> Result<()> {
    for d in &mut live.devices.disks {
        if d.backing_store.is_none()
            && let Some(path) = d.source.as_ref().and_then(|s| s.path.clone())
        {
            let format = d.driver.as_ref().and_then(|x| x.format);
            d.backing_store = chain_below(Path::new(&path), format)?;
        }
    }
    number_images(live);
    Ok(())
}

/// Both, as a start does.
#[cfg(test)]
fn finish(live: &mut DomainDef) -> Result<()> {
    prepare(live)?;
    storage(live)
}

/// The guest's security labels: no MAC driver here, and QEMU runs as the daemon's user, which
/// libvirt's always-present DAC model records as a dynamic label.
fn seclabels(live: &mut DomainDef, uid: u32, gid: u32) -> Result<()> {
    let ours = format!("+{uid}:+{gid}");
    let mut dac = false;
    for s in &mut live.seclabels {
        match s.model.as_deref() {
            Some("dac") => {
                dac = true;
                match s.kind {
                    SecLabelType::None => {}
                    SecLabelType::Dynamic => {
                        s.label = Some(ours.clone());
                        s.imagelabel = Some(ours.clone());
                    }
                    SecLabelType::Static => {
                        if s.label.as_deref() != Some(ours.as_str()) {
                            return Err(CmdlineError::NotSupported(format!(
                                "<seclabel model='dac' type='static'> with label '{}': QEMU \
                                 runs as the daemon's user ({ours})",
                                s.label.as_deref().unwrap_or_default()
                            )));
                        }
                        s.imagelabel = Some(ours.clone());
                    }
                }
            }
            None | Some("none") => {}
            Some(_) if s.kind == SecLabelType::None => {}
            Some(m) => {
                return Err(CmdlineError::NotSupported(format!(
                    "<seclabel model='{m}' type='{}'>: no '{m}' security driver is active",
                    s.kind
                )));
            }
        }
    }
    if !dac {
        live.seclabels.push(SecLabel::dac(uid, gid));
    }
    Ok(())
}

/// Storage indices as libvirt numbers them at start: disks from the last to the first, each
/// disk's images from its source down its chain. An empty drive takes a number too, which it
/// does not show.
fn number_images(live: &mut DomainDef) {
    let mut next = 0;
    for d in live.devices.disks.iter_mut().rev() {
        next += 1;
        let Some(src) = d.source.as_mut().filter(|s| s.path.is_some()) else {
            continue;
        };
        src.index = Some(next);
        let mut below = d.backing_store.as_mut();
        while let Some(BackingStore::Image(img)) = below {
            next += 1;
            img.index = Some(next);
            below = img.backing_store.as_mut();
        }
    }
}

/// The chain below the image at `path`, read from the image headers as libvirt detects it;
/// `None` where it cannot be known (an image that cannot be read, which QEMU then reports).
pub(crate) fn chain_below(path: &Path, format: Option<DiskFormat>) -> Result<Option<BackingStore>> {
    let mut images: Vec<(PathBuf, DiskFormat)> = Vec::new();
    let (mut at, mut fmt) = (path.to_path_buf(), format.unwrap_or(DiskFormat::Raw));
    loop {
        if fmt != DiskFormat::Qcow2 {
            break;
        }
        let Ok(header) = Qcow2Backing::read(&at) else {
            return Ok(None);
        };
        let Some(name) = header.name else {
            break;
        };
        if name.contains("://") || name.starts_with("json:") {
            // a network or JSON backing: not detected here
            return Ok(None);
        }
        let next = match Path::new(&name) {
            p if p.is_absolute() => p.to_path_buf(),
            p => at.parent().unwrap_or(Path::new("/")).join(p),
        };
        let next_fmt = match header.format.as_deref() {
            Some(f) => f.parse::<DiskFormat>().map_err(|_| {
                CmdlineError::NotSupported(format!(
                    "backing image '{name}' of image '{}' has format '{f}'",
                    at.display()
                ))
            })?,
            None => {
                if Qcow2Backing::read(&next).is_ok() {
                    return Err(CmdlineError::Invalid(format!(
                        "format of backing image '{name}' of image '{}' was not specified in \
                         the image metadata",
                        at.display()
                    )));
                }
                DiskFormat::Raw
            }
        };
        images.push((next.clone(), next_fmt));
        if images.len() > MAX_CHAIN {
            return Err(CmdlineError::Invalid(format!(
                "the backing chain of '{}' is deeper than {MAX_CHAIN}",
                path.display()
            )));
        }
        (at, fmt) = (next, next_fmt);
    }
    let mut below = BackingStore::End;
    for (p, f) in images.into_iter().rev() {
        let block = std::fs::metadata(&p).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_block_device()
        });
        below = BackingStore::Image(Box::new(BackingImage {
            disk_type: if block {
                DiskType::Block
            } else {
                DiskType::File
            },
            index: None,
            format: Some(f),
            source: Some(DiskSource {
                path: Some(p.to_string_lossy().into_owned()),
                index: None,
                startup_policy: None,
                network: None,
                volume: None,
            }),
            backing_store: Some(below),
        }));
    }
    Ok(Some(below))
}

/// The backing file a qcow2 header names, and its format (the backing-format extension).
struct Qcow2Backing {
    name: Option<String>,
    format: Option<String>,
}

impl Qcow2Backing {
    const MAGIC: &[u8; 4] = b"QFI\xfb";
    const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;

    fn read(path: &Path) -> std::io::Result<Qcow2Backing> {
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
        let mut f = std::fs::File::open(path)?;
        let mut h = [0u8; 104];
        f.read_exact(&mut h[..72])?;
        if &h[..4] != Self::MAGIC {
            return Err(bad("not a qcow2 image"));
        }
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let version = be32(&h[4..8]);
        let offset = u64::from_be_bytes(h[8..16].try_into().map_err(|_| bad("header"))?);
        let size = be32(&h[16..20]) as usize;
        let header_len = if version >= 3 {
            f.read_exact(&mut h[72..104])?;
            be32(&h[100..104]) as u64
        } else {
            72
        };
        let name = if offset == 0 || size == 0 {
            None
        } else {
            if size > 1023 {
                return Err(bad("backing file name too long"));
            }
            let mut buf = vec![0u8; size];
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut buf)?;
            Some(String::from_utf8(buf).map_err(|_| bad("backing file name not UTF-8"))?)
        };
        // header extensions: type, length, data padded to 8 bytes; type 0 ends them
        let mut format = None;
        f.seek(SeekFrom::Start(header_len))?;
        for _ in 0..64 {
            let mut e = [0u8; 8];
            if f.read_exact(&mut e).is_err() {
                break;
            }
            let (kind, len) = (be32(&e[..4]), be32(&e[4..]) as usize);
            if kind == 0 || len > 65536 {
                break;
            }
            let mut data = vec![0u8; len.div_ceil(8) * 8];
            f.read_exact(&mut data)?;
            if kind == Self::EXT_BACKING_FORMAT {
                format = String::from_utf8(data[..len].to_vec()).ok();
            }
        }
        Ok(Qcow2Backing { name, format })
    }
}

/// A `VSERPORT_CHANGE` event: the guest opened or closed the virtio port with this alias.
/// Returns the port's name and whether it is open now, when the port is one of the domain's
/// channels.
pub fn port_changed(live: &mut DomainDef, data: &Value) -> Option<(String, bool)> {
    let id = data.get("id").and_then(Value::as_str)?;
    let open = data.get("open").and_then(Value::as_bool).unwrap_or(false);
    if let Some(c) = live
        .devices
        .channels
        .iter_mut()
        .find(|c| c.info.alias.as_deref() == Some(id))
    {
        c.target_state = Some(if open {
            ChannelState::Connected
        } else {
            ChannelState::Disconnected
        });
        return Some((c.target_name.clone().unwrap_or_default(), open));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn img(dir: &Path, name: &str, backing: Option<(&str, &str)>) -> String {
        let p = dir.join(name);
        let mut c = Command::new("qemu-img");
        c.args(["create", "-q", "-f", "qcow2"]);
        if let Some((b, f)) = backing {
            c.args(["-b", b, "-F", f]);
        }
        c.arg(&p).arg("1M");
        assert!(c.status().expect("qemu-img").success());
        p.to_string_lossy().into_owned()
    }

    fn def(xml_disks: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>x</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{xml_disks}</devices></domain>"
        ))
        .expect("def")
    }

    #[test]
    fn chains_are_detected_and_images_numbered_as_libvirt_does() {
        let dir = tempfile::tempdir().unwrap();
        let base = img(dir.path(), "base.qcow2", None);
        let top = img(dir.path(), "top.qcow2", Some(("base.qcow2", "qcow2")));
        let raw = dir.path().join("raw.img");
        std::fs::write(&raw, [0u8; 512]).unwrap();
        let mut d = def(&format!(
            "<disk type='file'><driver name='qemu' type='qcow2'/><source file='{top}'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/><readonly/></disk>\
             <disk type='file'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
            raw.display()
        ));
        finish(&mut d).unwrap();
        // the definition keeps libvirt's order: vda, vdb (after the disk of its bus), hdc
        let by = |dev: &str| {
            d.devices
                .disks
                .iter()
                .find(|x| x.target_dev == dev)
                .cloned()
                .expect("disk")
        };
        let disks = [by("vda"), by("hdc"), by("vdb")];
        // the last disk first, each from its source down; the empty drive takes 1
        assert_eq!(disks[2].source.as_ref().unwrap().index, Some(2));
        assert_eq!(disks[2].backing_store, Some(BackingStore::End));
        assert_eq!(disks[0].source.as_ref().unwrap().index, Some(3));
        let Some(BackingStore::Image(b)) = &disks[0].backing_store else {
            panic!("{:?}", disks[0].backing_store)
        };
        assert_eq!(b.index, Some(4));
        assert_eq!(b.format, Some(DiskFormat::Qcow2));
        assert_eq!(
            b.source.as_ref().unwrap().path.as_deref(),
            Some(base.as_str())
        );
        assert_eq!(b.backing_store, Some(BackingStore::End));
        // the empty drive: no index, no format
        assert_eq!(disks[1].source, None);
        assert_eq!(disks[1].driver.as_ref().unwrap().format, None);
        let xml = d.to_xml(&crate::model::FormatOptions {
            id: Some(1),
            secure: true,
        });
        assert!(
            xml.contains(&format!("<source file='{top}' index='3'/>")),
            "{xml}"
        );
        assert!(
            xml.contains("<backingStore type='file' index='4'>"),
            "{xml}"
        );
    }

    #[test]
    fn a_backing_file_of_unknown_format_is_refused_unless_raw() {
        let dir = tempfile::tempdir().unwrap();
        img(dir.path(), "base.qcow2", None);
        // a version 2 header naming a backing file without its format (qemu-img no longer
        // writes these, older ones did): header, end of extensions, then the name
        let top = dir.path().join("top.qcow2");
        let name = b"base.qcow2";
        let mut h = vec![0u8; 80];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h[8..16].copy_from_slice(&80u64.to_be_bytes());
        h[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
        h.extend_from_slice(name);
        std::fs::write(&top, &h).unwrap();
        let mut d = def(&format!(
            "<disk type='file'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>",
            top.display()
        ));
        let e = finish(&mut d).unwrap_err();
        assert!(e.to_string().contains("was not specified"), "{e}");
        // a raw image below is taken as raw
        std::fs::write(dir.path().join("base.qcow2"), [0u8; 512]).unwrap();
        let mut d = def(&format!(
            "<disk type='file'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>",
            top.display()
        ));
        finish(&mut d).unwrap();
        let Some(BackingStore::Image(b)) = &d.devices.disks[0].backing_store else {
            panic!()
        };
        assert_eq!(b.format, Some(DiskFormat::Raw));
    }

    #[test]
    fn the_dac_label_is_the_daemons_user_and_other_models_are_refused() {
        let mut d = def("");
        seclabels(&mut d, 0, 0).unwrap();
        assert_eq!(d.seclabels, vec![SecLabel::dac(0, 0)]);
        let xml = d.to_xml(&crate::model::FormatOptions {
            id: Some(1),
            secure: true,
        });
        assert!(
            xml.contains(
                "<seclabel type='dynamic' model='dac' relabel='yes'>\n    <label>+0:+0</label>\n    \
                 <imagelabel>+0:+0</imagelabel>\n  </seclabel>"
            ),
            "{xml}"
        );
        // read back: the same
        assert_eq!(DomainDef::from_xml(&xml).unwrap().seclabels, d.seclabels);

        let mut d = def("");
        d.seclabels.push(SecLabel {
            kind: SecLabelType::Dynamic,
            model: Some("selinux".into()),
            relabel: None,
            label: None,
            imagelabel: None,
            baselabel: None,
        });
        let e = seclabels(&mut d, 0, 0).unwrap_err();
        assert!(e.to_string().contains("'selinux'"), "{e}");

        let mut d = def("");
        let mut s = SecLabel::dac(107, 107);
        s.kind = SecLabelType::Static;
        d.seclabels.push(s);
        assert!(matches!(
            seclabels(&mut d, 0, 0),
            Err(CmdlineError::NotSupported(_))
        ));
        // a static label that is the daemon's user is kept
        let mut d = def("");
        let mut s = SecLabel::dac(0, 0);
        s.kind = SecLabelType::Static;
        d.seclabels.push(s.clone());
        seclabels(&mut d, 0, 0).unwrap();
        assert_eq!(d.seclabels, vec![s]);
    }

    #[test]
    fn channel_events_move_the_state() {
        let mut d = def(
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/><alias name='channel0'/></channel>",
        );
        finish(&mut d).unwrap();
        assert_eq!(
            d.devices.channels[0].target_state,
            Some(ChannelState::Disconnected)
        );
        port_changed(&mut d, &serde_json::json!({"id": "channel0", "open": true}));
        assert_eq!(
            d.devices.channels[0].target_state,
            Some(ChannelState::Connected)
        );
    }
}
