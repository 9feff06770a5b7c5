//! `<video>`: emulated display adapters.

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum VideoType {
        Vga = "vga",
        Cirrus = "cirrus",
        Vmvga = "vmvga",
        Xen = "xen",
        Vbox = "vbox",
        Qxl = "qxl",
        Virtio = "virtio",
        Gop = "gop",
        Bochs = "bochs",
        Ramfb = "ramfb",
        None = "none",
    }
}

/// `<model>`; memory sizes are in KiB as libvirt writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoModel {
    pub model_type: VideoType,
    pub ram: Option<u32>,
    pub vram: Option<u32>,
    pub vram64: Option<u32>,
    pub vgamem: Option<u32>,
    pub heads: Option<u32>,
    pub primary: Option<bool>,
}

/// `<model><acceleration>`: 3D (virgl) and 2D acceleration and the host render node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoAccel {
    pub accel3d: Option<bool>,
    pub accel2d: Option<bool>,
    pub rendernode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Left to the hypervisor driver's default when absent.
    pub model: Option<VideoModel>,
    /// The model's `<acceleration>`, kept beside it so that the model stays `Copy`.
    pub acceleration: Option<VideoAccel>,
    pub info: DeviceInfo,
}

impl VideoModel {
    /// A model of type `t` with no sizes set.
    pub fn of(t: VideoType) -> VideoModel {
        VideoModel {
            model_type: t,
            ram: None,
            vram: None,
            vram64: None,
            vgamem: None,
            heads: None,
            primary: None,
        }
    }
}

impl Video {
    pub(crate) fn read(mut e: Elem) -> Result<Video, XmlError> {
        let mut acceleration = None;
        let model = match e.child("model")? {
            None => None,
            Some(mut m) => {
                if let Some(mut a) = m.child("acceleration")? {
                    acceleration = Some(VideoAccel {
                        accel3d: a.attr_with("accel3d", values::yes_no)?,
                        accel2d: a.attr_with("accel2d", values::yes_no)?,
                        rendernode: a.attr("rendernode").map(str::to_owned),
                    });
                    a.finish()?;
                }
                let vm = VideoModel {
                    model_type: m.req_attr_with("type", values::keyword::<VideoType>)?,
                    ram: m.attr_with("ram", values::u32_any)?,
                    vram: m.attr_with("vram", values::u32_any)?,
                    vram64: m.attr_with("vram64", values::u32_any)?,
                    vgamem: m.attr_with("vgamem", values::u32_any)?,
                    heads: m.attr_with("heads", values::u32_pos)?,
                    primary: m.attr_with("primary", values::yes_no)?,
                };
                m.finish()?;
                Some(vm)
            }
        };
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Video {
            model,
            acceleration,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("video");
        if let Some(m) = &self.model {
            w.start("model");
            w.attr("type", m.model_type.as_str());
            w.attr_num_opt("ram", m.ram);
            w.attr_num_opt("vram", m.vram);
            w.attr_num_opt("vram64", m.vram64);
            w.attr_num_opt("vgamem", m.vgamem);
            w.attr_num_opt("heads", m.heads);
            w.attr_opt("primary", m.primary.map(values::yes_no_str));
            if let Some(a) = &self.acceleration {
                w.start("acceleration");
                w.attr_opt("accel3d", a.accel3d.map(values::yes_no_str));
                w.attr_opt("accel2d", a.accel2d.map(values::yes_no_str));
                w.attr_opt("rendernode", a.rendernode.as_deref());
                w.end();
            }
            w.end();
        }
        self.info.write(w);
        w.end();
    }
}

/// Add `v` to `videos` as libvirt does: the one marked primary goes first, and only one may
/// be marked.
pub(crate) fn place(
    videos: &mut Vec<Video>,
    v: Video,
    node: roxmltree::Node,
) -> Result<(), XmlError> {
    let primary = |v: &Video| v.model.is_some_and(|m| m.primary == Some(true));
    if !primary(&v) {
        videos.push(v);
        return Ok(());
    }
    if videos.iter().any(primary) {
        return Err(XmlError::invalid(
            format!("{}/model/@primary", crate::model::xml::node_path(node)),
            "yes",
            "only one primary video device is supported",
        ));
    }
    videos.insert(0, v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::DomainDef;

    fn models(devices: &str) -> Result<Vec<String>, String> {
        let xml = format!(
            "<domain type='qemu'><name>t</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{devices}</devices></domain>"
        );
        let d = DomainDef::from_xml(&xml).map_err(|e| e.to_string())?;
        Ok(d.devices
            .videos
            .iter()
            .map(|v| {
                v.model
                    .map(|m| format!("{}/{:?}", m.model_type, m.heads))
                    .unwrap_or_default()
            })
            .collect())
    }

    /// libvirt's video-qxl-heads: the primary video moves to the front.
    #[test]
    fn primary_goes_first() {
        let got = models(
            "<video><model type='qxl' heads='3'/></video><video><model type='qxl' heads='7'/>\
             </video><video><model type='qxl' heads='1' primary='yes'/></video>",
        )
        .expect("parses");
        assert_eq!(got, ["qxl/Some(1)", "qxl/Some(3)", "qxl/Some(7)"]);
        let two = models(
            "<video><model type='qxl' primary='yes'/></video>\
             <video><model type='vga' primary='yes'/></video>",
        );
        assert!(
            two.as_ref()
                .is_err_and(|e| e.contains("only one primary video device")),
            "{two:?}"
        );
    }
}
