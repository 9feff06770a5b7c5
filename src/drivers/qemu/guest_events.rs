//! QMP events that tell of the guest beyond its state, read as libvirt's QEMU driver reads
//! them (`qemu_monitor_json.c`, `qemu_process.c`): the guest's clock, removable drives'
//! trays and graphics clients.

use serde_json::Value;

use crate::{
    drivers::DriverEvent,
    model::{
        ClockOffset, DomainDef,
        devices::Tray,
        guest_events::{AddressFamily, GraphicsAddress, GraphicsEvent, GraphicsPhase},
    },
};

/// An `RTC_CHANGE` offset as libvirt reports it. For a `variable` clock QEMU counts from the
/// base the guest started with, so libvirt adds the adjustment it started with (`base`) and
/// keeps the sum as the live adjustment; other clocks report QEMU's offset as it is.
pub fn rtc_offset(live: &mut DomainDef, base: i64, offset: i64) -> i64 {
    match live.clock.as_mut() {
        Some(c) if c.offset == ClockOffset::Variable => {
            let offset = offset.saturating_add(base);
            c.adjustment = Some(offset);
            offset
        }
        _ => offset,
    }
}

/// A `DEVICE_TRAY_MOVED` event: the drive's alias and the tray's new state, recorded in
/// `live`. QEMU names the drive by its device id (`id`, a QOM path for some) and, without
/// `-blockdev`, by its drive alias (`device`); a drive that is not the domain's is no news.
pub fn tray_moved(live: &mut DomainDef, data: &Value) -> Option<DriverEvent> {
    let s = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let open = data.get("tray-open").and_then(Value::as_bool)?;
    let (device, id) = (s("device"), s("id"));
    let disk = live.devices.disks.iter_mut().find(|d| {
        let Some(alias) = d.info.alias.as_deref() else {
            return false;
        };
        device.is_some_and(|dev| dev.strip_prefix("drive-") == Some(alias))
            || id.is_some_and(|id| {
                id == alias || id.strip_suffix(alias).is_some_and(|p| p.ends_with('/'))
            })
    })?;
    disk.tray = Some(if open { Tray::Open } else { Tray::Closed });
    Some(DriverEvent::TrayChange {
        alias: disk.info.alias.clone()?,
        open,
    })
}

