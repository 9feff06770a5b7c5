//! `<source protocol=...>` of a `<disk type='network'>`: a remote image and its servers.
//!
//! The model keeps every protocol libvirt knows so that definitions round-trip; which ones
//! a hypervisor can open is the driver's business.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum NetProtocol {
        Nbd = "nbd",
        Rbd = "rbd",
        Sheepdog = "sheepdog",
        Gluster = "gluster",
        Iscsi = "iscsi",
        Http = "http",
        Https = "https",
        Ftp = "ftp",
        Ftps = "ftps",
        Tftp = "tftp",
        Ssh = "ssh",
        Vxhs = "vxhs",
        Nfs = "nfs",
    }
}

xml_enum! {
    /// How a `<host>` is reached; libvirt leaves the default `tcp` unwritten.
    pub enum HostTransport {
        Tcp = "tcp",
        Unix = "unix",
        Rdma = "rdma",
    }
}

/// One `<host>`: a server name and port, or a unix socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetHost {
    pub name: Option<String>,
    pub port: Option<u16>,
    /// `None` is TCP (libvirt never writes `tcp`).
    pub transport: Option<HostTransport>,
    pub socket: Option<String>,
}

impl NetHost {
    pub fn is_unix(&self) -> bool {
        self.transport == Some(HostTransport::Unix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSource {
    pub protocol: NetProtocol,
    /// The image on the server (NBD export, URL path, pool/image).
    pub name: Option<String>,
    /// URL query string (http/https/ftp/ftps).
    pub query: Option<String>,
    pub tls: Option<bool>,
    pub tls_hostname: Option<String>,
    pub hosts: Vec<NetHost>,
    /// `<ssl verify=...>` (https, ftps).
    pub ssl_verify: Option<bool>,
    /// `<readahead size=...>` in bytes (curl protocols).
    pub readahead: Option<u64>,
    /// `<timeout seconds=...>` (curl protocols).
    pub timeout: Option<u64>,
}

/// The well-known port of a protocol, as libvirt assigns it to hosts that name none.
pub fn default_port(p: NetProtocol) -> Option<u16> {
    Some(match p {
        NetProtocol::Http => 80,
        NetProtocol::Https => 443,
        NetProtocol::Ftp => 21,
        NetProtocol::Ftps => 990,
        NetProtocol::Tftp => 69,
        NetProtocol::Sheepdog => 7000,
        NetProtocol::Nbd => 10809,
        NetProtocol::Ssh => 22,
        NetProtocol::Iscsi => 3260,
        NetProtocol::Gluster => 24007,
        NetProtocol::Vxhs => 9999,
        NetProtocol::Rbd | NetProtocol::Nfs => return None,
    })
}

impl NetSource {
    /// Reads the network half of `<source>`; the caller takes `index` and finishes `s`.
    pub(crate) fn read(s: &mut Elem) -> Result<NetSource> {
        let protocol = s.req_attr_with("protocol", values::keyword::<NetProtocol>)?;
        let name = s.attr_with("name", values::non_empty)?;
        if name.is_none() && protocol != NetProtocol::Nbd {
            return Err(s.missing_attr("name"));
        }
        let query = s.attr_with("query", values::non_empty)?;
        // libvirt reads a query for http and https only
        if query.is_some() && !matches!(protocol, NetProtocol::Http | NetProtocol::Https) {
            return Err(s.attr_invalid(
                "query",
                query.as_deref().unwrap_or_default(),
                format!("protocol '{protocol}' takes no query"),
            ));
        }
        let tls = s.attr_with("tls", values::yes_no)?;
        let tls_hostname = s.attr_with("tlsHostname", values::non_empty)?;
        let mut hosts = Vec::new();
        s.each("host", |mut h| {
            let host = NetHost {
                name: h.attr_with("name", values::non_empty)?,
                port: h.attr_with("port", |v| values::uint_in(v, 1, 65535).map(|p| p as u16))?,
                // libvirt keeps the default (tcp) as "unset"
                transport: h
                    .attr_with("transport", values::keyword::<HostTransport>)?
                    .filter(|t| *t != HostTransport::Tcp),
                socket: h.attr_with("socket", values::abs_path)?,
            };
            if host.is_unix() {
                if host.socket.is_none() {
                    return Err(h.missing_attr("socket"));
                }
            } else if host.socket.is_some() {
                return Err(h.attr_invalid(
                    "socket",
                    host.socket.as_deref().unwrap_or_default(),
                    "a socket needs transport='unix'",
                ));
            } else if host.name.is_none() {
                return Err(h.missing_attr("name"));
            }
            h.finish()?;
            let mut host = host;
            if host.transport.is_none() && host.port.is_none() {
                // libvirt fills in the protocol's port while parsing
                host.port = default_port(protocol);
            }
            hosts.push(host);
            Ok(())
        })?;
        let ssl_verify = s.child_attr_with("ssl", "verify", values::yes_no)?;
        let readahead =
            s.child_attr_with("readahead", "size", |v| values::uint_in(v, 1, u64::MAX))?;
        let timeout =
            s.child_attr_with("timeout", "seconds", |v| values::uint_in(v, 1, u64::MAX))?;
        Ok(NetSource {
            protocol,
            name,
            query,
            tls,
            tls_hostname,
            hosts,
            ssl_verify,
            readahead,
            timeout,
        })
    }

    /// Writes the attributes (after `<source`), in libvirt's order.
    pub(crate) fn write_attrs(&self, w: &mut Writer) {
        w.attr("protocol", self.protocol.as_str());
        w.attr_opt("name", self.name.as_deref());
        w.attr_opt("query", self.query.as_deref());
        w.attr_opt("tls", self.tls.map(values::yes_no_str));
        w.attr_opt("tlsHostname", self.tls_hostname.as_deref());
    }

    /// Writes the children of `<source>`.
    pub(crate) fn write_children(&self, w: &mut Writer) {
        for h in &self.hosts {
            w.start("host");
            w.attr_opt("name", h.name.as_deref());
            w.attr_num_opt("port", h.port);
            w.attr_opt("transport", h.transport.map(|t| t.as_str()));
            w.attr_opt("socket", h.socket.as_deref());
            w.end();
        }
        if let Some(v) = self.ssl_verify {
            w.leaf_attr("ssl", "verify", values::yes_no_str(v));
        }
        if let Some(r) = self.readahead {
            w.start("readahead");
            w.attr_num("size", r);
            w.end();
        }
        if let Some(t) = self.timeout {
            w.start("timeout");
            w.attr_num("seconds", t);
            w.end();
        }
    }
}
