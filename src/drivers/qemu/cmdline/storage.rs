//! Storage on the command line beyond plain local images: SCSI controllers and their disks,
//! network sources (NBD and QEMU's curl protocols), the disk driver and device options, and
//! I/O throttling, as libvirt 9.0 gives them to QEMU 7.2.

use serde_json::{Map, Value, json};

use super::{Builder, CmdlineError, Result, Setup, alias, esc, on_off, pci_addr, unsupported};
use crate::model::devices::{
    Controller, Disk, DiskBus, DiskDevice, ErrorPolicy, HostTransport, IOTUNE_FIELDS, NetProtocol,
    NetSource,
};

/// The QEMU device of a SCSI controller model (libvirt's names), and whether it is virtio.
fn scsi_qdev(model: &str) -> Option<(&'static str, bool)> {
    Some(match model {
        "virtio-scsi" => ("virtio-scsi-pci", true),
        "virtio-transitional" => ("virtio-scsi-pci-transitional", true),
        "virtio-non-transitional" => ("virtio-scsi-pci-non-transitional", true),
        "lsilogic" => ("lsi53c895a", false),
        "lsisas1068" => ("mptsas1068", false),
        "lsisas1078" => ("megasas", false),
        "vmpvscsi" => ("pvscsi", false),
        "am53c974" => ("am53c974", false),
        "dc390" => ("dc390", false),
        _ => return None,
    })
}

/// Whether the controller's disks take libvirt's virtio-scsi style addresses
/// (channel, scsi-id, lun) rather than the parallel-SCSI ones (scsi-id only).
fn scsi_is_virtio_style(model: &str) -> bool {
    !matches!(model, "lsilogic" | "am53c974" | "dc390" | "ncr53c90")
}

/// `-device` for `<controller type='scsi'>` number `i` of the definition.
pub(super) fn scsi_controller(b: &mut Builder<'_>, i: usize, c: &Controller) -> Result<()> {
    let idx = c.index.unwrap_or(0);
    let model = c
        .model
        .as_deref()
        .unwrap_or(super::super::defaults::default_scsi_model(b.env.caps));
    let what = format!("<controller type='scsi' index='{idx}' model='{model}'>");
    let (dev, virtio) =
        scsi_qdev(model).ok_or_else(|| CmdlineError::NotSupported(format!("{what}: model")))?;
    b.need(dev, &what)?;
    let a = alias(&c.info, format!("scsi{idx}"));
    let mut s = format!(
        "{dev}{},id={a}",
        super::virtio::props(&c.virtio, virtio, &what)?
    );
    for (k, v) in &c.driver {
        if !virtio {
            return unsupported(format!("{what}: <driver {k}> (virtio-scsi only)"));
        }
        match *k {
            "iothread" => {
                let known = v
                    .parse::<u32>()
                    .ok()
                    .filter(|id| b.live.tuning.iothreads.iter().any(|t| t.id == *id));
                let Some(id) = known else {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: <driver iothread='{v}'> names no I/O thread of <iothreads>"
                    )));
                };
                s.push_str(&format!(",iothread=iothread{id}"));
            }
            "queues" => s.push_str(&format!(",num_queues={}", esc(v))),
            // cmd_per_lun, max_sectors, ioeventfd: QEMU's names are libvirt's
            k => s.push_str(&format!(",{k}={}", esc(v))),
        }
    }
    s.push_str(&pci_addr(&c.info, &what)?);
    b.device(s);
    b.live.devices.controllers[i].info.alias = Some(a);
    Ok(())
}

