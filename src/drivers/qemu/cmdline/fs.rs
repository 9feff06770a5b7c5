//! `<filesystem>` on the command line: 9p (`-fsdev local` + `virtio-9p-pci`) and virtio-fs
//! (`vhost-user-fs-pci` talking to a virtiofsd the driver starts, see `super::super::virtiofs`).

use std::path::PathBuf;

use super::{Builder, CmdlineError, Result, alias, esc, pci_addr, socket_path, unsupported};
use crate::model::DomainDef;
use crate::model::devices::{FsAccessMode, FsDriverType, FsModel, FsMultidevs, FsType};

/// A virtiofsd the domain needs, started before QEMU and stopped after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtiofsd {
    /// The filesystem's alias (`fs0`): names the daemon's socket and pid files.
    pub alias: String,
    pub binary: PathBuf,
    pub socket: PathBuf,
    /// Arguments after the binary.
    pub args: Vec<String>,
}

/// Where QEMU 7.2's virtiofsd lives on Debian (package qemu-system-common).
pub const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";

fn model_qdev(base: &str, model: Option<FsModel>) -> String {
    match model {
        None | Some(FsModel::Virtio) => base.to_owned(),
        Some(FsModel::VirtioTransitional) => format!("{base}-transitional"),
        Some(FsModel::VirtioNonTransitional) => format!("{base}-non-transitional"),
    }
}

pub(super) fn filesystems(b: &mut Builder<'_>, def: &DomainDef) -> Result<Vec<Virtiofsd>> {
    let mut daemons = Vec::new();
    for (i, f) in def.devices.filesystems.iter().enumerate() {
        let what = format!("<filesystem> '{}'", f.target);
        if f.fs_type != FsType::Mount {
            return unsupported(format!("{what}: type '{}'", f.fs_type));
        }
        let a = alias(&f.info, format!("fs{i}"));
        let addr = pci_addr(&f.info, &what)?;
        if f.is_virtiofs() {
            let shared = shared_memory(def);
            if !shared {
                return unsupported(format!(
                    "{what}: virtiofs needs shared guest memory: add <memoryBacking><source \
                     type='memfd'/><access mode='shared'/></memoryBacking>"
                ));
            }
            if f.readonly {
                return unsupported(format!("{what}: a read-only virtiofs share"));
            }
            if f.model.is_some() && f.model != Some(FsModel::Virtio) {
                return unsupported(format!("{what}: a transitional virtiofs model"));
            }
            let socket = match &f.socket {
                Some(s) => PathBuf::from(s),
                None => {
                    let sock = socket_path(b.env.dir.join(format!("{a}-fs.sock")))?;
                    daemons.push(virtiofsd(f, &a, sock.clone(), &what)?);
                    sock
                }
            };
            b.need("vhost-user-fs-pci", &what)?;
            let chr = format!("chr-vu-{a}");
            b.arg(
                "-chardev",
                format!(
                    "socket,id={chr},path={}",
                    esc(&socket.display().to_string())
                ),
            );
            let v = super::virtio::props(&f.virtio, true, &what)?;
            let mut s = format!("vhost-user-fs-pci{v},id={a},chardev={chr}");
            s.push_str(&format!(",queue-size={}", f.queue.unwrap_or(1024)));
            s.push_str(&format!(",tag={}", esc(&f.target)));
            s.push_str(&addr);
            b.device(s);
        } else {
            let mut fsdev = match f.driver_type {
                None | Some(FsDriverType::Path) => String::from("local"),
                Some(t) => {
                    return unsupported(format!(
                        "{what}: driver type '{t}' (QEMU 7.2 has only the 'path' 9p backend)"
                    ));
                }
            };
            if f.queue.is_some() {
                return unsupported(format!("{what}: <driver queue> on a 9p share"));
            }
            fsdev.push_str(match f.accessmode.unwrap_or(FsAccessMode::Passthrough) {
                FsAccessMode::Passthrough => ",security_model=passthrough",
                FsAccessMode::Mapped => ",security_model=mapped",
                FsAccessMode::Squash => ",security_model=none",
            });
            if let Some(m) = f.multidevs {
                fsdev.push_str(match m {
                    FsMultidevs::Remap => ",multidevs=remap",
                    FsMultidevs::Forbid => ",multidevs=forbid",
                    FsMultidevs::Warn => ",multidevs=warn",
                });
            }
            if let Some(m) = f.fmode {
                fsdev.push_str(&format!(",fmode={m:04o}"));
            }
            if let Some(m) = f.dmode {
                fsdev.push_str(&format!(",dmode={m:04o}"));
            }
            if f.wrpolicy.is_some() {
                fsdev.push_str(",writeout=immediate");
            }
            let src = f
                .source
                .as_deref()
                .ok_or_else(|| CmdlineError::Invalid(format!("{what}: no <source dir>")))?;
            fsdev.push_str(&format!(",id=fsdev-{a},path={}", esc(src)));
            if f.readonly {
                fsdev.push_str(",readonly=on");
            }
            let qdev = model_qdev("virtio-9p-pci", f.model);
            b.need(&qdev, &what)?;
            b.arg("-fsdev", fsdev);
            let v = super::virtio::props(&f.virtio, true, &what)?;
            b.device(format!(
                "{qdev}{v},id={a},fsdev=fsdev-{a},mount_tag={}{addr}",
                esc(&f.target)
            ));
        }
        b.live.devices.filesystems[i].info.alias = Some(a);
        if b.live.devices.filesystems[i].accessmode.is_none() && f.socket.is_none() {
            b.live.devices.filesystems[i].accessmode = Some(FsAccessMode::Passthrough);
        }
    }
    Ok(daemons)
}

