//! USB on the command line: controllers (with ICH9 companions), hubs, redirected devices,
//! and the `bus=…,port=…` of every USB device, as libvirt builds them.

use super::{Builder, CmdlineError, Result, alias, esc, pci_addr, unsupported};
use crate::model::{
    AddressType, DeviceInfo, DomainDef,
    devices::{Controller, ControllerType, GraphicsType, RedirSource, TcpProtocol},
};

/// QEMU's device for a libvirt USB controller model.
fn qdev(model: &str) -> Option<&'static str> {
    Some(match model {
        "piix3-uhci" => "piix3-usb-uhci",
        "piix4-uhci" => "piix4-usb-uhci",
        "ehci" => "usb-ehci",
        "ich9-ehci1" => "ich9-usb-ehci1",
        "ich9-uhci1" => "ich9-usb-uhci1",
        "ich9-uhci2" => "ich9-usb-uhci2",
        "ich9-uhci3" => "ich9-usb-uhci3",
        "vt82c686b-uhci" => "vt82c686b-usb-uhci",
        "pci-ohci" => "pci-ohci",
        "nec-xhci" => "nec-usb-xhci",
        "qemu-xhci" => "qemu-xhci",
        _ => return None,
    })
}

/// The QEMU id of USB controller `index` (its bus is `<id>.0`).
pub(super) fn controller_alias(index: u32) -> String {
    if index == 0 {
        "usb".into()
    } else {
        format!("usb{index}")
    }
}

/// Whether controller `c` is an ICH9 UHCI companion of an EHCI master.
fn is_companion(c: &Controller) -> bool {
    matches!(
        c.model.as_deref(),
        Some("ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3")
    )
}

/// One `<controller type='usb'>`: its `-device`, or nothing for `model='none'`. Returns
/// whether it gives the machine a USB bus.
pub(super) fn controller(
    b: &mut Builder<'_>,
    def: &DomainDef,
    i: usize,
    c: &Controller,
) -> Result<bool> {
    let idx = c.index.unwrap_or(0);
    let model = c
        .model
        .as_deref()
        .unwrap_or(if b.q35 { "qemu-xhci" } else { "piix3-uhci" });
    let what = format!("<controller type='usb' index='{idx}' model='{model}'>");
    let usb = || {
        def.devices
            .controllers
            .iter()
            .filter(|o| o.controller_type == ControllerType::Usb)
    };
    if model == "none" {
        if usb().count() > 1 {
            return Err(CmdlineError::Invalid(format!(
                "{what}: USB is disabled for this domain, so it can have no other USB \
                 controller"
            )));
        }
        return Ok(false);
    }
    let dev = qdev(model)
        .ok_or_else(|| CmdlineError::NotSupported(format!("{what}: model '{model}'")))?;
    b.need(dev, &what)?;
    if let Some(p) = c.ports {
        if !model.ends_with("xhci") {
            return unsupported(format!("{what}: ports on model '{model}'"));
        }
        if p > 15 {
            return unsupported(format!(
                "{what}: '{model}' controller only supports up to '15' ports"
            ));
        }
    }
    let addr = pci_addr(&c.info, &what)?;
    let bus_alias = controller_alias(idx);
    let s = if is_companion(c) {
        let master = usb().any(|o| {
            o.index.unwrap_or(0) == idx && matches!(o.model.as_deref(), Some("ich9-ehci1"))
        });
        let Some(first) = c.master_startport.filter(|_| master) else {
            return Err(CmdlineError::Invalid(format!(
                "{what}: no master USB controller specified (a companion needs \
                 <master startport> and an ich9-ehci1 of the same index)"
            )));
        };
        // a companion adds ports to its master's bus and has no id of its own
        format!("{dev},masterbus={bus_alias}.0,firstport={first}{addr}")
    } else {
        if c.master_startport.is_some() {
            return Err(CmdlineError::Invalid(format!(
                "{what}: <master> is only for ich9-uhci companion controllers"
            )));
        }
        let a = alias(&c.info, bus_alias.clone());
        let mut s = format!("{dev},id={a}");
        if let Some(p) = c.ports {
            s.push_str(&format!(",p2={p},p3={p}"));
        }
        s.push_str(&addr);
        s
    };
    b.device(s);
    b.live.devices.controllers[i].info.alias = Some(bus_alias);
    Ok(true)
}

