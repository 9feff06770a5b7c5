//! Character devices: `<serial>`, `<parallel>`, `<console>`, `<channel>`.
//!
//! All four share one shape: a host-side source and a guest-side target.
//! Which target types are valid depends on the element, so the reader is
//! told which element it is reading.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// Host side of a character device (`type` attribute).
    pub enum CharSourceType {
        Pty = "pty",
        Dev = "dev",
        File = "file",
        Pipe = "pipe",
        Unix = "unix",
        Null = "null",
        Stdio = "stdio",
        Vc = "vc",
        Spicevmc = "spicevmc",
        Spiceport = "spiceport",
        Tcp = "tcp",
        Udp = "udp",
    }
}

xml_enum! {
    /// What a `tcp` character device (or a USB redirection over TCP) speaks on its socket.
    pub enum TcpProtocol {
        Raw = "raw",
        Telnet = "telnet",
        Telnets = "telnets",
        Tls = "tls",
    }
}

/// The network end of a `tcp` or `udp` character device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CharNet {
    /// tcp: the one end (`bind` listens, `connect` dials); udp: where datagrams go.
    pub host: Option<String>,
    pub service: Option<String>,
    /// udp only: the local end datagrams come from.
    pub bind_host: Option<String>,
    pub bind_service: Option<String>,
    /// tcp only: `<protocol type>`, written always (libvirt's default is raw).
    pub protocol: Option<TcpProtocol>,
    /// tcp only: `<source tls>`.
    pub tls: Option<bool>,
    /// tcp (connect) only: `<reconnect enabled timeout>`.
    pub reconnect: Option<(bool, Option<u32>)>,
}

xml_enum! {
    /// Whether the host end of a UNIX socket listens or connects.
    pub enum CharSourceMode {
        Bind = "bind",
        Connect = "connect",
    }
}

xml_enum! {
    /// Whether a guest agent has the virtio port open (live only).
    pub enum ChannelState {
        Connected = "connected",
        Disconnected = "disconnected",
    }
}

/// Which element a character device came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CharKind {
    Serial,
    Parallel,
    Console,
    Channel,
    /// `<rng><backend model='egd' type=...>`: a chardev feeding the EGD protocol.
    RngBackend,
    /// `<smartcard mode='passthrough' type=...>`: a remote CCID reader.
    Smartcard,
}

impl CharKind {
    fn element(self) -> &'static str {
        match self {
            CharKind::Serial => "serial",
            CharKind::Parallel => "parallel",
            CharKind::Console => "console",
            CharKind::Channel => "channel",
            CharKind::RngBackend => "backend",
            CharKind::Smartcard => "smartcard",
        }
    }

    fn target_types(self) -> &'static [&'static str] {
        match self {
            CharKind::Serial => &[
                "isa-serial",
                "usb-serial",
                "pci-serial",
                "spapr-vio-serial",
                "system-serial",
                "sclp-serial",
                "isa-debug",
            ],
            CharKind::Console => &["serial", "virtio", "xen", "lxc", "openvz", "sclp", "sclplm"],
            CharKind::Channel => &["virtio", "xen"],
            CharKind::Parallel | CharKind::RngBackend | CharKind::Smartcard => &[],
        }
    }
}

const SERIAL_MODELS: &[&str] = &[
    "isa-serial",
    "usb-serial",
    "pci-serial",
    "spapr-vty",
    "pl011",
    "sclpconsole",
    "sclplmconsole",
    "16550a",
    "isa-debugcon",
];