/// The virtiofsd for a share, with libvirt's options.
fn virtiofsd(
    f: &crate::model::devices::Filesystem,
    alias: &str,
    socket: PathBuf,
    what: &str,
) -> Result<Virtiofsd> {
    let bin = f.binary.clone().unwrap_or_default();
    if bin.sandbox.is_some() {
        // sandboxes need privileges and namespaces the daemon runs without here
        tracing::debug!("{what}: sandbox mode passed to virtiofsd");
    }
    let src = f
        .source
        .as_deref()
        .ok_or_else(|| CmdlineError::Invalid(format!("{what}: no <source dir>")))?;
    let mut opts = format!("source={}", src.replace(',', "\\,"));
    if let Some(c) = bin.cache {
        opts.push_str(&format!(",cache={c}"));
    }
    if let Some(s) = bin.sandbox {
        opts.push_str(&format!(",sandbox={s}"));
    }
    for (on, yes, no) in [
        (bin.xattr, "xattr", "no_xattr"),
        (bin.lock_flock, "flock", "no_flock"),
        (bin.lock_posix, "posix_lock", "no_posix_lock"),
    ] {
        if let Some(on) = on {
            opts.push(',');
            opts.push_str(if on { yes } else { no });
        }
    }
    let mut args = vec![
        format!("--socket-path={}", socket.display()),
        "-o".to_owned(),
        opts,
    ];
    if let Some(n) = bin.thread_pool_size {
        args.push(format!("--thread-pool-size={n}"));
    }
    Ok(Virtiofsd {
        alias: alias.to_owned(),
        binary: PathBuf::from(bin.path.as_deref().unwrap_or(VIRTIOFSD)),
        socket,
        args,
    })
}

/// Whether another process (virtiofsd) may map the guest's memory, as libvirt decides it:
/// `<memoryBacking><access mode='shared'/>`, or every NUMA cell shared.
fn shared_memory(def: &DomainDef) -> bool {
    use crate::model::tuning::MemAccess;
    let backing = def.tuning.memory_backing.as_ref().and_then(|m| m.access);
    let cells = def
        .cpu
        .as_ref()
        .map(|c| c.numa.as_slice())
        .unwrap_or_default();
    if !cells.is_empty() {
        return cells
            .iter()
            .all(|c| c.mem_access.or(backing) == Some(MemAccess::Shared));
    }
    backing == Some(MemAccess::Shared)
}

