//! A definition as libvirt formats it for migration (`VIR_DOMAIN_XML_MIGRATABLE`): what the
//! destination would make up again is left out. Every driver's formatter leaves out the PS/2
//! (and Xen) keyboard, which every x86 definition gets back at parse, and the implicit DAC
//! label ([`formatted`]). libvirt's QEMU driver besides copies the definition through its
//! inactive form first, so a running guest's runtime state goes too ([`runtime`]): device
//! aliases (but users' `ua-` ones), pty paths, automatic display ports and default listen
//! addresses, storage indices and detected backing chains, and channel states.

use crate::model::{
    DeviceInfo, DomainDef,
    devices::{BackingStore, CharDevice, CharSourceType, InputBus, InputType},
    seclabel::SecLabelType,
};

/// What every driver's formatter leaves out for migration.
pub fn formatted(def: &mut DomainDef) {
    def.devices.inputs.retain(|i| {
        !(i.input_type == InputType::Keyboard
            && matches!(i.bus, Some(InputBus::Ps2 | InputBus::Xen)))
    });
    // the DAC label a start adds; a label the user gave stays
    def.seclabels.retain(|s| {
        !(s.kind == SecLabelType::Dynamic
            && matches!(s.model.as_deref(), Some("dac" | "none"))
            && s.baselabel.is_none())
    });
}

/// A running guest's definition without its runtime state, as its inactive form has it;
/// `config` is the persistent definition, which tells what the user gave (backing chains,
/// listen addresses) from what the driver made up.
pub fn runtime(def: &mut DomainDef, config: &DomainDef) {
    let d = &mut def.devices;
    for disk in &mut d.disks {
        if let Some(s) = &mut disk.source {
            s.index = None;
        }
        // a chain read from the images is detected again
        let given = config
            .devices
            .disks
            .iter()
            .any(|g| g.target_dev == disk.target_dev && g.backing_store.is_some());
        if matches!(disk.backing_store, Some(BackingStore::Image(_))) && !given {
            disk.backing_store = None;
        }
        unalias(&mut disk.info);
    }
    for c in d
        .serials
        .iter_mut()
        .chain(&mut d.parallels)
        .chain(&mut d.consoles)
        .chain(&mut d.channels)
    {
        runtime_chardev(c);
    }
    for (i, g) in d.graphics.iter_mut().enumerate() {
        // the address a display listens on by the daemon's default is the destination's
        // to choose: the listens as defined
        if let Some(c) = config.devices.graphics.get(i)
            && c.graphics_type == g.graphics_type
        {
            g.listen = c.listen.clone();
            g.listens = c.listens.clone();
        }
        if g.autoport == Some(true) {
            g.port = Some(-1);
            if g.tls_port.is_some() {
                g.tls_port = Some(-1);
            }
        }
    }
    let infos = d
        .controllers
        .iter_mut()
        .map(|c| &mut c.info)
        .chain(d.interfaces.iter_mut().map(|n| &mut n.info))
        .chain(d.inputs.iter_mut().map(|i| &mut i.info))
        .chain(d.sounds.iter_mut().map(|s| &mut s.info))
        .chain(d.videos.iter_mut().map(|v| &mut v.info))
        .chain(d.watchdogs.iter_mut().map(|w| &mut w.info))
        .chain(d.memballoon.iter_mut().map(|m| &mut m.info))
        .chain(d.rngs.iter_mut().map(|r| &mut r.info));
    for info in infos {
        unalias(info);
    }
}

fn unalias(info: &mut DeviceInfo) {
    if info.alias.as_deref().is_some_and(|a| !a.starts_with("ua-")) {
        info.alias = None;
    }
}

fn runtime_chardev(c: &mut CharDevice) {
    unalias(&mut c.info);
    c.target_state = None;
    c.tty = None;
    if c.source_type == CharSourceType::Pty {
        c.source_path = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_state_and_the_implicit_keyboard_and_label_go() {
        let xml = |extra: &str| {
            format!(
                "<domain type='qemu'><name>m</name><memory>65536</memory><vcpu>1</vcpu>\
                 <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
                 <disk type='file'><source file='/a' index='2'/><backingStore type='file' index='3'>\
                 <format type='raw'/><source file='/b'/><backingStore/></backingStore>\
                 <target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>\
                 <serial type='pty'><source path='/dev/pts/4'/><alias name='serial0'/></serial>\
                 <channel type='pty'><source path='/dev/pts/5'/><target type='virtio' name='a.b' state='connected'/>\
                 <alias name='ua-mine'/></channel>\
                 <input type='keyboard' bus='ps2'><alias name='input1'/></input>\
                 <input type='tablet' bus='usb'><alias name='input0'/></input>\
                 <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>\
                 <listen type='address' address='127.0.0.1'/></graphics>{extra}</devices>\
                 <seclabel type='dynamic' model='dac' relabel='yes'><label>+0:+0</label>\
                 <imagelabel>+0:+0</imagelabel></seclabel></domain>"
            )
        };
        let mut d = DomainDef::from_xml(&xml("")).unwrap();
        let config = DomainDef::from_xml(
            "<domain type='qemu'><name>m</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
             <disk type='file'><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
             <graphics type='vnc' port='-1' autoport='yes'><listen type='address'/></graphics>\
             </devices></domain>",
        )
        .unwrap();
        formatted(&mut d);
        runtime(&mut d, &config);
        let dv = &d.devices;
        assert_eq!(dv.disks[0].source.as_ref().unwrap().index, None);
        assert_eq!(dv.disks[0].backing_store, None, "a detected chain goes");
        assert_eq!(dv.disks[0].info.alias, None);
        assert_eq!(dv.serials[0].source_path, None);
        assert_eq!(dv.channels[0].target_state, None);
        assert_eq!(dv.channels[0].info.alias.as_deref(), Some("ua-mine"));
        assert_eq!(dv.inputs.len(), 1);
        assert_eq!(dv.inputs[0].info.alias, None);
        assert_eq!(dv.graphics[0].port, Some(-1));
        assert_eq!(dv.graphics[0].listen, None);
        assert!(d.seclabels.is_empty());
    }
}
