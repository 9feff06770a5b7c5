//! The QEMU driver's part of libvirt's migratable XML and of `VIR_DOMAIN_XML_UPDATE_CPU`
//! (libvirt's `qemuDomainDefFormatBufInternal`): the implicit devices a parse adds again are
//! left out, and the guest CPU is updated from the host's where that changes anything.

use std::path::Path;

use super::defaults::{Machine, default_audio};
use crate::drivers::{DriverError, DriverResult};
use crate::model::{
    CpuMatch, CpuMode, DomainDef, FeaturePolicy,
    devices::{CharSourceType, ControllerType, DiskFormat},
};

/// Leave out what libvirt's QEMU driver leaves out for migration: on i440fx the default USB
/// controller (kept by older libvirt versions implicitly), a lone `pci-root`, the default audio
/// backend, and the socket paths the driver made up for virtio channels.
pub fn strip(def: &mut DomainDef) {
    let ctrls = &def.devices.controllers;
    let user = |c: &crate::model::devices::Controller| {
        c.info
            .alias
            .as_deref()
            .is_some_and(|a| a.starts_with("ua-"))
    };
    let only = |t: ControllerType| {
        let mut it = ctrls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.controller_type == t);
        match (it.next(), it.next()) {
            (Some((i, c)), None) => Some((i, c)),
            _ => None,
        }
    };
    let mut gone = Vec::new();
    if matches!(Machine::of(def), Machine::I440fx)
        && let Some((i, c)) = only(ControllerType::Usb)
        && c.index.unwrap_or(0) == 0
        && matches!(c.model.as_deref(), None | Some("piix3-uhci"))
        && !user(c)
    {
        gone.push(i);
    }
    if let Some((i, c)) = only(ControllerType::Pci)
        && c.index.unwrap_or(0) == 0
        && c.model.as_deref() == Some("pci-root")
        && !user(c)
    {
        gone.push(i);
    }
    let mut i = 0;
    def.devices.controllers.retain(|_| {
        i += 1;
        !gone.contains(&(i - 1))
    });
    if def.devices.audios.len() == 1 {
        let mut probe = def.clone();
        probe.devices.audios.clear();
        default_audio(&mut probe);
        if probe.devices.audios == def.devices.audios {
            def.devices.audios.clear();
        }
    }
    // written through a parse, which gives an empty drive its default format again
    for d in &mut def.devices.disks {
        if let Some(drv) = &mut d.driver {
            drv.format.get_or_insert(DiskFormat::Raw);
        }
    }
    for c in &mut def.devices.channels {
        let made_up = c.source_type == CharSourceType::Unix
            && c.target_type.as_deref() == Some("virtio")
            && c.source_path.as_deref().is_some_and(|p| {
                Path::new(p)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("charchannel"))
            });
        if made_up {
            c.source_path = None;
            c.source_mode = None;
        }
    }
}

/// libvirt's update of a guest CPU from the host's: nothing to do but for a host-model CPU, a
/// custom one matched as a minimum, or features the host decides (`optional`), which need the
/// host CPU model; virtbus does not compute it (under TCG no such CPU can start).
pub fn update_cpu(def: &mut DomainDef) -> DriverResult<()> {
    let Some(cpu) = &def.cpu else {
        return Ok(());
    };
    let needs_host = match cpu.mode.unwrap_or(CpuMode::Custom) {
        CpuMode::HostPassthrough | CpuMode::Maximum => false,
        CpuMode::HostModel => true,
        CpuMode::Custom => {
            cpu.cpu_match == Some(CpuMatch::Minimum)
                || cpu
                    .features
                    .iter()
                    .any(|f| f.policy == Some(FeaturePolicy::Optional))
        }
    };
    if needs_host {
        return Err(DriverError::NotSupported(format!(
            "domain '{}': updating a host-model CPU, a CPU matched as a minimum or optional CPU \
             features from the host CPU (update-cpu): the host CPU model is not known here",
            def.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(machine: &str, devices: &str, cpu: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>m</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='{machine}'>hvm</type></os>{cpu}<devices>{devices}</devices></domain>"
        ))
        .expect("def")
    }

    #[test]
    fn implicit_controllers_audio_and_channel_paths_go() {
        let mut d = def(
            "pc-i440fx-7.2",
            "<controller type='usb' index='0' model='piix3-uhci'/>\
             <controller type='pci' index='0' model='pci-root'/>\
             <channel type='unix'><source mode='bind' path='/run/x/charchannel0.sock'/>\
             <target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             <channel type='unix'><source mode='bind' path='/srv/mine.sock'/>\
             <target type='virtio' name='org.example.0'/></channel>\
             <audio id='1' type='none'/>",
            "",
        );
        strip(&mut d);
        assert!(
            d.devices.controllers.is_empty(),
            "{:?}",
            d.devices.controllers
        );
        assert!(d.devices.audios.is_empty());
        assert_eq!(d.devices.channels[0].source_path, None);
        assert_eq!(
            d.devices.channels[1].source_path.as_deref(),
            Some("/srv/mine.sock")
        );

        // q35 keeps its USB controller; a user's alias or a second USB controller keep them
        let mut d = def(
            "pc-q35-7.2",
            "<controller type='usb' index='0' model='qemu-xhci'/>\
             <controller type='pci' index='0' model='pcie-root'/>\
             <graphics type='spice'/><audio id='1' type='none'/>",
            "",
        );
        strip(&mut d);
        assert_eq!(d.devices.controllers.len(), 2);
        // not the default backend for SPICE: kept
        assert_eq!(d.devices.audios.len(), 1);
        let mut d = def(
            "pc",
            "<controller type='usb' index='0' model='piix3-uhci'><alias name='ua-u'/></controller>",
            "",
        );
        strip(&mut d);
        assert_eq!(d.devices.controllers.len(), 1);
    }

    #[test]
    fn cpu_updates_that_need_the_host_are_refused() {
        let mut d = def(
            "pc",
            "",
            "<cpu mode='custom' match='exact'><model>qemu64</model></cpu>",
        );
        let before = d.clone();
        update_cpu(&mut d).unwrap();
        assert_eq!(d, before);
        let mut d = def(
            "pc",
            "",
            "<cpu mode='custom' match='exact'><model>qemu64</model><feature policy='optional' name='pdpe1gb'/></cpu>",
        );
        let e = update_cpu(&mut d).unwrap_err();
        assert!(e.to_string().contains("update-cpu"), "{e}");
        let mut d = def("pc", "", "<cpu mode='host-model'/>");
        assert!(update_cpu(&mut d).is_err());
    }
}
