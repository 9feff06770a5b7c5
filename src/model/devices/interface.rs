//! `<interface>`: network interfaces.

use super::bandwidth::Bandwidth;
use super::iface_ip::{IfaceIp, IfaceRoute};
use crate::model::address::{self, DeviceInfo};
use crate::model::devices::net_driver::NetDriver;
use crate::model::error::XmlError;
use crate::model::values::{self, MacAddr, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum InterfaceType {
        User = "user",
        Network = "network",
        Bridge = "bridge",
        Ethernet = "ethernet",
        Direct = "direct",
        Mcast = "mcast",
        Client = "client",
        Server = "server",
        Udp = "udp",
    }
}

/// The far end (and, for `udp`, the local end) of a socket-backed interface: QEMU's
/// `-netdev socket` tunnels Ethernet frames between guests without any host device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSocket {
    pub address: Option<String>,
    pub port: u16,
    /// `udp` only: `<local address port>`.
    pub local: Option<(Option<String>, u16)>,
}

xml_enum! {
    /// macvtap mode of a `direct` interface.
    pub enum DirectMode {
        Vepa = "vepa",
        Bridge = "bridge",
        Private = "private",
        Passthrough = "passthrough",
    }
}

xml_enum! {
    pub enum LinkState {
        Up = "up",
        Down = "down",
    }
}

