//! SPICE's own `<graphics>` options: per-channel security, compression, streaming, the
//! clipboard, mouse mode, file transfer and OpenGL. Each is absent unless the definition
//! says it, as in libvirt, so QEMU's defaults apply.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// `<channel name>`: a SPICE channel.
    pub enum SpiceChannel {
        Main = "main",
        Display = "display",
        Inputs = "inputs",
        Cursor = "cursor",
        Playback = "playback",
        Record = "record",
        Smartcard = "smartcard",
        Usbredir = "usbredir",
    }
}

xml_enum! {
    /// `<channel mode>` and `defaultMode`: whether a channel needs TLS.
    pub enum SpiceChannelMode {
        Any = "any",
        Secure = "secure",
        Insecure = "insecure",
    }
}

xml_enum! {
    /// `<jpeg compression>` and `<zlib compression>` (WAN image compression).
    pub enum SpiceWanCompression {
        Auto = "auto",
        Never = "never",
        Always = "always",
    }
}

xml_enum! {
    /// `<streaming mode>`: video streaming detection.
    pub enum SpiceStreaming {
        Filter = "filter",
        All = "all",
        Off = "off",
    }
}

xml_enum! {
    /// `<mouse mode>`.
    pub enum SpiceMouseMode {
        Server = "server",
        Client = "client",
    }
}

/// `<gl enable rendernode>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiceGl {
    pub enable: bool,
    pub rendernode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpiceOptions {
    /// `defaultMode` of `<graphics>`.
    pub default_mode: Option<SpiceChannelMode>,
    /// `<channel>` modes, in libvirt's channel order (one per channel).
    pub channels: Vec<(SpiceChannel, SpiceChannelMode)>,
    pub jpeg: Option<SpiceWanCompression>,
    pub zlib: Option<SpiceWanCompression>,
    /// `<playback compression='on|off'>`.
    pub playback: Option<bool>,
    pub streaming: Option<SpiceStreaming>,
    pub mouse: Option<SpiceMouseMode>,
    /// `<clipboard copypaste='yes|no'>`.
    pub copypaste: Option<bool>,
    /// `<filetransfer enable='yes|no'>`.
    pub filetransfer: Option<bool>,
    pub gl: Option<SpiceGl>,
}

/// libvirt's order of SPICE channels.
const CHANNEL_ORDER: [SpiceChannel; 8] = [
    SpiceChannel::Main,
    SpiceChannel::Display,
    SpiceChannel::Inputs,
    SpiceChannel::Cursor,
    SpiceChannel::Playback,
    SpiceChannel::Record,
    SpiceChannel::Smartcard,
    SpiceChannel::Usbredir,
];

impl SpiceOptions {
    /// Reads the SPICE attributes and children of `<graphics type='spice'>` (not `<image>`,
    /// which the graphics reader owns).
    pub(crate) fn read(e: &mut Elem) -> Result<SpiceOptions> {
        let mut o = SpiceOptions {
            default_mode: e.attr_with("defaultMode", values::keyword::<SpiceChannelMode>)?,
            ..Default::default()
        };
        let mut channels: Vec<(SpiceChannel, SpiceChannelMode)> = Vec::new();
        e.each("channel", |mut c| {
            let name = c.req_attr_with("name", values::keyword::<SpiceChannel>)?;
            let mode = c.req_attr_with("mode", values::keyword::<SpiceChannelMode>)?;
            c.finish()?;
            // a channel named twice keeps the last mode, as libvirt does
            channels.retain(|(n, _)| *n != name);
            channels.push((name, mode));
            Ok(())
        })?;
        // "any" is the default and libvirt does not write it
        channels.retain(|(_, m)| *m != SpiceChannelMode::Any);
        channels.sort_by_key(|(n, _)| CHANNEL_ORDER.iter().position(|c| c == n));
        o.channels = channels;
        o.jpeg = e.child_attr_with("jpeg", "compression", values::keyword)?;
        o.zlib = e.child_attr_with("zlib", "compression", values::keyword)?;
        o.playback = e.child_attr_with("playback", "compression", values::on_off)?;
        o.streaming = e.child_attr_with("streaming", "mode", values::keyword)?;
        o.copypaste = e.child_attr_with("clipboard", "copypaste", values::yes_no)?;
        o.filetransfer = e.child_attr_with("filetransfer", "enable", values::yes_no)?;
        o.mouse = e.child_attr_with("mouse", "mode", values::keyword)?;
        if let Some(mut g) = e.child("gl")? {
            let enable = g.req_attr_with("enable", values::yes_no)?;
            let rendernode = g.attr_with("rendernode", values::abs_path)?;
            g.finish()?;
            o.gl = Some(SpiceGl { enable, rendernode });
        }
        if o.default_mode == Some(SpiceChannelMode::Any) {
            o.default_mode = None;
        }
        Ok(o)
    }

    /// `<channel>` elements, which come before `<image>`.
    pub(crate) fn write_channels(&self, w: &mut Writer) {
        for (name, mode) in &self.channels {
            w.start("channel");
            w.attr("name", name.as_str());
            w.attr("mode", mode.as_str());
            w.end();
        }
    }