/// `,bus=usbN.0,port=P` for a device's USB address (QEMU picks a port when there is none).
pub(super) fn usb_addr(info: &DeviceInfo, what: &str) -> Result<String> {
    let Some(a) = &info.address else {
        return Ok(",bus=usb.0".into());
    };
    if a.kind != AddressType::Usb {
        return Err(CmdlineError::Invalid(format!(
            "{what}: address type '{}' on a USB device",
            a.kind
        )));
    }
    let bus: u32 = a.get("bus").and_then(|b| b.parse().ok()).unwrap_or(0);
    let mut s = format!(",bus={}.0", controller_alias(bus));
    if let Some(p) = a.get("port").filter(|p| *p != "0") {
        s.push_str(&format!(",port={p}"));
    }
    Ok(s)
}

/// `<hub type='usb'>`: before the devices behind them.
pub(super) fn hubs(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    for (i, h) in def.devices.hubs.iter().enumerate() {
        let what = format!("<hub type='usb'> {}", i + 1);
        b.need("usb-hub", &what)?;
        let a = alias(&h.info, format!("hub{i}"));
        b.device(format!("usb-hub,id={a}{}", usb_addr(&h.info, &what)?));
        b.live.devices.hubs[i].info.alias = Some(a);
    }
    Ok(())
}