/// `<target bus='usb'>`: QEMU's `usb-storage`, its USB address and alias, as libvirt's. A
/// USB CD-ROM is refused: QEMU's USB mass storage shows the guest a hard disk.
pub(super) fn usb_disk(
    def: &crate::model::DomainDef,
    d: &Disk,
    idx: u32,
    what: &str,
) -> Result<(&'static str, String, String)> {
    if d.device != DiskDevice::Disk {
        return unsupported(format!(
            "{what}: a {} on the USB bus (QEMU's usb-storage shows the guest a hard disk)",
            d.device
        ));
    }
    let has_usb = def.devices.controllers.iter().any(|c| {
        c.controller_type == crate::model::devices::ControllerType::Usb
            && c.model.as_deref() != Some("none")
    });
    if !has_usb {
        return unsupported(format!("{what}: no USB controller to plug it into"));
    }
    Ok((
        "usb-storage",
        alias(&d.info, format!("usb-disk{idx}")),
        super::usb::usb_addr(&d.info, what)?,
    ))
}

/// The bus part of a SCSI disk's `-device`, its alias, and the device type.
pub(super) fn scsi_disk(
    b: &mut Builder<'_>,
    d: &Disk,
    what: &str,
) -> Result<(&'static str, String, String)> {
    // without an address (a definition the defaults never saw), the one libvirt assigns
    let index = u64::from(super::disk_index(&d.target_dev).unwrap_or(0));
    let given = |k: &str| super::drive_attr(&d.info, k).unwrap_or(0);
    let (ctrl, bus, target, unit) = if d.info.address.is_some() {
        (
            given("controller"),
            given("bus"),
            given("target"),
            given("unit"),
        )
    } else {
        (index / 7, 0, 0, index % 7)
    };
    let c = b.live.devices.controllers.iter().find(|c| {
        c.controller_type == crate::model::devices::ControllerType::Scsi
            && u64::from(c.index.unwrap_or(0)) == ctrl
    });
    // a controller the definition lacks is the one the defaults add
    let model = c
        .and_then(|c| c.model.clone())
        .unwrap_or_else(|| super::super::defaults::default_scsi_model(b.env.caps).to_owned());
    let calias = c
        .and_then(|c| c.info.alias.clone())
        .unwrap_or_else(|| format!("scsi{ctrl}"));
    let qdev = if d.device == DiskDevice::Cdrom {
        "scsi-cd"
    } else {
        "scsi-hd"
    };
    if scsi_is_virtio_style(&model) {
        if target > 255 || unit > 16383 {
            return Err(CmdlineError::Invalid(format!(
                "{what}: SCSI target {target} unit {unit} is out of range (255, 16383)"
            )));
        }
        let a = alias(&d.info, format!("scsi{ctrl}-{bus}-{target}-{unit}"));
        let busarg = format!(",bus={calias}.0,channel={bus},scsi-id={target},lun={unit}");
        Ok((qdev, a, busarg))
    } else {
        if target != 0 || unit > 6 {
            return unsupported(format!(
                "{what}: target {target} unit {unit} on a '{model}' controller (target 0, \
                 units 0-6)"
            ));
        }
        let a = alias(&d.info, format!("scsi{ctrl}-{bus}-{unit}"));
        Ok((qdev, a, format!(",bus={calias}.{bus},scsi-id={unit}")))
    }
}

/// QEMU's error action for libvirt's policy.
fn error_action(p: ErrorPolicy) -> &'static str {
    match p {
        ErrorPolicy::Stop => "stop",
        ErrorPolicy::Report => "report",
        ErrorPolicy::Ignore => "ignore",
        ErrorPolicy::Enospace => "enospc",
    }
}

