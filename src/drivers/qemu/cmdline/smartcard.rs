//! `<smartcard>` and `<controller type='ccid'>`: QEMU's `usb-ccid` reader on the USB bus
//! and a `ccid-card-emulated` (host NSS) or `ccid-card-passthru` (a chardev) card in it.

use super::usb::usb_addr;
use super::{Builder, CmdlineError, Result, alias, chardev, esc, implicit_controller, live_socket};
use crate::model::DomainDef;
use crate::model::devices::{ControllerType, SmartcardMode};

/// The CCID readers, then the cards in them.
pub(super) fn devices(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let mut readers = Vec::new();
    for (i, c) in def.devices.controllers.iter().enumerate() {
        if c.controller_type != ControllerType::Ccid {
            continue;
        }
        let what = "<controller type='ccid'>";
        let idx = c.index.unwrap_or(0);
        b.need("usb-ccid", what)?;
        let a = alias(&c.info, format!("ccid{idx}"));
        b.device(format!("usb-ccid,id={a}{}", usb_addr(&c.info, what)?));
        b.live.devices.controllers[i].info.alias = Some(a.clone());
        readers.push((idx, a));
    }
    if readers.is_empty() && !def.devices.smartcards.is_empty() {
        // libvirt adds the reader a card needs
        b.need("usb-ccid", "<smartcard>")?;
        b.device("usb-ccid,id=ccid0,bus=usb.0");
        b.live
            .devices
            .controllers
            .push(implicit_controller(ControllerType::Ccid, "ccid0"));
        readers.push((0, "ccid0".into()));
    }
    let mut used = Vec::new();
    for (i, s) in def.devices.smartcards.iter().enumerate() {
        let what = "<smartcard>".to_owned();
        let (ctl, slot) = s.ccid_slot();
        let Some((_, reader)) = readers.iter().find(|(idx, _)| *idx == ctl) else {
            return Err(CmdlineError::Invalid(format!(
                "{what}: no <controller type='ccid' index='{ctl}'> for its address"
            )));
        };
        // QEMU's usb-ccid has one slot
        if slot != 0 || used.contains(&ctl) {
            return Err(CmdlineError::Invalid(format!(
                "{what}: CCID controller {ctl} has one slot (0), and it is taken or not slot {slot}"
            )));
        }
        used.push(ctl);
        let a = alias(&s.info, format!("smartcard{i}"));
        let bus = format!("{reader}.0");
        check_database(b, s, &what)?;
        let dev = match &s.mode {
            SmartcardMode::Host => {
                b.need("ccid-card-emulated", &what)?;
                format!("ccid-card-emulated,backend=nss-emulated,id={a},bus={bus}")
            }
            SmartcardMode::HostCertificates {
                certificates,
                database,
            } => {
                b.need("ccid-card-emulated", &what)?;
                let [c1, c2, c3] = certificates;
                format!(
                    "ccid-card-emulated,backend=certificates,cert1={},cert2={},cert3={},db={},\
                     id={a},bus={bus}",
                    esc(c1),
                    esc(c2),
                    esc(c3),
                    esc(database.as_deref().unwrap_or(NSS_DB))
                )
            }
            SmartcardMode::Passthrough(c) => {
                b.need("ccid-card-passthru", &what)?;
                let id = format!("char{a}");
                let (backend, sock) = chardev(b, c, &id, &format!("{what} (passthrough)"))?;
                b.arg("-chardev", backend);
                if let SmartcardMode::Passthrough(live) = &mut b.live.devices.smartcards[i].mode {
                    live_socket(live, sock);
                }
                format!("ccid-card-passthru,chardev={id},id={a},bus={bus}")
            }
        };
        b.device(dev);
        b.live.devices.smartcards[i].info.alias = Some(a);
    }
    Ok(())
}

/// QEMU's emulated cards (libcacard) read an NSS database, `/etc/pki/nssdb` unless named;
/// without it QEMU fails to start, so a start says which database is missing.
fn check_database(b: &Builder<'_>, s: &crate::model::devices::Smartcard, what: &str) -> Result<()> {
    let db = match &s.mode {
        SmartcardMode::Host => NSS_DB,
        SmartcardMode::HostCertificates { database, .. } => database.as_deref().unwrap_or(NSS_DB),
        SmartcardMode::Passthrough(_) => return Ok(()),
    };
    if b.env.host.is_some() && !std::path::Path::new(db).is_dir() {
        return Err(CmdlineError::NotSupported(format!(
            "{what}: the NSS database {db} an emulated card reads does not exist"
        )));
    }
    Ok(())
}

/// libcacard's default NSS database.
const NSS_DB: &str = "/etc/pki/nssdb";
