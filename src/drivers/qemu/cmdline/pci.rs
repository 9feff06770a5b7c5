//! PCI controllers on the command line, as libvirt starts them: the machine's root bus gets
//! its alias (`pci.0` or `pcie.0`), every other controller a `-device` of the QEMU device its
//! `<model name>` names, with id `pci.N`, in index order so that each bus exists before the
//! devices on it.

use super::{Builder, CmdlineError, Result, pci_addr, unsupported};
use crate::drivers::qemu::defaults::pci_bsf;
use crate::drivers::qemu::pci::{PciModel, model_name};
use crate::model::{
    DomainDef,
    devices::{Controller, ControllerType},
};

fn target<'a>(c: &'a Controller, k: &str) -> Option<&'a str> {
    c.target
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v.as_str())
}

fn num(c: &Controller, k: &str, what: &str) -> Result<Option<u64>> {
    target(c, k)
        .map(|v| {
            super::parse_num(v).ok_or_else(|| {
                CmdlineError::Invalid(format!("{what}: <target {k}='{v}'> is not a number"))
            })
        })
        .transpose()
}

/// The root bus's alias, then a `-device` for every other PCI controller.
pub(super) fn controllers(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let root_alias = if b.q35 { "pcie.0" } else { "pci.0" };
    let mut list: Vec<(usize, &Controller)> = def
        .devices
        .controllers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.controller_type == ControllerType::Pci)
        .collect();
    list.sort_by_key(|(_, c)| c.index.unwrap_or(0));
    for (i, c) in list {
        let idx = c.index.unwrap_or(0);
        let what = format!(
            "<controller type='pci' index='{idx}' model='{}'>",
            c.model.as_deref().unwrap_or_default()
        );
        let root = if b.q35 { "pcie-root" } else { "pci-root" };
        let Some(model) = c.model.as_deref().and_then(PciModel::parse) else {
            return Err(CmdlineError::Invalid(format!(
                "{what}: a PCI controller needs a model"
            )));
        };
        if matches!(model, PciModel::PciRoot | PciModel::PcieRoot) {
            if model.as_str() != root || idx != 0 {
                return unsupported(format!(
                    "{what}: this machine's root bus is its {root} with index 0"
                ));
            }
            // the PIIX4's ACPI hot-plug of the root bus's slots
            if let Some(v @ ("on" | "off")) = target(c, "hotplug") {
                b.arg("-global", format!("PIIX4_PM.acpi-root-pci-hotplug={v}"));
            }
            b.live.devices.controllers[i].info.alias = Some(root_alias.into());
            continue;
        }
        if idx == 0 {
            return Err(CmdlineError::Invalid(format!(
                "{what}: index 0 is the machine's {root}"
            )));
        }
        let pcie_only = matches!(
            model,
            PciModel::DmiToPciBridge
                | PciModel::PcieRootPort
                | PciModel::SwitchUpstream
                | PciModel::SwitchDownstream
                | PciModel::PcieExpander
                | PciModel::PcieToPciBridge
        );
        if pcie_only && !b.q35 {
            return unsupported(format!("{what} on a machine without PCI Express"));
        }
        if model == PciModel::PciExpander && b.q35 {
            return unsupported(format!("{what}: pci-expander-bus needs an i440fx machine"));
        }
        let dev = c
            .model_name
            .clone()
            .unwrap_or_else(|| model_name(model, true).to_owned());
        b.need(&dev, &what)?;
        let id = format!("pci.{idx}");
        let mut s = dev.clone();
        match model {
            PciModel::PciBridge => {
                let nr = num(c, "chassisNr", &what)?.unwrap_or(u64::from(idx));
                s.push_str(&format!(",chassis_nr={nr},id={id}"));
            }
            PciModel::PciExpander | PciModel::PcieExpander => {
                let Some(nr) = num(c, "busNr", &what)? else {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: <target busNr> is needed"
                    )));
                };
                s.push_str(&format!(",bus_nr={nr},id={id}"));
                if let Some(n) = c.numa_node {
                    let cells = def.cpu.as_ref().map_or(0, |c| c.numa.len());
                    if n as usize >= cells {
                        return Err(CmdlineError::Invalid(format!(
                            "{what}: <node>{n}</node> is not one of the guest's {cells} NUMA \
                             cells"
                        )));
                    }
                    s.push_str(&format!(",numa_node={n}"));
                }
            }
            PciModel::PcieRootPort | PciModel::SwitchDownstream => {
                if let Some(p) = num(c, "port", &what)? {
                    s.push_str(&format!(",port={p}"));
                }
                let chassis = num(c, "chassis", &what)?.unwrap_or(u64::from(idx));
                s.push_str(&format!(",chassis={chassis},id={id}"));
            }
            _ => s.push_str(&format!(",id={id}")),
        }
        let bus0 = c
            .info
            .address
            .as_ref()
            .and_then(pci_bsf)
            .is_none_or(|(bus, _, _)| bus == 0);
        if bus0 {
            s.push_str(&format!(",bus={root_alias}"));
        }
        s.push_str(&pci_addr(&c.info, &what)?);
        match target(c, "hotplug") {
            Some("off") => s.push_str(",hotplug=off"),
            Some("on") => s.push_str(",hotplug=on"),
            _ => {}
        }
        b.device(s);
        b.live.devices.controllers[i].info.alias = Some(id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::build_with;
    use super::super::{Accel, CmdlineError};
    use crate::drivers::qemu::{caps::tests::x86_64, defaults};
    use crate::model::DomainDef;

    fn defined(machine: &str, devices: &str) -> DomainDef {
        let xml = format!(
            "<domain type='qemu'><name>t</name><uuid>00000000-0000-4000-8000-000000000001</uuid>\
             <memory unit='MiB'>64</memory><vcpu>2</vcpu><os><type machine='{machine}'>hvm</type>\
             </os><cpu><numa><cell id='0' cpus='0' memory='32' unit='MiB'/>\
             <cell id='1' cpus='1' memory='32' unit='MiB'/></numa></cpu>\
             <devices><controller type='usb' model='none'/><memballoon model='none'/>\
             {devices}</devices></domain>"
        );
        let mut def = DomainDef::from_xml(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        defaults::apply(&mut def, &x86_64()).unwrap_or_else(|e| panic!("{e}: {xml}"));
        def
    }

    /// The `-device` arguments of the command line after the machine's own, in order.
    fn devices(def: &DomainDef) -> Vec<String> {
        let plan = build_with(def, &x86_64(), Accel::Tcg).expect("builds");
        plan.args
            .windows(2)
            .filter(|w| w[0] == "-device" && w[1] != "pvpanic")
            .map(|w| w[1].clone())
            .collect()
    }

    /// libvirt's `pci-bridge` test shape (without its video): bridges on pci-root get
    /// chassis_nr from their index.
    #[test]
    fn pci_bridges_on_pc() {
        let def = defined(
            "pc",
            "<controller type='pci' index='1' model='pci-bridge'/>\
             <controller type='pci' index='2' model='pci-bridge'/>\
             <interface type='user'><mac address='52:54:00:00:00:01'/><model type='e1000'/>\
             <address type='pci' domain='0x0000' bus='0x02' slot='0x05' function='0x0'/>\
             </interface>",
        );
        let d = devices(&def);
        assert_eq!(
            d[0],
            "pci-bridge,chassis_nr=1,id=pci.1,bus=pci.0,addr=0x2.0"
        );
        assert_eq!(
            d[1],
            "pci-bridge,chassis_nr=2,id=pci.2,bus=pci.0,addr=0x3.0"
        );
        assert!(
            d.iter()
                .any(|x| x.starts_with("e1000,") && x.contains(",bus=pci.2,addr=0x5.0")),
            "{d:?}"
        );
    }

    /// libvirt's `pcie-switch-downstream-port` test shape: an upstream port on a root port,
    /// downstream ports on it with port and chassis, one with its own.
    #[test]
    fn pcie_switch_ports() {
        let def = defined(
            "q35",
            "<controller type='pci' index='1' model='pcie-root-port'><model name='ioh3420'/>\
             </controller>\
             <controller type='pci' index='2' model='pcie-switch-upstream-port'/>\
             <controller type='pci' index='3' model='pcie-switch-downstream-port'/>\
             <controller type='pci' index='4' model='pcie-switch-downstream-port'>\
             <target chassis='30' port='0x27' hotplug='off'/></controller>",
        );
        let d = devices(&def);
        assert_eq!(
            d[..4],
            [
                "ioh3420,port=8,chassis=1,id=pci.1,bus=pcie.0,addr=0x1.0",
                "x3130-upstream,id=pci.2,bus=pci.1,addr=0x0.0",
                "xio3130-downstream,port=0,chassis=3,id=pci.3,bus=pci.2,addr=0x0.0",
                "xio3130-downstream,port=39,chassis=30,id=pci.4,bus=pci.2,addr=0x1.0,hotplug=off",
            ]
        );
    }

    /// libvirt's `pci-expander-bus` and `pcie-expander-bus` test shapes: bus_nr from the
    /// definition or below the lowest in use, the NUMA node when given.
    #[test]
    fn expander_buses() {
        let def = defined(
            "pc",
            "<controller type='pci' index='1' model='pci-expander-bus'>\
             <target busNr='254'><node>1</node></target></controller>\
             <controller type='pci' index='2' model='pci-expander-bus'/>",
        );
        let xml = def.to_xml(&Default::default());
        assert!(
            xml.contains(
                "<controller type='pci' index='1' model='pci-expander-bus'>\n      \
                 <model name='pxb'/>\n      <target busNr='254'>\n        <node>1</node>\n      \
                 </target>"
            ),
            "{xml}"
        );
        assert!(xml.contains("<target busNr='252'/>"), "{xml}");
        let d = devices(&def);
        assert_eq!(
            d[0],
            "pxb,bus_nr=254,id=pci.1,numa_node=1,bus=pci.0,addr=0x2.0"
        );
        assert_eq!(d[1], "pxb,bus_nr=252,id=pci.2,bus=pci.0,addr=0x3.0");

        let def = defined(
            "q35",
            "<controller type='pci' index='1' model='pcie-expander-bus'>\
             <target busNr='254'><node>0</node></target></controller>\
             <controller type='pci' index='2' model='pcie-root-port'>\
             <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\
             </controller>",
        );
        let d = devices(&def);
        assert_eq!(
            d[0],
            "pxb-pcie,bus_nr=254,id=pci.1,numa_node=0,bus=pcie.0,addr=0x1.0"
        );
        assert_eq!(
            d[1],
            "pcie-root-port,port=0,chassis=2,id=pci.2,bus=pci.1,addr=0x0.0"
        );
    }

    /// A node the guest does not have, and controllers on the wrong machine, are refused.
    #[test]
    fn refusals_name_the_controller() {
        let mut def = defined(
            "pc",
            "<controller type='pci' index='1' model='pci-expander-bus'>\
             <target busNr='254'><node>5</node></target></controller>",
        );
        let e = build_with(&def, &x86_64(), Accel::Tcg).expect_err("node 5");
        assert!(
            matches!(&e, CmdlineError::Invalid(m) if m.contains("index='1'") && m.contains("<node>5</node>")),
            "{e}"
        );
        def.devices.controllers.retain(|c| c.index != Some(1));
        let xml = "<domain type='qemu'><name>t</name><memory>65536</memory>\
                   <os><type machine='pc'>hvm</type></os><devices>\
                   <controller type='pci' index='1' model='pcie-root-port'/></devices></domain>";
        let mut def = DomainDef::from_xml(xml).expect("parses");
        let e = defaults::apply(&mut def, &x86_64()).expect_err("no pcie on pc");
        assert!(e.to_string().contains("pcie-root-port"), "{e}");
        let xml = "<domain type='qemu'><name>t</name><memory>65536</memory>\
                   <os><type machine='q35'>hvm</type></os><devices>\
                   <controller type='pci' index='1' model='pci-expander-bus'/></devices></domain>";
        let mut def = DomainDef::from_xml(xml).expect("parses");
        let e = defaults::apply(&mut def, &x86_64()).expect_err("pxb on q35");
        assert!(e.to_string().contains("i440fx"), "{e}");
    }
}