/// The `-device` properties of a disk's options beyond drive, id, bootindex, serial and
/// write cache, in libvirt's order; refuses those the bus's device does not have.
pub(super) fn device_options(d: &Disk, bus: DiskBus, what: &str) -> Result<String> {
    let drv = d.driver.clone().unwrap_or_default();
    let cdrom = d.device == DiskDevice::Cdrom;
    let mut s = String::new();
    let virtio_only = [
        ("ioeventfd", drv.ioeventfd.map(on_off).map(str::to_owned)),
        ("event_idx", drv.event_idx.map(on_off).map(str::to_owned)),
        ("num-queues", drv.queues.map(|q| q.to_string())),
        ("queue-size", drv.queue_size.map(|q| q.to_string())),
    ];
    for (k, v) in virtio_only {
        if let Some(v) = v {
            if bus != DiskBus::Virtio {
                return unsupported(format!("{what}: <driver> option '{k}' on bus '{bus}'"));
            }
            s.push_str(&format!(",{k}={v}"));
        }
    }
    if let Some(bio) = &d.blockio {
        if let Some(n) = bio.logical_block_size {
            s.push_str(&format!(",logical_block_size={n}"));
        }
        if let Some(n) = bio.physical_block_size {
            s.push_str(&format!(",physical_block_size={n}"));
        }
    }
    if let Some(w) = &d.wwn {
        if !matches!(bus, DiskBus::Scsi | DiskBus::Ide | DiskBus::Sata) {
            return unsupported(format!("{what}: <wwn> on bus '{bus}' (SCSI and IDE only)"));
        }
        s.push_str(&format!(",wwn=0x{}", w.strip_prefix("0x").unwrap_or(w)));
    }
    if bus == DiskBus::Usb {
        s.push_str(&format!(",removable={}", on_off(d.removable == Some(true))));
    } else if d.removable.is_some() {
        return Err(CmdlineError::Invalid(format!(
            "{what}: <target removable> is for USB disks"
        )));
    }
    if let Some(r) = d.rotation_rate {
        if !matches!(bus, DiskBus::Scsi | DiskBus::Ide | DiskBus::Sata) || cdrom {
            return unsupported(format!("{what}: rotation_rate on bus '{bus}'"));
        }
        s.push_str(&format!(",rotation_rate={r}"));
    }
    for (k, v) in [("vendor", &d.vendor), ("product", &d.product)] {
        if let Some(v) = v {
            if bus != DiskBus::Scsi {
                return unsupported(format!("{what}: <{k}> on bus '{bus}' (SCSI only)"));
            }
            s.push_str(&format!(",{k}={}", esc(v)));
        }
    }
    if let Some(g) = &d.geometry {
        if cdrom
            || !matches!(
                bus,
                DiskBus::Virtio | DiskBus::Ide | DiskBus::Sata | DiskBus::Scsi
            )
        {
            return unsupported(format!("{what}: <geometry> here"));
        }
        s.push_str(&format!(
            ",cyls={},heads={},secs={}",
            g.cyls, g.heads, g.secs
        ));
        if let Some(t) = g.trans {
            if bus != DiskBus::Ide {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: <geometry trans> is for the 'ide' bus only, not '{bus}'"
                )));
            }
            s.push_str(&format!(",bios-chs-trans={t}"));
        }
    }
    let wpolicy = drv.error_policy;
    let rpolicy = drv
        .rerror_policy
        .or(wpolicy.filter(|p| *p != ErrorPolicy::Enospace));
    if let Some(p) = wpolicy {
        s.push_str(&format!(",werror={}", error_action(p)));
    }
    if let Some(p) = rpolicy {
        s.push_str(&format!(",rerror={}", error_action(p)));
    }
    if cdrom && drv.copy_on_read == Some(true) {
        return unsupported(format!("{what}: copy_on_read on a CD-ROM"));
    }
    let format = drv.format.unwrap_or(crate::model::devices::DiskFormat::Raw);
    if d.shareable && format != crate::model::devices::DiskFormat::Raw {
        return unsupported(format!(
            "{what}: <shareable/> with a '{format}' image (shared access needs raw)"
        ));
    }
    if d.transient.is_some() {
        return unsupported(format!(
            "{what}: <transient/> (a throw-away overlay for the run)"
        ));
    }
    Ok(s)
}

/// The `copy-on-read` filter libvirt puts over a disk's format node; its node is what the
/// device uses.
pub(super) fn copy_on_read_node(format_node: &str) -> (String, Value) {
    let node = format!("{format_node}-cor");
    let v = json!({"driver": "copy-on-read", "node-name": node, "file": format_node,
                   "discard": "unmap"});
    (node, v)
}

