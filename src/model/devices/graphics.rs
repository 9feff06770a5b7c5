//! `<graphics>`: remote display servers (VNC, SPICE).
//!
//! The password is a secret: it is parsed and kept, but only written when
//! the caller asks for secure output.

use super::spice::SpiceOptions;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum GraphicsType {
        Vnc = "vnc",
        Spice = "spice",
        Sdl = "sdl",
        Dbus = "dbus",
        EglHeadless = "egl-headless",
    }
}

xml_enum! {
    pub enum ListenType {
        Address = "address",
        Network = "network",
        Socket = "socket",
        None = "none",
    }
}

xml_enum! {
    /// SPICE image compression (`<image compression=...>`).
    pub enum ImageCompression {
        AutoGlz = "auto_glz",
        AutoLz = "auto_lz",
        Quic = "quic",
        Glz = "glz",
        Lz = "lz",
        Off = "off",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsListen {
    pub listen_type: ListenType,
    /// `address` type (or the address a `network` resolved to, live).
    pub address: Option<String>,
    pub network: Option<String>,
    pub socket: Option<String>,
}

impl GraphicsListen {
    /// A listen on `address` (any address of the host's choosing when `None`).
    pub fn address(address: Option<String>) -> GraphicsListen {
        GraphicsListen {
            listen_type: ListenType::Address,
            address,
            network: None,
            socket: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graphics {
    pub graphics_type: GraphicsType,
    /// `-1` asks for automatic allocation.
    pub port: Option<i32>,
    /// SPICE only.
    pub tls_port: Option<i32>,
    pub autoport: Option<bool>,
    /// VNC only: WebSocket port.
    pub websocket: Option<i32>,
    /// Legacy listen attribute; must match the first address listen.
    pub listen: Option<String>,
    pub keymap: Option<String>,
    /// Secret: written only with `FormatOptions::secure`.
    pub passwd: Option<String>,
    pub listens: Vec<GraphicsListen>,
    /// SPICE only.
    pub image_compression: Option<ImageCompression>,
    /// SPICE only: the other SPICE options.
    pub spice: SpiceOptions,
    /// Local displays, VNC's socket, policy and power control, and the display's audio.
    pub display: super::DisplayOptions,
}

fn port_number(v: &str) -> std::result::Result<i32, String> {
    values::int_in(v, -1, 65535).map(|p| p as i32)
}

fn host(v: &str) -> std::result::Result<String, String> {
    values::token(v).map_err(|_| "expected an IP address or host name".to_string())
}

impl Graphics {
    pub(crate) fn read(mut e: Elem) -> Result<Graphics> {
        let graphics_type = e.req_attr_with("type", values::keyword::<GraphicsType>)?;
        let mut display = super::DisplayOptions::read_attrs(&mut e, graphics_type)?;
        // VNC's legacy `socket` attribute: a socket listen, replacing a first address or
        // network listen, as libvirt reads it
        let socket_attr = if graphics_type == GraphicsType::Vnc {
            e.attr_with("socket", values::abs_path)?
        } else {
            None
        };
        let networked = matches!(graphics_type, GraphicsType::Vnc | GraphicsType::Spice);
        let port = e.attr_with("port", port_number)?;
        let tls_port = if graphics_type == GraphicsType::Spice {
            e.attr_with("tlsPort", port_number)?
        } else {
            None
        };
        let autoport = e.attr_with("autoport", values::yes_no)?;
        let websocket = if graphics_type == GraphicsType::Vnc {
            e.attr_with("websocket", port_number)?
        } else {
            None
        };
        let listen = e.attr_with("listen", host)?;
        let keymap = e.attr_with("keymap", values::token)?;
        let passwd = e.attr_string("passwd");
        let mut listens = Vec::new();
        e.each("listen", |mut l| {
            let listen_type = l.req_attr_with("type", values::keyword::<ListenType>)?;
            let mut gl = GraphicsListen {
                listen_type,
                address: None,
                network: None,
                socket: None,
            };
            match listen_type {
                ListenType::Address => gl.address = l.attr_with("address", host)?,
                ListenType::Network => {
                    gl.network = Some(l.req_attr_with("network", values::non_empty)?);
                    gl.address = l.attr_with("address", host)?;
                }
                ListenType::Socket => gl.socket = l.attr_with("socket", values::abs_path)?,
                ListenType::None => {}
            }
            l.finish()?;
            listens.push(gl);
            Ok(())
        })?;
        if let Some(s) = socket_attr {
            let l = GraphicsListen {
                listen_type: ListenType::Socket,
                address: None,
                network: None,
                socket: Some(s),
            };
            match listens.first_mut() {
                None => listens.push(l),
                Some(first)
                    if matches!(first.listen_type, ListenType::Address | ListenType::Network) =>
                {
                    *first = l
                }
                Some(_) => {}
            }
        }
        display.read_children(&mut e, graphics_type)?;
        let (image_compression, spice) = if graphics_type == GraphicsType::Spice {
            (
                e.child_attr_with("image", "compression", values::keyword::<ImageCompression>)?,
                SpiceOptions::read(&mut e)?,
            )
        } else {
            (None, SpiceOptions::default())
        };
        let first_address = listens
            .iter()
            .find(|l| l.listen_type == ListenType::Address)
            .and_then(|l| l.address.as_deref());
        if let (Some(attr), Some(first)) = (&listen, first_address)
            && attr != first
        {
            return Err(e.attr_invalid(
                "listen",
                attr,
                format!("does not match the first <listen> address '{first}'"),
            ));
        }
        if !networked && let Some(l) = listens.first() {
            return Err(XmlError::invalid(
                format!("{}/listen/@type", e.path()),
                l.listen_type.as_str(),
                format!("a {graphics_type} display does not listen"),
            ));
        }
        e.finish()?;
        Ok(Graphics {
            graphics_type,
            port,
            tls_port,
            autoport,
            websocket,
            listen,
            keymap,
            passwd,
            listens,
            image_compression,
            spice,
            display,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer, secure: bool) {
        w.start("graphics");
        w.attr("type", self.graphics_type.as_str());
        // libvirt names a VNC socket on the element too
        if let Some(first) = self.listens.first()
            && self.graphics_type == GraphicsType::Vnc
            && first.listen_type == ListenType::Socket
        {
            w.attr_opt("socket", first.socket.as_deref());
        }
        w.attr_num_opt("port", self.port);
        w.attr_num_opt("tlsPort", self.tls_port);
        w.attr_opt("autoport", self.autoport.map(values::yes_no_str));
        w.attr_num_opt("websocket", self.websocket);
        w.attr_opt("listen", self.listen.as_deref());
        w.attr_opt("keymap", self.keymap.as_deref());
        self.display.write_attrs(w);
        w.attr_opt("defaultMode", self.spice.default_mode.map(|m| m.as_str()));
        if secure {
            w.attr_opt("passwd", self.passwd.as_deref());
        }
        self.display.write_gl(w, self.graphics_type);
        for l in &self.listens {
            w.start("listen");
            w.attr("type", l.listen_type.as_str());
            w.attr_opt("address", l.address.as_deref());
            w.attr_opt("network", l.network.as_deref());
            w.attr_opt("socket", l.socket.as_deref());
            w.end();
        }
        self.spice.write_channels(w);
        if let Some(c) = self.image_compression {
            w.leaf_attr("image", "compression", c.as_str());
        }
        self.spice.write_rest(w);
        if self.graphics_type == GraphicsType::Vnc {
            self.display.write_audio(w);
        }
        w.end();
    }
}