xml_enum! {
    /// Backend of a virtio NIC.
    pub enum NetDriverName {
        Qemu = "qemu",
        Vhost = "vhost",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub iface_type: InterfaceType,
    /// Generated in QEMU's `52:54:00` range when the input has none, as
    /// libvirt does, so the guest sees a stable address.
    pub mac: MacAddr,
    /// `network` type: the virtual network's name.
    pub source_network: Option<String>,
    /// `bridge` type, or the bridge a `network` resolved to (live).
    pub source_bridge: Option<String>,
    /// `direct` type: host device.
    pub source_dev: Option<String>,
    pub source_mode: Option<DirectMode>,
    /// `network` type: the port allocated on the network (live).
    pub source_portid: Option<uuid::Uuid>,
    /// `mcast`, `client`, `server` and `udp` types.
    pub socket: Option<NetSocket>,
    /// `<script path>` and `<downscript path>`: programs run with the tap's name after it is
    /// created and when it is closed.
    pub script: Option<String>,
    pub downscript: Option<String>,
    /// Host-side device name (tap/macvtap).
    pub target_dev: Option<String>,
    /// `ethernet` type: whether libvirt creates the tap itself.
    pub target_managed: Option<bool>,
    /// NIC model, e.g. `virtio` or `e1000e`.
    pub model: Option<String>,
    pub driver_name: Option<NetDriverName>,
    pub driver_queues: Option<u32>,
    /// The rest of `<driver>`: virtio-net tuning.
    pub driver: NetDriver,
    /// `<mtu size>`: the host side's MTU and the one virtio-net offers the guest.
    pub mtu: Option<u32>,
    /// `<rom>`: the NIC's option ROM.
    pub rom: Rom,
    pub link_state: Option<LinkState>,
    pub boot_order: Option<u32>,
    pub info: DeviceInfo,
    /// Guest-side `<ip>` and `<route>` (containers: set on the container's end).
    pub ips: Vec<IfaceIp>,
    pub routes: Vec<IfaceRoute>,
    /// `type='ethernet'`'s `<source>` `<ip>` and `<route>`: set on the host side.
    pub host_ips: Vec<IfaceIp>,
    pub host_routes: Vec<IfaceRoute>,
    /// `<guest dev>`: the interface's name inside a container (`eth0`... when unset).
    pub guest_dev: Option<String>,
    /// `<guest actual>`: the container end's name before it was moved in (live).
    pub guest_actual: Option<String>,
    /// `<bandwidth>`: traffic shaping of the host side.
    pub bandwidth: Option<Bandwidth>,
}

impl Interface {
    pub(crate) fn read(mut e: Elem) -> Result<Interface> {
        let iface_type = e.req_attr_with("type", values::keyword::<InterfaceType>)?;
        let mac = e
            .child_attr_with("mac", "address", |v| v.parse::<MacAddr>())?
            .unwrap_or_else(MacAddr::random_qemu);
        let mut iface = Interface {
            iface_type,
            mac,
            source_network: None,
            source_bridge: None,
            source_dev: None,
            source_mode: None,
            source_portid: None,
            socket: None,
            script: None,
            downscript: None,
            target_dev: None,
            target_managed: None,
            model: None,
            driver_name: None,
            driver_queues: None,
            driver: NetDriver::default(),
            mtu: None,
            rom: Rom::default(),
            link_state: None,
            boot_order: None,
            info: DeviceInfo::default(),
            ips: Vec::new(),
            routes: Vec::new(),
            host_ips: Vec::new(),
            host_routes: Vec::new(),
            guest_dev: None,
            guest_actual: None,
            bandwidth: None,
        };
        // `user` takes no <source>; it stays unread and is reported as unknown.
        if iface_type == InterfaceType::Ethernet
            && let Some(mut s) = e.child("source")?
        {
            s.each("ip", |i| {
                iface.host_ips.push(IfaceIp::read(i)?);
                Ok(())
            })?;
            s.each("route", |r| {
                iface.host_routes.push(IfaceRoute::read(r)?);
                Ok(())
            })?;
            s.finish()?;
        }
        if matches!(
            iface_type,
            InterfaceType::Network | InterfaceType::Bridge | InterfaceType::Direct
        ) {
            let mut s = e.req_child("source")?;
            match iface_type {
                InterfaceType::Network => {
                    iface.source_network = Some(s.req_attr_with("network", values::non_empty)?);
                    iface.source_portid = s.attr_with("portid", values::uuid)?;
                    iface.source_bridge = s.attr_with("bridge", values::token)?;
                }
                InterfaceType::Bridge => {
                    iface.source_bridge = Some(s.req_attr_with("bridge", values::token)?);
                }
                _ => {
                    iface.source_dev = Some(s.req_attr_with("dev", values::token)?);
                    iface.source_mode = s.attr_with("mode", values::keyword::<DirectMode>)?;
                }
            }
            s.finish()?;
        }
        if iface.is_socket() {
            let mut s = e.req_child("source")?;
            let port = |v: &str| values::uint_in(v, 1, 65535).map(|p| p as u16);
            let mut sock = NetSocket {
                address: s.attr_with("address", values::non_empty)?,
                port: s.req_attr_with("port", port)?,
                local: None,
            };
            if iface_type == InterfaceType::Udp {
                let mut l = s.req_child("local")?;
                sock.local = Some((
                    l.attr_with("address", values::non_empty)?,
                    l.req_attr_with("port", port)?,
                ));
                l.finish()?;
            }
            s.finish()?;
            if sock.address.is_none() && iface_type != InterfaceType::Server {
                return Err(XmlError::invalid(
                    format!("{}/source/@address", e.path()),
                    "",
                    format!("an interface of type '{iface_type}' needs an address"),
                ));
            }
            iface.socket = Some(sock);
        }
        iface.bandwidth = Bandwidth::read_child(&mut e, iface_type == InterfaceType::Network)?;
        e.each("ip", |i| {
            iface.ips.push(IfaceIp::read(i)?);
            Ok(())
        })?;
        e.each("route", |r| {
            iface.routes.push(IfaceRoute::read(r)?);
            Ok(())
        })?;
        iface.script = e.child_attr_with("script", "path", values::non_empty)?;
        iface.downscript = e.child_attr_with("downscript", "path", values::non_empty)?;
        if let Some(mut g) = e.child("guest")? {
            iface.guest_dev = g.attr_with("dev", values::token)?;
            iface.guest_actual = g.attr_with("actual", values::token)?;
            g.finish()?;
        }
        if let Some(mut t) = e.child("target")? {
            iface.target_dev = Some(t.req_attr_with("dev", values::token)?);
            if iface_type == InterfaceType::Ethernet {
                iface.target_managed = t.attr_with("managed", values::yes_no)?;
            }
            t.finish()?;
        }
        iface.model = e.child_attr_with("model", "type", values::token)?;
        if let Some(mut d) = e.child("driver")? {
            iface.driver_name = d.attr_with("name", values::keyword::<NetDriverName>)?;
            iface.driver_queues = d.attr_with("queues", values::u32_pos)?;
            iface.driver = NetDriver::read(&mut d)?;
            d.finish()?;
        }
        iface.link_state = e.child_attr_with("link", "state", values::keyword::<LinkState>)?;
        iface.mtu = e
            .child_attr_with("mtu", "size", |v| values::uint_in(v, 68, 65535))?
            .map(|v| v as u32);
        iface.rom = Rom::read_child(&mut e)?;
        iface.boot_order = address::read_boot_order(&mut e)?;
        iface.info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(iface)
    }

    /// Whether QEMU's socket backend carries this interface.
    pub fn is_socket(&self) -> bool {
        matches!(
            self.iface_type,
            InterfaceType::Mcast
                | InterfaceType::Client
                | InterfaceType::Server
                | InterfaceType::Udp
        )
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("interface");
        w.attr("type", self.iface_type.as_str());
        w.leaf_attr("mac", "address", &self.mac.to_string());
        match self.iface_type {
            InterfaceType::Network | InterfaceType::Bridge | InterfaceType::Direct => {
                w.start("source");
                w.attr_opt("network", self.source_network.as_deref());
                if let Some(p) = self.source_portid {
                    w.attr("portid", &p.hyphenated().to_string());
                }
                w.attr_opt("bridge", self.source_bridge.as_deref());
                w.attr_opt("dev", self.source_dev.as_deref());
                w.attr_opt("mode", self.source_mode.map(|m| m.as_str()));
                w.end();
            }
            InterfaceType::Ethernet
                if !self.host_ips.is_empty() || !self.host_routes.is_empty() =>
            {
                w.start("source");
                for i in &self.host_ips {
                    i.write(w);
                }
                for r in &self.host_routes {
                    r.write(w);
                }
                w.end_block();
            }
            InterfaceType::User | InterfaceType::Ethernet => {}
            InterfaceType::Mcast
            | InterfaceType::Client
            | InterfaceType::Server
            | InterfaceType::Udp => {
                let s = self.socket.clone().unwrap_or_default();
                w.start("source");
                w.attr_opt("address", s.address.as_deref());
                w.attr_num("port", s.port);
                if let Some((addr, port)) = &s.local {
                    w.start("local");
                    w.attr_opt("address", addr.as_deref());
                    w.attr_num("port", port);
                    w.end();
                }
                w.end();
            }
        }
        if let Some(b) = &self.bandwidth {
            b.write(w);
        }
        for i in &self.ips {
            i.write(w);
        }
        for r in &self.routes {
            r.write(w);
        }
        if let Some(p) = &self.script {
            w.leaf_attr("script", "path", p);
        }
        if let Some(p) = &self.downscript {
            w.leaf_attr("downscript", "path", p);
        }
        if let Some(t) = &self.target_dev {
            w.start("target");
            w.attr("dev", t);
            w.attr_opt("managed", self.target_managed.map(values::yes_no_str));
            w.end();
        }
        if self.guest_dev.is_some() || self.guest_actual.is_some() {
            w.start("guest");
            w.attr_opt("dev", self.guest_dev.as_deref());
            w.attr_opt("actual", self.guest_actual.as_deref());
            w.end();
        }
        if let Some(m) = &self.model {
            w.leaf_attr("model", "type", m);
        }
        if self.driver_name.is_some() || self.driver_queues.is_some() || !self.driver.is_empty() {
            w.start("driver");
            w.attr_opt("name", self.driver_name.map(|n| n.as_str()));
            self.driver.write_attrs(w);
            w.attr_num_opt("queues", self.driver_queues);
            self.driver.write_attrs_tail(w);
            self.driver.write_children(w);
            w.end();
        }
        if let Some(l) = self.link_state {
            w.leaf_attr("link", "state", l.as_str());
        }
        if let Some(m) = self.mtu {
            w.start("mtu");
            w.attr_num("size", m);
            w.end();
        }
        address::write_boot_order(w, self.boot_order);
        self.info.write_alias(w);
        self.rom.write(w);
        self.info.write_address(w);
        w.end();
    }
}

/// `<rom>`: whether a PCI device exposes its option ROM BAR (`bar`), whether it has one at
/// all (`enabled`, or the older `file=''`), and which image it loads (`file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rom {
    pub bar: Option<bool>,
    pub enabled: Option<bool>,
    pub file: Option<String>,
}