/// The `block_set_io_throttle` after start for a disk with `<iotune>`, as libvirt 9.0 does
/// for `-blockdev` disks (QEMU's throttle filter cannot change groups).
pub(super) fn throttle(b: &mut Builder<'_>, d: &Disk, qom_id: &str) {
    let Some(t) = d.iotune.as_ref() else {
        return;
    };
    if !t.has_limits() {
        return;
    }
    let mut args = Map::new();
    args.insert("id".into(), json!(qom_id));
    for (i, (_, qmp)) in IOTUNE_FIELDS.iter().enumerate() {
        let v = t.limits[i];
        // the six rates are mandatory, the rest only when set
        if i < 6 || v != 0 {
            args.insert((*qmp).into(), json!(v));
        }
    }
    if let Some(g) = &t.group_name {
        args.insert("group".into(), json!(g));
    }
    b.setup.push(Setup::Qmp {
        command: "block_set_io_throttle",
        args: Value::Object(args),
    });
}

/// Checks libvirt makes of `<iotune>` against the other disks.
pub(super) fn check_iotune(disks: &[Disk]) -> Result<()> {
    for d in disks {
        let Some(t) = &d.iotune else { continue };
        let what = format!("disk '{}'", d.target_dev);
        if d.device != DiskDevice::Disk && d.device != DiskDevice::Cdrom {
            return unsupported(format!("{what}: <iotune> on a {}", d.device));
        }
        if t.group_name.is_some() && !t.has_limits() {
            return Err(CmdlineError::Invalid(format!(
                "{what}: <iotune><group_name> without any limit"
            )));
        }
        if let Some(g) = &t.group_name {
            let other = disks.iter().find(|o| {
                o.iotune
                    .as_ref()
                    .is_some_and(|ot| ot.group_name.as_ref() == Some(g) && ot.limits != t.limits)
            });
            if let Some(o) = other {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: throttling group '{g}' has other limits on disk '{}'",
                    o.target_dev
                )));
            }
        }
        const MAX: u64 = 1_000_000_000_000_000;
        if t.limits.iter().take(13).any(|v| *v > MAX) {
            return unsupported(format!("{what}: an <iotune> limit above {MAX}"));
        }
    }
    Ok(())
}