    /// The elements after `<image>`, in libvirt's order.
    pub(crate) fn write_rest(&self, w: &mut Writer) {
        if let Some(c) = self.jpeg {
            w.leaf_attr("jpeg", "compression", c.as_str());
        }
        if let Some(c) = self.zlib {
            w.leaf_attr("zlib", "compression", c.as_str());
        }
        if let Some(p) = self.playback {
            w.leaf_attr("playback", "compression", values::on_off_str(p));
        }
        if let Some(s) = self.streaming {
            w.leaf_attr("streaming", "mode", s.as_str());
        }
        if let Some(m) = self.mouse {
            w.leaf_attr("mouse", "mode", m.as_str());
        }
        if let Some(c) = self.copypaste {
            w.leaf_attr("clipboard", "copypaste", values::yes_no_str(c));
        }
        if let Some(f) = self.filetransfer {
            w.leaf_attr("filetransfer", "enable", values::yes_no_str(f));
        }
        if let Some(g) = &self.gl {
            w.start("gl");
            w.attr("enable", values::yes_no_str(g.enable));
            w.attr_opt("rendernode", g.rendernode.as_deref());
            w.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{DomainDef, defaults};

    fn graphics_xml(graphics: &str, with_defaults: bool) -> Result<String, String> {
        let xml = format!(
            "<domain type='qemu'><name>t</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{graphics}</devices></domain>"
        );
        let mut d = DomainDef::from_xml(&xml).map_err(|e| e.to_string())?;
        if with_defaults {
            defaults::after_driver(&mut d).map_err(|e| e.to_string())?;
        }
        let out = d.to_xml(&Default::default());
        let start = out.find("<graphics").unwrap_or(0);
        let end = out.find("</graphics>").map_or(out.len(), |e| e + 11);
        Ok(out[start..end]
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(""))
    }

    /// Every option, given out of order, comes back in libvirt's order; 'any' modes are
    /// libvirt's default and not written.
    #[test]
    fn round_trip_in_libvirt_order() {
        let got = graphics_xml(
            "<graphics type='spice' autoport='yes' defaultMode='insecure'>\
             <gl enable='no'/><filetransfer enable='no'/><clipboard copypaste='yes'/>\
             <mouse mode='client'/><streaming mode='all'/><playback compression='off'/>\
             <zlib compression='never'/><jpeg compression='always'/><image compression='glz'/>\
             <channel name='usbredir' mode='insecure'/><channel name='main' mode='insecure'/>\
             <channel name='cursor' mode='any'/></graphics>",
            false,
        )
        .expect("parses");
        assert_eq!(
            got,
            "<graphics type='spice' autoport='yes' defaultMode='insecure'>\
             <channel name='main' mode='insecure'/><channel name='usbredir' mode='insecure'/>\
             <image compression='glz'/><jpeg compression='always'/><zlib compression='never'/>\
             <playback compression='off'/><streaming mode='all'/><mouse mode='client'/>\
             <clipboard copypaste='yes'/><filetransfer enable='no'/><gl enable='no'/>\
             </graphics>"
        );
    }

    /// libvirt's post-parse: SPICE with no ports and no autoport listens nowhere.
    #[test]
    fn no_ports_means_listen_none() {
        for given in [
            "<graphics type='spice'/>",
            "<graphics type='spice' listen='127.0.0.1'/>",
            "<graphics type='spice' autoport='no'><listen type='address'/></graphics>",
            "<graphics type='spice' autoport='yes'><listen type='none'/></graphics>",
        ] {
            assert_eq!(
                graphics_xml(given, true).expect("parses"),
                "<graphics type='spice'><listen type='none'/></graphics>",
                "{given}"
            );
        }
        // an automatic port keeps its address listen
        let auto = graphics_xml("<graphics type='spice' autoport='yes'/>", true).expect("parses");
        assert_eq!(
            auto,
            "<graphics type='spice' autoport='yes'><listen type='address'/></graphics>"
        );
    }

    #[test]
    fn bad_options_are_named() {
        for (given, want) in [
            (
                "<graphics type='spice'><jpeg compression='default'/></graphics>",
                "jpeg/@compression",
            ),
            (
                "<graphics type='spice'><channel name='video' mode='secure'/></graphics>",
                "@name",
            ),
            (
                "<graphics type='spice'><channel name='main'/></graphics>",
                "mode",
            ),
            (
                "<graphics type='spice'><mouse mode='default'/></graphics>",
                "mouse/@mode",
            ),
            (
                "<graphics type='spice'><gl rendernode='/dev/dri/x'/></graphics>",
                "enable",
            ),
            (
                "<graphics type='vnc'><clipboard copypaste='no'/></graphics>",
                "clipboard",
            ),
        ] {
            match graphics_xml(given, false) {
                Ok(x) => panic!("{given} parsed: {x}"),
                Err(e) => assert!(e.contains(want), "{given}: '{e}' does not name '{want}'"),
            }
        }
    }
}