impl Rom {
    pub(crate) fn read_child(e: &mut Elem) -> Result<Rom> {
        let Some(mut r) = e.child("rom")? else {
            return Ok(Rom::default());
        };
        let rom = Rom {
            bar: r.attr_with("bar", values::on_off)?,
            enabled: r.attr_with("enabled", values::yes_no)?,
            file: r.attr_string("file"),
        };
        if rom.enabled == Some(false) && (rom.bar.is_some() || rom.file.is_some()) {
            return Err(r.invalid("no", "a disabled ROM takes neither bar nor file"));
        }
        r.finish()?;
        Ok(rom)
    }

    pub fn is_empty(&self) -> bool {
        *self == Rom::default()
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.start("rom");
        w.attr_opt("enabled", self.enabled.map(values::yes_no_str));
        w.attr_opt("bar", self.bar.map(values::on_off_str));
        w.attr_opt("file", self.file.as_deref());
        w.end();
    }

    /// The QEMU properties: `,rombar=0`, `,romfile=...`.
    pub fn qemu_props(&self) -> String {
        let mut s = String::new();
        if let Some(bar) = self.bar {
            s.push_str(&format!(",rombar={}", u8::from(bar)));
        }
        if self.enabled == Some(false) {
            s.push_str(",romfile=");
        } else if let Some(f) = &self.file {
            s.push_str(&format!(",romfile={f}"));
        }
        s
    }
}