/// `<redirdev>`: a usbredir chardev and a `usb-redir` device on it, filtered by
/// `<redirfilter>`.
pub(super) fn redirdevs(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let spice = def
        .devices
        .graphics
        .iter()
        .any(|g| g.graphics_type == GraphicsType::Spice);
    let filter = def
        .devices
        .redirfilter
        .as_ref()
        .filter(|f| !f.rules.is_empty())
        .map(|f| f.qemu_filter());
    for (i, r) in def.devices.redirdevs.iter().enumerate() {
        let what = format!("<redirdev bus='usb' type='{}'>", r.source.type_str());
        b.need("usb-redir", &what)?;
        let a = alias(&r.info, format!("redir{i}"));
        let id = format!("char{a}");
        let chardev = match &r.source {
            RedirSource::Spicevmc => {
                if !spice {
                    return unsupported(format!(
                        "{what}: chardev 'spicevmc' not supported without spice graphics"
                    ));
                }
                format!("spicevmc,id={id},name=usbredir")
            }
            RedirSource::Tcp {
                bind,
                host,
                service,
                protocol,
            } => {
                if *protocol != TcpProtocol::Raw {
                    return unsupported(format!(
                        "{what}: protocol '{protocol}' (usbredir speaks 'raw')"
                    ));
                }
                let service = service.as_deref().ok_or_else(|| {
                    CmdlineError::Invalid(format!("{what}: <source> needs a service (port)"))
                })?;
                let mut s = format!("socket,id={id}");
                if let Some(h) = host {
                    s.push_str(&format!(",host={}", esc(h)));
                }
                s.push_str(&format!(",port={}", esc(service)));
                if *bind {
                    s.push_str(",server=on,wait=off");
                }
                s
            }
        };
        b.arg("-chardev", chardev);
        let mut s = format!("usb-redir,chardev={id},id={a}");
        if let Some(f) = &filter {
            s.push_str(&format!(",filter={f}"));
        }
        if let Some(o) = r.boot_order {
            s.push_str(&format!(",bootindex={o}"));
        }
        s.push_str(&usb_addr(&r.info, &what)?);
        b.device(s);
        b.live.devices.redirdevs[i].info.alias = Some(a);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::drivers::qemu::cmdline::tests::plan_on_pc as plan;

    fn args(devices: &str) -> String {
        plan(devices).expect("builds").args.join(" ")
    }

    fn contains_all(got: &str, wants: &[&str]) {
        for w in wants {
            assert!(got.contains(w), "{w}\nin\n{got}");
        }
    }

    const ICH9: &str = "<controller type='usb' index='0' model='ich9-ehci1'/>\
        <controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>\
        <controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller>\
        <controller type='usb' index='0' model='ich9-uhci3'><master startport='4'/></controller>";

    /// libvirt's usb-redir-boot: the ICH9 set in one slot, a TCP and a SPICE redirection.
    #[test]
    fn redirdevs_on_ich9_companions() {
        let got = args(&format!(
            "{ICH9}<graphics type='spice' autoport='yes'/>\
             <redirdev bus='usb' type='tcp'><source mode='connect' host='localhost' \
             service='4000'/><protocol type='raw'/><boot order='1'/></redirdev>\
             <redirdev bus='usb' type='spicevmc'><address type='usb' bus='0' port='4'/>\
             <boot order='2'/></redirdev>"
        ));
        contains_all(
            &got,
            &[
                "-device ich9-usb-ehci1,id=usb,addr=0x3.7",
                "-device ich9-usb-uhci1,masterbus=usb.0,firstport=0,addr=0x3.0,multifunction=on",
                "-device ich9-usb-uhci2,masterbus=usb.0,firstport=2,addr=0x3.1",
                "-device ich9-usb-uhci3,masterbus=usb.0,firstport=4,addr=0x3.2",
                "-chardev socket,id=charredir0,host=localhost,port=4000 \
                 -device usb-redir,chardev=charredir0,id=redir0,bootindex=1,bus=usb.0,port=1",
                "-chardev spicevmc,id=charredir1,name=usbredir \
                 -device usb-redir,chardev=charredir1,id=redir1,bootindex=2,bus=usb.0,port=4",
            ],
        );
    }

    /// libvirt's usb-redir-filter-version: the filter goes to every usb-redir.
    #[test]
    fn redirfilter() {
        let got = args(&format!(
            "{ICH9}<graphics type='spice'/>\
             <redirdev bus='usb' type='spicevmc'/><redirdev bus='usb' type='spicevmc'/>\
             <redirfilter><usbdev class='0x08' vendor='0x15E1' product='0x2007' \
             version='1.10' allow='yes'/><usbdev class='-1' vendor='-1' product='-1' \
             version='-1' allow='no'/></redirfilter>"
        ));
        let f = "filter=0x08:0x15E1:0x2007:0x0110:1|-1:-1:-1:-1:0";
        contains_all(
            &got,
            &[
                &format!("-device usb-redir,chardev=charredir0,id=redir0,{f},bus=usb.0,port=1"),
                &format!("-device usb-redir,chardev=charredir1,id=redir1,{f},bus=usb.0,port=2"),
            ],
        );
    }

    /// libvirt's usb-hub-autoadd: the hub first, devices behind it by port path.
    #[test]
    fn hub_added_and_used() {
        let got = args(
            "<controller type='usb' index='0'/><input type='mouse' bus='usb'/>\
             <input type='mouse' bus='usb'/><input type='mouse' bus='usb'/>\
             <input type='tablet' bus='usb'/>",
        );
        contains_all(
            &got,
            &[
                "-device piix3-usb-uhci,id=usb,addr=0x1.2 -device usb-hub,id=hub0,bus=usb.0,port=1",
                "-device usb-mouse,id=input0,bus=usb.0,port=2",
                "-device usb-mouse,id=input1,bus=usb.0,port=1.1",
                "-device usb-mouse,id=input2,bus=usb.0,port=1.2",
                "-device usb-tablet,id=input3,bus=usb.0,port=1.3",
            ],
        );
    }

    #[test]
    fn xhci_ports_and_second_controller() {
        let got = args(
            "<controller type='usb' index='0' model='qemu-xhci' ports='15'/>\
             <controller type='usb' index='1' model='nec-xhci'/>\
             <input type='tablet' bus='usb'><address type='usb' bus='1' port='2'/></input>",
        );
        contains_all(
            &got,
            &[
                "-device qemu-xhci,id=usb,p2=15,p3=15,addr=0x2.0",
                "-device nec-usb-xhci,id=usb1,addr=0x3.0",
                "-device usb-tablet,id=input0,bus=usb1.0,port=2",
            ],
        );
    }

    #[test]
    fn refusals() {
        for (devices, want) in [
            (
                "<redirdev bus='usb' type='spicevmc'/>",
                "chardev 'spicevmc' not supported without spice graphics",
            ),
            (
                "<controller type='usb' model='none'/><graphics type='spice'/>\
                 <redirdev bus='usb' type='spicevmc'/>",
                "USB is disabled",
            ),
            (
                "<controller type='usb' model='none'/><hub type='usb'/>",
                "USB is disabled",
            ),
            (
                "<redirdev bus='usb' type='tcp'><source mode='connect' host='h' service='1'/>\
                 <protocol type='telnet'/></redirdev>",
                "protocol 'telnet'",
            ),
            (
                "<controller type='usb' model='qemu-xhci' ports='16'/>",
                "only supports up to '15' ports",
            ),
            (
                "<controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/>\
                 </controller>",
                "no master USB controller",
            ),
        ] {
            match plan(devices) {
                Ok(_) => panic!("{devices} builds"),
                Err(e) => assert!(e.contains(want), "{devices}: '{e}' does not name '{want}'"),
            }
        }
    }
}
