//! A backup job's definition (libvirt's `<domainbackup>`): push mode copies disks into
//! target files, pull mode exports them over NBD while scratch files keep what the guest
//! overwrites. [`BackupDef::align`] fills in what libvirt fills in when a job starts (every
//! disk of the domain listed, default file names, full or incremental mode), so that the
//! XML read back is libvirt's.

use super::{
    DomainDef,
    devices::DiskFormat,
    error::XmlError,
    values::{self, xml_enum},
    writer::Writer,
    xml,
};

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// Push (the hypervisor writes the copy) or pull (a client reads it over NBD).
    pub enum BackupMode {
        Push = "push",
        Pull = "pull",
    }
}

xml_enum! {
    /// How a pull backup's NBD server listens.
    pub enum ServerTransport {
        Tcp = "tcp",
        Unix = "unix",
        Rdma = "rdma",
    }
}

xml_enum! {
    /// A backup disk's copy: all of it, or what changed since a checkpoint.
    pub enum DiskBackupMode {
        Full = "full",
        Incremental = "incremental",
    }
}

xml_enum! {
    /// Where a disk's copy (push) or scratch data (pull) goes.
    pub enum StoreType {
        File = "file",
        Block = "block",
    }
}

/// A pull backup's NBD server (`<server>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupServer {
    pub transport: ServerTransport,
    pub name: Option<String>,
    pub port: Option<u32>,
    pub socket: Option<String>,
    pub tls: Option<bool>,
}

/// One disk of the backup (`<disks><disk>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDisk {
    /// The domain disk's target (`vda`).
    pub name: String,
    pub backup: bool,
    pub store_type: StoreType,
    pub mode: Option<DiskBackupMode>,
    /// The checkpoint this disk's incremental copy starts from.
    pub incremental: Option<String>,
    pub exportname: Option<String>,
    pub exportbitmap: Option<String>,
    /// The target (push) or scratch (pull) file or block device.
    pub path: Option<String>,
    pub format: Option<DiskFormat>,
    /// libvirt's storage source id of the store, shown once the job runs.
    pub index: Option<u32>,
}

impl BackupDisk {
    fn skipped(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            backup: false,
            store_type: StoreType::File,
            mode: None,
            incremental: None,
            exportname: None,
            exportbitmap: None,
            path: None,
            format: None,
            index: None,
        }
    }
}

/// A backup definition as given, or (after [`BackupDef::align`]) as the job runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDef {
    pub mode: BackupMode,
    /// The checkpoint every disk's incremental copy starts from (unless a disk names one).
    pub incremental: Option<String>,
    pub server: Option<BackupServer>,
    pub disks: Vec<BackupDisk>,
}

/// A definition that cannot run on this domain (libvirt's `VIR_ERR_CONFIG_UNSUPPORTED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AlignError(pub String);

impl BackupDef {
    pub fn from_xml(text: &str) -> Result<Self> {
        let doc = xml::parse_document(text)?;
        let mut e = xml::root(&doc, "domainbackup")?;
        let mode = e
            .attr_with("mode", values::keyword::<BackupMode>)?
            .unwrap_or(BackupMode::Push);
        let incremental = e.child_text("incremental")?;
        let server = match e.child("server")? {
            // libvirt's schema wants the server of a pull backup
            None if mode == BackupMode::Pull => return Err(e.missing_child("server")),
            None => None,
            Some(s) => Some(read_server(s, mode)?),
        };
        let mut disks = Vec::new();
        if let Some(mut d) = e.child("disks")? {
            d.each("disk", |disk| {
                disks.push(read_disk(disk, mode)?);
                Ok(())
            })?;
            d.finish()?;
        }
        e.finish()?;
        Ok(Self {
            mode,
            incremental,
            server,
            disks,
        })
    }