/// A `VNC_*` or `SPICE_*` event as libvirt reads it; `None` where an address lacks a part
/// (libvirt drops those events too).
pub fn graphics(name: &str, data: &Value) -> Option<GraphicsEvent> {
    let (spice, phase) = match name {
        "VNC_CONNECTED" => (false, GraphicsPhase::Connect),
        "VNC_INITIALIZED" => (false, GraphicsPhase::Initialize),
        "VNC_DISCONNECTED" => (false, GraphicsPhase::Disconnect),
        "SPICE_CONNECTED" => (true, GraphicsPhase::Connect),
        "SPICE_INITIALIZED" => (true, GraphicsPhase::Initialize),
        "SPICE_DISCONNECTED" => (true, GraphicsPhase::Disconnect),
        _ => return None,
    };
    let client = data.get("client")?;
    let server = data.get("server")?;
    // VNC names the port `service`, SPICE `port`
    let port = if spice { "port" } else { "service" };
    let address = |v: &Value| -> Option<GraphicsAddress> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(GraphicsAddress {
            family: AddressFamily::from_qemu(v.get("family")?.as_str()?),
            node: s("host")?,
            service: s(port)?,
        })
    };
    let auth = server.get("auth").and_then(Value::as_str);
    // SPICE's scheme is read on initialization only
    let auth_scheme = match (spice, phase) {
        (true, GraphicsPhase::Initialize) | (false, _) => auth.unwrap_or_default(),
        (true, _) => "",
    };
    let mut subject = Vec::new();
    if !spice {
        for (key, kind) in [
            ("x509_dname", "x509dname"),
            ("sasl_username", "saslUsername"),
        ] {
            if let Some(v) = client.get(key).and_then(Value::as_str) {
                subject.push((kind.to_owned(), v.to_owned()));
            }
        }
    }
    Some(GraphicsEvent {
        phase,
        local: address(server)?,
        remote: address(client)?,
        auth_scheme: auth_scheme.to_owned(),
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vnc_events_read_as_libvirt_reads_them() {
        let data = json!({
            "server": {"auth": "none", "family": "ipv4", "service": "5900", "host": "127.0.0.1", "websocket": false},
            "client": {"family": "ipv4", "service": "46130", "host": "127.0.0.1", "websocket": false, "x509_dname": "CN=a"}
        });
        let g = graphics("VNC_INITIALIZED", &data).expect("event");
        assert_eq!(g.phase, GraphicsPhase::Initialize);
        assert_eq!(g.local.service, "5900");
        assert_eq!(g.remote.node, "127.0.0.1");
        assert_eq!(g.auth_scheme, "none");
        assert_eq!(g.subject, vec![("x509dname".into(), "CN=a".into())]);
        // an address without its host: no event
        let bad =
            json!({"server": {"family": "ipv4", "service": "5900"}, "client": data["client"]});
        assert!(graphics("VNC_CONNECTED", &bad).is_none());
        // SPICE: `port`, and the scheme only on initialization
        let sp = json!({
            "server": {"auth": "spice", "family": "ipv6", "port": "5901", "host": "::1"},
            "client": {"family": "unix", "port": "", "host": "/s"}
        });
        let g = graphics("SPICE_CONNECTED", &sp).expect("event");
        assert_eq!(
            (g.auth_scheme.as_str(), g.local.family),
            ("", AddressFamily::Ipv6)
        );
        assert_eq!(g.remote.family, AddressFamily::Unix);
        assert_eq!(
            graphics("SPICE_INITIALIZED", &sp).expect("e").auth_scheme,
            "spice"
        );
    }

    fn def(clock: &str, devices: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>x</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os>{clock}<devices>{devices}</devices></domain>"
        ))
        .expect("def")
    }

    #[test]
    fn rtc_offsets_of_a_variable_clock_count_from_its_start() {
        let mut d = def(
            "<clock offset='variable' adjustment='3600' basis='utc'/>",
            "",
        );
        assert_eq!(rtc_offset(&mut d, 3600, 10), 3610);
        assert_eq!(rtc_offset(&mut d, 3600, 20), 3620);
        assert_eq!(d.clock.as_ref().and_then(|c| c.adjustment), Some(3620));
        let mut d = def("<clock offset='utc'/>", "");
        assert_eq!(rtc_offset(&mut d, 0, 7), 7);
        assert_eq!(d.clock.as_ref().and_then(|c| c.adjustment), None);
    }

    #[test]
    fn tray_events_find_the_drive_by_id_or_drive_alias() {
        let mut d = def(
            "",
            "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><alias name='ide0-1-0'/></disk>",
        );
        let ev = tray_moved(
            &mut d,
            &json!({"device": "", "id": "ide0-1-0", "tray-open": true}),
        );
        assert!(
            matches!(ev, Some(DriverEvent::TrayChange { ref alias, open: true }) if alias == "ide0-1-0")
        );
        assert_eq!(d.devices.disks[0].tray, Some(Tray::Open));
        let ev = tray_moved(
            &mut d,
            &json!({"device": "drive-ide0-1-0", "id": "", "tray-open": false}),
        );
        assert!(matches!(
            ev,
            Some(DriverEvent::TrayChange { open: false, .. })
        ));
        let ev = tray_moved(
            &mut d,
            &json!({"device": "", "id": "/machine/peripheral/ide0-1-0", "tray-open": true}),
        );
        assert!(ev.is_some());
        assert!(
            tray_moved(
                &mut d,
                &json!({"device": "", "id": "other", "tray-open": true})
            )
            .is_none()
        );
    }
}