/// The protocol node of a network disk: `nbd`, or QEMU's curl drivers for http(s)/ftp(s).
/// Other protocols need daemons or libraries this driver does not set up and are refused.
pub fn network_node(d: &Disk, n: &NetSource, what: &str) -> Result<Map<String, Value>> {
    let p = n.protocol;
    let mut m = Map::new();
    let host = match n.hosts.as_slice() {
        [h] => h,
        [] => {
            return Err(CmdlineError::Invalid(format!(
                "{what}: <source> names no <host>"
            )));
        }
        _ => return unsupported(format!("{what}: more than one <host> for protocol '{p}'")),
    };
    if host.transport == Some(HostTransport::Rdma) {
        return unsupported(format!("{what}: transport 'rdma'"));
    }
    if n.tls == Some(true) || n.tls_hostname.is_some() {
        return unsupported(format!(
            "{what}: TLS for protocol '{p}' (needs x509 credentials)"
        ));
    }
    let port = host
        .port
        .or(crate::model::devices::default_port(p))
        .unwrap_or_default();
    match p {
        NetProtocol::Nbd => {
            if n.ssl_verify.is_some() || n.readahead.is_some() || n.timeout.is_some() {
                return unsupported(format!(
                    "{what}: <ssl>, <readahead> or <timeout> with protocol 'nbd'"
                ));
            }
            m.insert("driver".into(), json!("nbd"));
            let server = if host.is_unix() {
                json!({"type": "unix", "path": host.socket})
            } else {
                json!({"type": "inet", "host": host.name, "port": port.to_string()})
            };
            m.insert("server".into(), server);
            if let Some(e) = &n.name {
                m.insert("export".into(), json!(e));
            }
        }
        NetProtocol::Http | NetProtocol::Https | NetProtocol::Ftp | NetProtocol::Ftps => {
            if host.is_unix() {
                return unsupported(format!("{what}: a unix socket for protocol '{p}'"));
            }
            if !(d.readonly || d.device == DiskDevice::Cdrom) {
                return unsupported(format!(
                    "{what}: a writable '{p}' disk (QEMU's curl driver reads only; add \
                     <readonly/>)"
                ));
            }
            let name = n.name.as_deref().unwrap_or_default();
            let hostname = host.name.as_deref().unwrap_or_default();
            let hostpart = if hostname.contains(':') {
                format!("[{hostname}]")
            } else {
                hostname.to_owned()
            };
            let mut url = format!("{p}://{hostpart}:{port}/{}", name.trim_start_matches('/'));
            if let Some(q) = &n.query {
                url.push('?');
                url.push_str(q);
            }
            m.insert("driver".into(), json!(p.as_str()));
            m.insert("url".into(), json!(url));
            if let Some(t) = n.timeout {
                m.insert("timeout".into(), json!(t));
            }
            if let Some(r) = n.readahead {
                m.insert("readahead".into(), json!(r));
            }
            if let Some(v) = n.ssl_verify {
                if !matches!(p, NetProtocol::Https | NetProtocol::Ftps) {
                    return unsupported(format!("{what}: <ssl verify> with protocol '{p}'"));
                }
                m.insert("sslverify".into(), json!(v));
            }
        }
        other => {
            return unsupported(format!(
                "{what}: network protocol '{other}' (only nbd, http, https, ftp and ftps \
                 are supported)"
            ));
        }
    }
    Ok(m)
}