    /// libvirt's XML of the definition.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new(0);
        w.start("domainbackup");
        w.attr("mode", self.mode.as_str());
        if let Some(i) = &self.incremental {
            w.leaf("incremental", i);
        }
        if let Some(s) = &self.server {
            w.start("server");
            w.attr("transport", s.transport.as_str());
            if let Some(t) = s.tls {
                w.attr("tls", values::yes_no_str(t));
            }
            w.attr_opt("name", s.name.as_deref());
            w.attr_num_opt("port", s.port.filter(|p| *p != 0));
            w.attr_opt("socket", s.socket.as_deref());
            w.end();
        }
        if !self.disks.is_empty() {
            w.start("disks");
            for d in &self.disks {
                write_disk(&mut w, d, self.mode);
            }
            w.end();
        }
        w.end();
        w.finish()
    }

    /// The definition as libvirt runs it on `dom` (`virDomainBackupAlignDisks`): the disks
    /// asked checked, every other disk of the domain listed (backed up when none was asked),
    /// stores named `<image>.<suffix>`, and each disk's mode settled.
    pub fn align(&mut self, dom: &DomainDef, suffix: &str) -> std::result::Result<(), AlignError> {
        let domdisks = &dom.devices.disks;
        if domdisks.is_empty() {
            return Err(AlignError(
                "domain must have at least one disk to perform backup".into(),
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for bd in &mut self.disks {
            let Some(dd) = domdisks.iter().find(|d| d.target_dev == bd.name) else {
                return Err(AlignError(format!("no disk named '{}'", bd.name)));
            };
            if seen.contains(&bd.name) {
                return Err(AlignError(format!("disk '{}' specified twice", bd.name)));
            }
            seen.push(bd.name.clone());
            if bd.mode == Some(DiskBackupMode::Incremental)
                && bd.incremental.is_none()
                && self.incremental.is_none()
            {
                return Err(AlignError(format!(
                    "'incremental' backup mode of disk '{}' requires setting 'incremental' field for disk or backup",
                    bd.name
                )));
            }
            if bd.backup {
                assign_store(bd, disk_source(dd), suffix)?;
            }
        }
        let backup_all = self.disks.is_empty();
        for dd in domdisks {
            if seen.contains(&dd.target_dev) {
                continue;
            }
            let mut bd = BackupDisk::skipped(&dd.target_dev);
            let src = disk_source(dd);
            if backup_all && src.is_some() && !dd.readonly {
                bd.backup = true;
                assign_store(&mut bd, src, suffix)?;
            }
            self.disks.push(bd);
        }
        for bd in &mut self.disks {
            if !bd.backup {
                continue;
            }
            if bd.mode.is_none() {
                bd.mode = Some(if self.incremental.is_some() || bd.incremental.is_some() {
                    DiskBackupMode::Incremental
                } else {
                    DiskBackupMode::Full
                });
            }
            if bd.incremental.is_none() && bd.mode == Some(DiskBackupMode::Incremental) {
                bd.incremental.clone_from(&self.incremental);
            }
        }
        Ok(())
    }
}

/// A disk's source: its path and whether it is a file (`None`: no medium).
fn disk_source(d: &super::devices::Disk) -> Option<(String, bool)> {
    let path = d.source.as_ref().and_then(|s| s.path.clone())?;
    Some((path, d.disk_type.as_str() == "file"))
}

/// libvirt's `virDomainBackupDefAssignStore`.
fn assign_store(
    bd: &mut BackupDisk,
    src: Option<(String, bool)>,
    suffix: &str,
) -> std::result::Result<(), AlignError> {
    match src {
        None if bd.path.is_some() => Err(AlignError(format!("disk '{}' has no media", bd.name))),
        None => Ok(()),
        Some(_) if bd.path.is_some() => Ok(()),
        Some((path, true)) => {
            bd.store_type = StoreType::File;
            bd.path = Some(format!("{path}.{suffix}"));
            Ok(())
        }
        Some((_, false)) => Err(AlignError(format!(
            "refusing to generate file name for disk '{}'",
            bd.name
        ))),
    }
}

fn read_server(mut s: xml::Elem, mode: BackupMode) -> Result<BackupServer> {
    if mode != BackupMode::Pull {
        return Err(XmlError::invalid(
            s.path(),
            "",
            "use of <server> requires pull mode backup",
        ));
    }
    let transport = s
        .attr_with("transport", values::keyword::<ServerTransport>)?
        .unwrap_or(ServerTransport::Tcp);
    if transport == ServerTransport::Rdma {
        return Err(s.attr_invalid(
            "transport",
            "rdma",
            "transport rdma is not supported for <server>",
        ));
    }
    let name = s.attr_string("name");
    let port = s.attr_with("port", |p| {
        p.parse::<u32>()
            .ok()
            .filter(|p| *p <= 65535)
            .ok_or_else(|| "expected a port number".to_owned())
    })?;
    let socket = s.attr_string("socket");
    let tls = s.attr_with("tls", values::yes_no)?;
    match transport {
        ServerTransport::Unix => match &socket {
            None => return Err(s.missing_attr("socket")),
            Some(p) if !p.starts_with('/') => {
                return Err(s.attr_invalid("socket", p, "backup socket path must be absolute"));
            }
            Some(_) => {}
        },
        _ => {
            if name.is_none() {
                return Err(s.missing_attr("name"));
            }
        }
    }
    s.finish()?;
    Ok(BackupServer {
        transport,
        name,
        port,
        socket,
        tls,
    })
}

fn read_disk(mut d: xml::Elem, mode: BackupMode) -> Result<BackupDisk> {
    let name = d.req_attr("name")?.to_owned();
    let backup = d.attr_with("backup", values::yes_no)?.unwrap_or(true);
    let mut disk = BackupDisk::skipped(&name);
    disk.backup = backup;
    if !backup {
        // libvirt reads nothing else of a disk left out
        d.finish()?;
        return Ok(disk);
    }
    if mode == BackupMode::Pull {
        disk.exportname = d.attr_string("exportname");
        disk.exportbitmap = d.attr_string("exportbitmap");
    }
    disk.mode = d.attr_with("backupmode", values::keyword::<DiskBackupMode>)?;
    disk.incremental = d.attr_string("incremental");
    // libvirt's schema wants the store's type of every disk backed up
    disk.store_type = d.req_attr_with("type", values::keyword::<StoreType>)?;
    if let Some(mut drv) = d.child("driver")? {
        let format = drv.req_attr_with("type", values::keyword::<DiskFormat>)?;
        if mode == BackupMode::Pull && format != DiskFormat::Qcow2 {
            return Err(drv.attr_invalid(
                "type",
                format.as_str(),
                "a pull mode backup's scratch image must be qcow2",
            ));
        }
        disk.format = Some(format);
        drv.finish()?;
    }
    let (here, other) = match mode {
        BackupMode::Push => ("target", "scratch"),
        BackupMode::Pull => ("scratch", "target"),
    };
    if let Some(o) = d.child(other)? {
        return Err(o.unknown());
    }
    if let Some(mut t) = d.child(here)? {
        let attr = match disk.store_type {
            StoreType::File => "file",
            StoreType::Block => "dev",
        };
        disk.path = t.attr_string(attr);
        t.finish()?;
    }
    d.finish()?;
    Ok(disk)
}

fn write_disk(w: &mut Writer, d: &BackupDisk, mode: BackupMode) {
    w.start("disk");
    w.attr("name", &d.name);
    w.attr("backup", values::yes_no_str(d.backup));
    if !d.backup {
        w.end();
        return;
    }
    w.attr("type", d.store_type.as_str());
    if let Some(m) = d.mode {
        w.attr("backupmode", m.as_str());
    }
    w.attr_opt("incremental", d.incremental.as_deref());
    w.attr_opt("exportname", d.exportname.as_deref());
    w.attr_opt("exportbitmap", d.exportbitmap.as_deref());
    w.attr_num_opt("index", d.index);
    if let Some(f) = d.format {
        w.start("driver");
        w.attr("type", f.as_str());
        w.end();
    }
    if let Some(p) = &d.path {
        w.start(match mode {
            BackupMode::Push => "target",
            BackupMode::Pull => "scratch",
        });
        w.attr(
            match d.store_type {
                StoreType::File => "file",
                StoreType::Block => "dev",
            },
            p,
        );
        w.end();
    }
    w.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom() -> DomainDef {
        DomainDef::from_xml(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices>\
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='/i/a.qcow2'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='disk'><source file='/i/b.img'/>\
             <target dev='vdb' bus='virtio'/></disk>\
             <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>\
             </devices></domain>",
        )
        .expect("domain")
    }

    #[test]
    fn empty_push_backs_up_every_disk_with_media() {
        let mut b = BackupDef::from_xml("<domainbackup/>").expect("parse");
        b.align(&dom(), "17").expect("align");
        assert_eq!(
            b.to_xml(),
            "<domainbackup mode='push'>\n  <disks>\n    \
             <disk name='vda' backup='yes' type='file' backupmode='full'>\n      \
             <target file='/i/a.qcow2.17'/>\n    </disk>\n    \
             <disk name='vdb' backup='yes' type='file' backupmode='full'>\n      \
             <target file='/i/b.img.17'/>\n    </disk>\n    \
             <disk name='sda' backup='no'/>\n  </disks>\n</domainbackup>\n"
        );
    }

    #[test]
    fn listed_disks_leave_the_others_out_and_pull_keeps_its_server() {
        let mut b = BackupDef::from_xml(
            "<domainbackup mode='pull'><incremental>c1</incremental>\
             <server transport='unix' socket='/run/s'/>\
             <disks><disk name='vdb' type='file' exportname='e'><driver type='qcow2'/>\
             <scratch file='/s/b'/></disk></disks></domainbackup>",
        )
        .expect("parse");
        b.align(&dom(), "c2").expect("align");
        let x = b.to_xml();
        assert!(
            x.contains("<server transport='unix' socket='/run/s'/>"),
            "{x}"
        );
        assert!(x.contains("<disk name='vdb' backup='yes' type='file' backupmode='incremental' incremental='c1' exportname='e'>"), "{x}");
        assert!(x.contains("<scratch file='/s/b'/>"), "{x}");
        assert!(x.contains("<disk name='vda' backup='no'/>"), "{x}");
        assert_eq!(BackupDef::from_xml(&x).expect("again").to_xml(), x);
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let e = BackupDef::from_xml(
            "<domainbackup><disks><disk name='vda' type='file'><bogus/></disk></disks></domainbackup>",
        )
        .expect_err("unknown");
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = BackupDef::from_xml("<domainbackup><server name='x' port='1'/></domainbackup>")
            .expect_err("server in push");
        assert!(e.to_string().contains("requires pull mode"), "{e}");
        let e = BackupDef::from_xml("<domainbackup><disks><disk name='vda' type='file'><scratch file='/x'/></disk></disks></domainbackup>")
            .expect_err("scratch in push");
        assert!(e.to_string().contains("scratch"), "{e}");
        let mut b = BackupDef::from_xml(
            "<domainbackup><disks><disk name='vdz' type='file'/></disks></domainbackup>",
        )
        .expect("parse");
        assert_eq!(
            b.align(&dom(), "1").expect_err("no disk").0,
            "no disk named 'vdz'"
        );
        let mut b = BackupDef::from_xml(
            "<domainbackup><disks><disk name='vda' type='file'/><disk name='vda' type='file'/></disks></domainbackup>",
        )
        .expect("parse");
        assert_eq!(
            b.align(&dom(), "1").expect_err("twice").0,
            "disk 'vda' specified twice"
        );
    }
}