fn one_of_list(
    list: &'static [&'static str],
) -> impl Fn(&str) -> std::result::Result<String, String> {
    move |v| {
        if list.contains(&v) {
            Ok(v.to_string())
        } else {
            Err(values::one_of(list))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharDevice {
    pub source_type: CharSourceType,
    /// `<console tty=...>`: the pty path, repeated by libvirt for old tools.
    pub tty: Option<String>,
    /// pty (live), dev, file, pipe, unix.
    pub source_path: Option<String>,
    /// unix only.
    pub source_mode: Option<CharSourceMode>,
    /// file only: append instead of truncating.
    pub source_append: Option<bool>,
    /// spiceport only: the SPICE port name, e.g. `org.qemu.console.serial.0`.
    pub source_channel: Option<String>,
    /// tcp and udp.
    pub net: Option<CharNet>,
    /// unix (connect) only: `<source><reconnect enabled timeout>`.
    pub unix_reconnect: Option<(bool, Option<u32>)>,
    /// unix only: a `<protocol type='raw'/>` the user wrote. Raw is all a UNIX socket
    /// speaks; libvirt drops the element, this model keeps what was written.
    pub unix_protocol: bool,
    pub target_type: Option<String>,
    pub target_port: Option<u32>,
    /// channel: the virtio port name, e.g. `org.qemu.guest_agent.0`.
    pub target_name: Option<String>,
    pub target_state: Option<ChannelState>,
    /// serial: `<target><model name=...>`.
    pub target_model: Option<String>,
    pub info: DeviceInfo,
}

impl CharDevice {
    pub(crate) fn read(mut e: Elem, kind: CharKind) -> Result<CharDevice> {
        let source_type = e.req_attr_with("type", values::keyword::<CharSourceType>)?;
        let tty = if kind == CharKind::Console {
            e.attr_with("tty", values::abs_path)?
        } else {
            None
        };
        let (mut source_path, mut source_mode, mut source_append) = (None, None, None);
        let (mut unix_reconnect, mut unix_protocol) = (None, false);
        let mut source_channel = None;
        let mut source: Option<CharNet> = None;
        use CharSourceType as T;
        match source_type {
            T::Pty | T::Dev | T::File | T::Pipe | T::Unix => {
                let needs_path = matches!(source_type, T::Dev | T::File | T::Pipe);
                match e.child("source")? {
                    Some(mut s) => {
                        source_path = if needs_path {
                            Some(s.req_attr_with("path", values::abs_path)?)
                        } else {
                            s.attr_with("path", values::abs_path)?
                        };
                        if source_type == T::Unix {
                            source_mode = s.attr_with("mode", values::keyword::<CharSourceMode>)?;
                            if let Some(mut r) = s.child("reconnect")? {
                                let enabled = r.req_attr_with("enabled", values::yes_no)?;
                                let timeout = r.attr_with("timeout", values::u32_pos)?;
                                r.finish()?;
                                unix_reconnect = Some((enabled, timeout));
                            }
                        }
                        if source_type == T::File {
                            source_append = s.attr_with("append", values::on_off)?;
                        }
                        s.finish()?;
                    }
                    None if needs_path => return Err(e.missing_child("source")),
                    None => {}
                }
                if source_type == T::Unix
                    && let Some(mut p) = e.child("protocol")?
                {
                    p.req_attr_with("type", |v| match v {
                        "raw" => Ok(()),
                        _ => Err("a unix socket speaks 'raw'".to_owned()),
                    })?;
                    p.finish()?;
                    unix_protocol = true;
                }
            }
            T::Spiceport => {
                let mut s = e.req_child("source")?;
                source_channel = Some(s.req_attr_with("channel", values::token)?);
                s.finish()?;
            }
            T::Tcp => {
                let mut net = CharNet::default();
                let mut s = e.req_child("source")?;
                source_mode = s.attr_with("mode", values::keyword::<CharSourceMode>)?;
                net.host = s.attr_with("host", values::non_empty)?;
                net.service = Some(s.req_attr_with("service", values::non_empty)?);
                net.tls = s.attr_with("tls", values::yes_no)?;
                if let Some(mut r) = s.child("reconnect")? {
                    let enabled = r.req_attr_with("enabled", values::yes_no)?;
                    let timeout = r.attr_with("timeout", values::u32_pos)?;
                    r.finish()?;
                    net.reconnect = Some((enabled, timeout));
                }
                s.finish()?;
                net.protocol = e.child_attr_with("protocol", "type", values::keyword)?;
                net.protocol.get_or_insert(TcpProtocol::Raw);
                source = Some(net);
            }
            T::Udp => {
                let mut net = CharNet::default();
                e.each("source", |mut s| {
                    let mode = s.attr_with("mode", values::keyword::<CharSourceMode>)?;
                    let host = s.attr_with("host", values::non_empty)?;
                    let service = s.attr_with("service", values::non_empty)?;
                    let taken = match mode.unwrap_or(CharSourceMode::Connect) {
                        CharSourceMode::Bind => {
                            let t = net.bind_host.is_some() || net.bind_service.is_some();
                            (net.bind_host, net.bind_service) = (host, service);
                            t
                        }
                        CharSourceMode::Connect => {
                            let t = net.host.is_some() || net.service.is_some();
                            (net.host, net.service) = (host, service);
                            t
                        }
                    };
                    if taken {
                        return Err(XmlError::Duplicate { path: s.path() });
                    }
                    s.finish()
                })?;
                if net.service.is_none() {
                    return Err(XmlError::invalid(
                        format!("{}/source", e.path()),
                        "",
                        "a udp character device needs a source in mode 'connect' with a service",
                    ));
                }
                source = Some(net);
            }
            T::Null | T::Stdio | T::Vc | T::Spicevmc => {}
        }

        let (mut target_type, mut target_port, mut target_name, mut target_state, mut target_model) =
            (None, None, None, None, None);
        let target = match kind {
            CharKind::Channel => Some(e.req_child("target")?),
            CharKind::RngBackend | CharKind::Smartcard => None,
            _ => e.child("target")?,
        };
        if let Some(mut t) = target {
            let types = kind.target_types();
            if !types.is_empty() {
                target_type = if kind == CharKind::Channel {
                    Some(t.req_attr_with("type", one_of_list(types))?)
                } else {
                    t.attr_with("type", one_of_list(types))?
                };
            }
            if kind == CharKind::Channel {
                if target_type.as_deref() == Some("virtio") {
                    target_name = t.attr_with("name", values::token)?;
                    target_state = t.attr_with("state", values::keyword::<ChannelState>)?;
                }
            } else {
                target_port = t.attr_with("port", values::u32_any)?;
            }
            if kind == CharKind::Serial {
                target_model = t.child_attr_with("model", "name", one_of_list(SERIAL_MODELS))?;
            }
            t.finish()?;
        }
        if source_type == T::Spicevmc
            && kind != CharKind::Smartcard
            && (kind != CharKind::Channel || target_type.as_deref() != Some("virtio"))
        {
            return Err(e.attr_invalid(
                "type",
                "spicevmc",
                "spicevmc device type only supports a virtio <channel>",
            ));
        }
        let info = if kind == CharKind::RngBackend {
            DeviceInfo::default()
        } else {
            DeviceInfo::read(&mut e)?
        };
        e.finish()?;
        Ok(CharDevice {
            source_type,
            tty,
            source_path,
            source_mode,
            source_append,
            source_channel,
            net: source,
            unix_reconnect,
            unix_protocol,
            target_type,
            target_port,
            target_name,
            target_state,
            target_model,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer, kind: CharKind) {
        w.start(kind.element());
        match kind {
            CharKind::RngBackend => w.attr("model", "egd"),
            CharKind::Smartcard => w.attr("mode", "passthrough"),
            _ => {}
        }
        w.attr("type", self.source_type.as_str());
        w.attr_opt("tty", self.tty.as_deref());
        if let Some(n) = &self.net {
            write_net(w, self.source_type, self.source_mode, n);
        } else if self.source_path.is_some()
            || self.source_mode.is_some()
            || self.source_append.is_some()
            || self.source_channel.is_some()
        {
            w.start("source");
            w.attr_opt("mode", self.source_mode.map(|m| m.as_str()));
            w.attr_opt("path", self.source_path.as_deref());
            w.attr_opt("append", self.source_append.map(values::on_off_str));
            w.attr_opt("channel", self.source_channel.as_deref());
            if let Some((enabled, timeout)) = self.unix_reconnect {
                w.start("reconnect");
                w.attr("enabled", values::yes_no_str(enabled));
                w.attr_num_opt("timeout", timeout);
                w.end();
            }
            w.end();
        }
        if self.unix_protocol {
            w.leaf_attr("protocol", "type", "raw");
        }
        let has_target = self.target_type.is_some()
            || self.target_port.is_some()
            || self.target_name.is_some()
            || self.target_state.is_some()
            || self.target_model.is_some();
        if has_target {
            w.start("target");
            w.attr_opt("type", self.target_type.as_deref());
            w.attr_num_opt("port", self.target_port);
            w.attr_opt("name", self.target_name.as_deref());
            w.attr_opt("state", self.target_state.map(|s| s.as_str()));
            if let Some(m) = &self.target_model {
                w.leaf_attr("model", "name", m);
            }
            w.end();
        }
        self.info.write(w);
        w.end();
    }
}

/// The `<source>`s (and tcp's `<protocol>`) of a network character device, as libvirt
/// writes them: udp's bind end first.
fn write_net(w: &mut Writer, t: CharSourceType, mode: Option<CharSourceMode>, n: &CharNet) {
    if t == CharSourceType::Udp {
        for (m, host, service) in [
            ("bind", &n.bind_host, &n.bind_service),
            ("connect", &n.host, &n.service),
        ] {
            if host.is_some() || service.is_some() {
                w.start("source");
                w.attr("mode", m);
                w.attr_opt("host", host.as_deref());
                w.attr_opt("service", service.as_deref());
                w.end();
            }
        }
        return;
    }
    w.start("source");
    w.attr("mode", mode.unwrap_or(CharSourceMode::Connect).as_str());
    w.attr_opt("host", n.host.as_deref());
    w.attr_opt("service", n.service.as_deref());
    w.attr_opt("tls", n.tls.map(values::yes_no_str));
    if let Some((enabled, timeout)) = n.reconnect {
        w.start("reconnect");
        w.attr("enabled", values::yes_no_str(enabled));
        w.attr_num_opt("timeout", timeout);
        w.end();
    }
    w.end();
    w.leaf_attr(
        "protocol",
        "type",
        n.protocol.unwrap_or(TcpProtocol::Raw).as_str(),
    );
}