/// Why the hot-plug path cannot attach this disk as defined, if it cannot: it attaches
/// local images with the basic options only, so anything more is refused rather than
/// dropped.
pub fn hotplug_refusal(d: &Disk) -> Option<String> {
    let drv = d.driver.clone().unwrap_or_default();
    let extras = [
        (
            d.source.as_ref().is_some_and(|s| s.network.is_some()),
            "a network source",
        ),
        (d.iotune.is_some(), "<iotune>"),
        (d.geometry.is_some(), "<geometry>"),
        (d.blockio.is_some(), "<blockio>"),
        (d.transient.is_some(), "<transient/>"),
        (d.wwn.is_some(), "<wwn>"),
        (
            d.vendor.is_some() || d.product.is_some(),
            "<vendor>/<product>",
        ),
        (
            drv.error_policy.is_some() || drv.rerror_policy.is_some(),
            "error policies",
        ),
        (drv.copy_on_read.is_some(), "copy_on_read"),
        (
            drv.ioeventfd.is_some()
                || drv.event_idx.is_some()
                || drv.queues.is_some()
                || drv.queue_size.is_some()
                || drv.iothread.is_some(),
            "virtio <driver> tuning",
        ),
    ];
    extras
        .iter()
        .find(|(on, _)| *on)
        .map(|(_, name)| format!("{name} on a hot-plugged disk (define it and restart)"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{Accel, Plan};
    use super::*;
    use crate::drivers::qemu::caps::tests::x86_64;
    use crate::drivers::qemu::cmdline::tests::build_with;
    use crate::model::DomainDef;

    /// A definition with `devices`, QEMU's defaults applied, on the command line.
    pub(crate) fn plan(extra: &str, devices: &str) -> Result<Plan> {
        let xml = format!(
            "<domain type='qemu'><name>t</name>\
             <uuid>00000000-0000-4000-8000-000000000001</uuid><memory unit='MiB'>64</memory>\
             {extra}<os><type>hvm</type></os><devices>{devices}</devices></domain>"
        );
        let mut d = DomainDef::from_xml(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        crate::drivers::qemu::defaults::apply(&mut d, &x86_64()).expect("defaults");
        build_with(&d, &x86_64(), Accel::Tcg)
    }

    fn args(devices: &str) -> String {
        plan("", devices).expect("builds").args.join(" ")
    }

    fn refusal(devices: &str) -> String {
        match plan("", devices) {
            Ok(p) => panic!("built: {}", p.args.join(" ")),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn virtio_scsi_controller_disk_and_cdrom() {
        let p = plan(
            "",
            "<controller type='scsi' index='0' model='virtio-scsi'><driver queues='4' \
             cmd_per_lun='8' max_sectors='512' ioeventfd='on'/></controller>\
             <disk type='file'><source file='/i/a.img'/><target dev='sda' bus='scsi'/>\
             <serial>S1</serial><wwn>5000c50015ea71ac</wwn><vendor>VB</vendor>\
             <product>Disk</product><boot order='1'/></disk>\
             <disk type='file' device='cdrom'><source file='/i/c.iso'/>\
             <target dev='sdb' bus='scsi'/></disk>",
        )
        .expect("builds");
        let a = p.args.join(" ");
        assert!(
            a.contains(
                "-device virtio-scsi-pci,id=scsi0,num_queues=4,cmd_per_lun=8,max_sectors=512,\
                 ioeventfd=on,addr=0x"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "-device scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,device_id=S1,\
                 drive=vb-sda,id=scsi0-0-0-0,bootindex=1,serial=S1,wwn=0x5000c50015ea71ac,\
                 vendor=VB,product=Disk"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "-device scsi-cd,bus=scsi0.0,channel=0,scsi-id=0,lun=1,\
                 device_id=drive-scsi0-0-0-1,drive=vb-sdb,id=scsi0-0-0-1"
            ),
            "{a}"
        );
        let live = &p.live.devices;
        assert_eq!(live.disks[0].info.alias.as_deref(), Some("scsi0-0-0-0"));
        assert_eq!(live.controllers[0].info.alias.as_deref(), Some("scsi0"));
    }

    #[test]
    fn lsilogic_is_the_default_scsi_model_with_parallel_addresses() {
        let a = args(
            "<disk type='file'><source file='/i/a.img'/><target dev='sdc' bus='scsi'/></disk>",
        );
        assert!(a.contains("-device lsi53c895a,id=scsi0,addr=0x"), "{a}");
        assert!(
            a.contains(
                "-device scsi-hd,bus=scsi0.0,scsi-id=2,device_id=drive-scsi0-0-2,drive=vb-sdc,\
                 id=scsi0-0-2"
            ),
            "{a}"
        );
    }

    /// A definition the defaults never saw: a SCSI disk has neither address nor controller,
    /// and gets the ones the defaults would give it.
    #[test]
    fn scsi_disk_before_defaults() {
        let d = DomainDef::from_xml(
            "<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm</type>\
             </os><devices><disk type='file'><source file='/a'/><target dev='sdi' bus='scsi'/>\
             <wwn>0x5000c50015ea71ad</wwn></disk></devices></domain>",
        )
        .expect("domain");
        let a = build_with(&d, &x86_64(), Accel::Tcg)
            .expect("builds")
            .args
            .join(" ");
        assert!(
            a.contains("scsi-hd,bus=scsi1.0,scsi-id=1,device_id=drive-scsi1-0-1,drive=vb-sdi"),
            "{a}"
        );
        assert!(a.contains("wwn=0x5000c50015ea71ad"), "{a}");
    }

    #[test]
    fn scsi_refusals() {
        let e =
            refusal("<controller type='scsi' model='lsilogic'><driver queues='2'/></controller>");
        assert!(e.contains("virtio-scsi only"), "{e}");
        let e = refusal(
            "<controller type='scsi' model='virtio-scsi'><driver iothread='1'/></controller>",
        );
        assert!(e.contains("iothread"), "{e}");
        let e = refusal(
            "<disk type='file'><source file='/i/a.img'/><target dev='vda' bus='virtio'/>\
             <vendor>X</vendor></disk>",
        );
        assert!(e.contains("<vendor> on bus 'virtio'"), "{e}");
    }

    #[test]
    fn nbd_over_tcp_and_unix() {
        let a = args(
            "<disk type='network'><driver name='qemu' type='raw'/><source protocol='nbd' \
             name='bar'><host name='example.org' port='6000'/></source>\
             <target dev='vda' bus='virtio'/></disk>\
             <disk type='network'><source protocol='nbd'><host transport='unix' \
             socket='/run/nbd.sock'/></source><target dev='vdb' bus='virtio'/></disk>\
             <disk type='network'><source protocol='nbd'><host name='::1'/></source>\
             <target dev='vdc' bus='virtio'/></disk>",
        );
        assert!(
            a.contains(
                r#"{"auto-read-only":true,"driver":"nbd","export":"bar","node-name":"vb-vda-file","read-only":false,"server":{"host":"example.org","port":"6000","type":"inet"}}"#
            ),
            "{a}"
        );
        assert!(
            a.contains(r#""node-name":"vb-vdb-file","read-only":false,"server":{"path":"/run/nbd.sock","type":"unix"}}"#),
            "{a}"
        );
        assert!(
            a.contains(r#""host":"::1","port":"10809","type":"inet""#),
            "{a}"
        );
        assert!(a.contains("virtio-blk-pci,addr=0x"), "{a}");
    }

    #[test]
    fn curl_protocols_read_only() {
        let a = args(
            "<disk type='network' device='cdrom'><source protocol='https' name='/isos/a.iso' \
             query='x=1'><host name='example.org'/><ssl verify='no'/><readahead size='65536'/>\
             <timeout seconds='30'/></source><target dev='sda' bus='sata'/></disk>\
             <disk type='network'><source protocol='http' name='b.img'><host name='h' \
             port='8080'/></source><target dev='vda' bus='virtio'/><readonly/></disk>",
        );
        assert!(
            a.contains(
                r#"{"auto-read-only":true,"driver":"https","node-name":"vb-sda-file","read-only":true,"readahead":65536,"sslverify":false,"timeout":30,"url":"https://example.org:443/isos/a.iso?x=1"}"#
            ),
            "{a}"
        );
        assert!(a.contains(r#""url":"http://h:8080/b.img""#), "{a}");
        let e = refusal(
            "<disk type='network'><source protocol='ftp' name='b.img'><host name='h'/></source>\
             <target dev='vda' bus='virtio'/></disk>",
        );
        assert!(e.contains("writable 'ftp' disk"), "{e}");
        for p in ["rbd", "gluster", "iscsi", "sheepdog", "vxhs", "nfs", "ssh"] {
            let e = refusal(&format!(
                "<disk type='network'><source protocol='{p}' name='pool/img'><host name='h'/>\
                 </source><target dev='vda' bus='virtio'/></disk>"
            ));
            assert!(e.contains(&format!("network protocol '{p}'")), "{e}");
        }
        let e = refusal(
            "<disk type='network'><source protocol='nbd' tls='yes'><host name='h'/></source>\
             <target dev='vda' bus='virtio'/></disk>",
        );
        assert!(e.contains("TLS"), "{e}");
    }

    #[test]
    fn driver_and_device_options() {
        let p = plan(
            "",
            "<disk type='file'><driver name='qemu' type='qcow2' cache='none' \
             error_policy='enospace' io='native' ioeventfd='on' event_idx='off' \
             copy_on_read='on' discard='unmap' queues='2' queue_size='256'/>\
             <source file='/i/a.qcow2'/><geometry cyls='16383' heads='16' secs='63'/>\
             <blockio logical_block_size='512' physical_block_size='4096'/>\
             <target dev='vda' bus='virtio'/><iotune><total_bytes_sec>1000000</total_bytes_sec>\
             <read_iops_sec>400</read_iops_sec><write_iops_sec>300</write_iops_sec>\
             <total_bytes_sec_max>2000000</total_bytes_sec_max><group_name>g1</group_name>\
             <total_bytes_sec_max_length>3</total_bytes_sec_max_length></iotune></disk>\
             <disk type='file'><driver name='qemu' error_policy='stop' rerror_policy='ignore'/>\
             <source file='/i/b.img'/><geometry cyls='100' heads='16' secs='63' trans='lba'/>\
             <target dev='hda' bus='ide' rotation_rate='1'/><wwn>5000c50015ea71ad</wwn></disk>",
        )
        .expect("builds");
        let a = p.args.join(" ");
        assert!(a.contains(r#""aio":"native""#), "{a}");
        assert!(
            a.contains(
                r#"-blockdev {"driver":"copy-on-read","file":"vb-vda","node-name":"vb-vda-cor","discard":"unmap"}"#
            ) || a.contains(r#""driver":"copy-on-read""#),
            "{a}"
        );
        assert!(
            a.contains(
                "drive=vb-vda-cor,id=virtio-disk0,write-cache=on,ioeventfd=on,event_idx=off,\
                 num-queues=2,queue-size=256,logical_block_size=512,physical_block_size=4096,\
                 cyls=16383,heads=16,secs=63,werror=enospc"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "ide-hd,bus=ide.0,unit=0,drive=vb-hda,id=ide0-0-0,wwn=0x5000c50015ea71ad,\
                 rotation_rate=1,cyls=100,heads=16,secs=63,bios-chs-trans=lba,werror=stop,\
                 rerror=ignore"
            ),
            "{a}"
        );
        let throttle = p
            .setup
            .iter()
            .find_map(|s| match s {
                Setup::Qmp { command, args } if *command == "block_set_io_throttle" => Some(args),
                _ => None,
            })
            .expect("a throttle step");
        assert_eq!(
            throttle,
            &json!({"id": "/machine/peripheral/virtio-disk0/virtio-backend",
                    "bps": 1000000, "bps_rd": 0, "bps_wr": 0, "iops": 0, "iops_rd": 400,
                    "iops_wr": 300, "bps_max": 2000000, "group": "g1", "bps_max_length": 3})
        );
        let e = refusal(
            "<disk type='file'><source file='/i/a.img'/><target dev='vda' bus='virtio'/>\
             <transient/></disk>",
        );
        assert!(e.contains("<transient/>"), "{e}");
        let e = refusal(
            "<disk type='file'><driver name='qemu' queues='2'/><source file='/i/a.img'/>\
             <target dev='hda' bus='ide'/></disk>",
        );
        assert!(e.contains("'num-queues' on bus 'ide'"), "{e}");
    }

    #[test]
    fn iotune_groups_must_agree() {
        let e = refusal(
            "<disk type='file'><source file='/i/a.img'/><target dev='vda' bus='virtio'/>\
             <iotune><total_iops_sec>10</total_iops_sec><group_name>g</group_name></iotune>\
             </disk><disk type='file'><source file='/i/b.img'/><target dev='vdb' \
             bus='virtio'/><iotune><total_iops_sec>20</total_iops_sec><group_name>g\
             </group_name></iotune></disk>",
        );
        assert!(e.contains("throttling group 'g'"), "{e}");
    }

    #[test]
    fn hot_plug_refuses_what_it_would_drop() {
        let d = |x: &str| {
            crate::model::devices::Device::from_xml(x)
                .expect("disk")
                .as_devices()
                .disks[0]
                .clone()
        };
        let plain = d("<disk type='file'><source file='/a'/><target dev='vdb'/></disk>");
        assert_eq!(hotplug_refusal(&plain), None);
        let tuned = d(
            "<disk type='file'><source file='/a'/><target dev='vdb'/><iotune>\
             <total_iops_sec>5</total_iops_sec></iotune></disk>",
        );
        assert!(hotplug_refusal(&tuned).is_some_and(|m| m.contains("<iotune>")));
    }
}