#[cfg(test)]
mod tests {
    use super::super::storage::tests::plan;

    const MEMFD: &str =
        "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>";

    #[test]
    fn virtiofs_runs_a_daemon_and_shares_memory() {
        let p = plan(
            MEMFD,
            "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs' \
             queue='512'/><binary xattr='on'><cache mode='always'/><lock posix='off' \
             flock='on'/><thread_pool size='4'/></binary><source dir='/srv/a,b'/>\
             <target dir='share'/></filesystem>",
        )
        .expect("builds");
        let a = p.args.join(" ");
        assert!(
            a.contains(
                "-machine pc-i440fx-7.2,usb=off,dump-guest-core=off,acpi=off,\
                 memory-backend=pc.ram"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "-m size=65536k -object {\"qom-type\":\"memory-backend-memfd\",\
                 \"id\":\"pc.ram\",\"share\":true,\
                 \"x-use-canonical-path-for-ramblock-id\":false,\"size\":67108864}"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "-chardev socket,id=chr-vu-fs0,path=/run/vb/qemu/d1/fs0-fs.sock \
                 -device vhost-user-fs-pci,id=fs0,chardev=chr-vu-fs0,queue-size=512,tag=share,\
                 addr=0x2.0"
            ),
            "{a}"
        );
        let d = &p.virtiofsd[0];
        assert_eq!(d.binary.to_str(), Some(super::VIRTIOFSD));
        assert_eq!(
            d.args,
            [
                "--socket-path=/run/vb/qemu/d1/fs0-fs.sock",
                "-o",
                "source=/srv/a\\,b,cache=always,xattr,flock,no_posix_lock",
                "--thread-pool-size=4"
            ]
        );
        assert_eq!(
            p.live.devices.filesystems[0].info.alias.as_deref(),
            Some("fs0")
        );
    }

    #[test]
    fn virtiofs_refusals_and_an_external_daemon() {
        let fs = "<filesystem><driver type='virtiofs'/><source dir='/srv'/><target dir='t'/>\
                  </filesystem>";
        let e = plan("", fs).expect_err("refused").to_string();
        assert!(e.contains("shared guest memory"), "{e}");
        let ro = "<filesystem><driver type='virtiofs'/><source dir='/srv'/><target dir='t'/>\
                  <readonly/></filesystem>";
        let e = plan(MEMFD, ro).expect_err("refused").to_string();
        assert!(e.contains("read-only virtiofs"), "{e}");
        let p = plan(
            MEMFD,
            "<filesystem><driver type='virtiofs'/><source socket='/run/vfs.sock'/>\
             <target dir='t'/></filesystem>",
        )
        .expect("builds");
        assert!(p.virtiofsd.is_empty());
        assert!(p.args.join(" ").contains("path=/run/vfs.sock"));
    }

    #[test]
    fn nine_p_shares() {
        let p = plan(
            "",
            "<filesystem type='mount'><source dir='/export/a'/><target dir='/import/a'/>\
             </filesystem>\
             <filesystem accessmode='mapped' fmode='0644' dmode='0755'><driver type='path' \
             wrpolicy='immediate'/><source dir='/export/b'/><target dir='b'/><readonly/>\
             </filesystem>",
        )
        .expect("builds");
        let a = p.args.join(" ");
        assert!(
            a.contains(
                "-fsdev local,security_model=passthrough,id=fsdev-fs0,path=/export/a \
                 -device virtio-9p-pci,id=fs0,fsdev=fsdev-fs0,mount_tag=/import/a,addr=0x2.0"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "-fsdev local,security_model=mapped,fmode=0644,dmode=0755,writeout=immediate,\
                 id=fsdev-fs1,path=/export/b,readonly=on"
            ),
            "{a}"
        );
        let e = plan(
            "",
            "<filesystem><driver type='handle'/><source dir='/e'/><target dir='t'/></filesystem>",
        )
        .expect_err("refused")
        .to_string();
        assert!(e.contains("driver type 'handle'"), "{e}");
    }
}
