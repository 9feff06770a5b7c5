//! The parts of `<graphics>` beyond VNC's and SPICE's network listeners: local displays
//! (`sdl`, `egl-headless`, `dbus`) with their OpenGL settings, VNC's legacy `socket`
//! attribute, share policy and power control, and the `<audio>` a display carries.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

use super::GraphicsType;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// VNC's `sharePolicy`: how concurrent clients share the display.
    pub enum VncSharePolicy {
        AllowExclusive = "allow-exclusive",
        ForceShared = "force-shared",
        Ignore = "ignore",
    }
}

/// `<gl enable rendernode>` of an `sdl`, `dbus` or `egl-headless` display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayGl {
    pub enable: Option<bool>,
    /// DRM render node (`/dev/dri/renderD128`).
    pub rendernode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisplayOptions {
    pub share_policy: Option<VncSharePolicy>,
    /// VNC: let clients power the guest off or reset it.
    pub power_control: Option<bool>,
    /// SDL: the X display and its authority file.
    pub x_display: Option<String>,
    pub xauth: Option<String>,
    pub fullscreen: bool,
    /// D-Bus: serve a peer-to-peer connection handed over by the management layer.
    pub p2p: bool,
    /// D-Bus: the bus address to register on.
    pub address: Option<String>,
    pub gl: Option<DisplayGl>,
    /// VNC, D-Bus: the `<audio id>` whose sound the display carries.
    pub audio_id: Option<u32>,
}

impl DisplayOptions {
    /// The attributes `<graphics>` of type `t` takes here (called right after its `type`).
    pub(crate) fn read_attrs(e: &mut Elem, t: GraphicsType) -> Result<DisplayOptions> {
        let mut d = DisplayOptions::default();
        match t {
            GraphicsType::Vnc => {
                d.share_policy = e.attr_with("sharePolicy", values::keyword::<VncSharePolicy>)?;
                d.power_control = e.attr_with("powerControl", values::yes_no)?;
            }
            GraphicsType::Sdl => {
                d.x_display = e.attr_with("display", values::non_empty)?;
                d.xauth = e.attr_with("xauth", values::abs_path)?;
                d.fullscreen = e.attr_with("fullscreen", values::yes_no)?.unwrap_or(false);
            }
            GraphicsType::Dbus => {
                d.p2p = e.attr_with("p2p", values::yes_no)?.unwrap_or(false);
                d.address = e.attr_with("address", values::non_empty)?;
                if d.p2p && d.address.is_some() {
                    return Err(e.attr_invalid(
                        "address",
                        d.address.as_deref().unwrap_or_default(),
                        "p2p='yes' and an address exclude each other",
                    ));
                }
            }
            GraphicsType::Spice | GraphicsType::EglHeadless => {}
        }
        Ok(d)
    }

    /// The children `<graphics>` of type `t` takes here: `<gl>` and `<audio>`.
    pub(crate) fn read_children(&mut self, e: &mut Elem, t: GraphicsType) -> Result<()> {
        if matches!(
            t,
            GraphicsType::Sdl | GraphicsType::Dbus | GraphicsType::EglHeadless
        ) && let Some(mut g) = e.child("gl")?
        {
            let gl = DisplayGl {
                enable: if t == GraphicsType::EglHeadless {
                    None
                } else {
                    Some(g.req_attr_with("enable", values::yes_no)?)
                },
                rendernode: if t == GraphicsType::Sdl {
                    None
                } else {
                    g.attr_with("rendernode", values::abs_path)?
                },
            };
            g.finish()?;
            self.gl = Some(gl);
        }
        if matches!(t, GraphicsType::Vnc | GraphicsType::Dbus) {
            self.audio_id = e.child_attr_with("audio", "id", values::u32_pos)?;
        }
        Ok(())
    }

    /// Attributes after `keymap`, in libvirt's order.
    pub(crate) fn write_attrs(&self, w: &mut Writer) {
        w.attr_opt("sharePolicy", self.share_policy.map(|p| p.as_str()));
        w.attr_opt("powerControl", self.power_control.map(values::yes_no_str));
        w.attr_opt("display", self.x_display.as_deref());
        w.attr_opt("xauth", self.xauth.as_deref());
        if self.fullscreen {
            w.attr("fullscreen", "yes");
        }
        if self.p2p {
            w.attr("p2p", "yes");
        }
        w.attr_opt("address", self.address.as_deref());
    }

    /// `<gl>` (and D-Bus's `<audio>`), before any `<listen>`.
    pub(crate) fn write_gl(&self, w: &mut Writer, t: GraphicsType) {
        if let Some(g) = &self.gl {
            w.start("gl");
            w.attr_opt("enable", g.enable.map(values::yes_no_str));
            w.attr_opt("rendernode", g.rendernode.as_deref());
            w.end();
        }
        if t == GraphicsType::Dbus {
            self.write_audio(w);
        }
    }

    /// `<audio id>`: after the listens for VNC.
    pub(crate) fn write_audio(&self, w: &mut Writer) {
        if let Some(id) = self.audio_id {
            w.start("audio");
            w.attr_num("id", id);
            w.end();
        }
    }
}
