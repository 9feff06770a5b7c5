//! `<sound>` (emulated sound cards) and `<audio>` (host audio backends).

use crate::model::address::DeviceInfo;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum SoundModel {
        Sb16 = "sb16",
        Es1370 = "es1370",
        Pcspk = "pcspk",
        Ac97 = "ac97",
        Ich6 = "ich6",
        Ich7 = "ich7",
        Ich9 = "ich9",
        Usb = "usb",
    }
}

xml_enum! {
    pub enum AudioType {
        None = "none",
        Alsa = "alsa",
        Coreaudio = "coreaudio",
        Jack = "jack",
        Oss = "oss",
        Pulseaudio = "pulseaudio",
        Sdl = "sdl",
        Spice = "spice",
        File = "file",
        Dbus = "dbus",
        Pipewire = "pipewire",
    }
}

xml_enum! {
    /// An HD audio codec on an `ich6`/`ich9` controller.
    pub enum SoundCodec {
        Duplex = "duplex",
        Micro = "micro",
        Output = "output",
    }
}

impl SoundModel {
    /// HD audio controllers, which take `<codec>`s (a duplex one when none is named).
    pub fn has_codecs(self) -> bool {
        matches!(self, SoundModel::Ich6 | SoundModel::Ich7 | SoundModel::Ich9)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sound {
    pub model: SoundModel,
    /// In order; QEMU's codec address (`cad`) is the position.
    pub codecs: Vec<SoundCodec>,
    /// `<audio id=...>`: which host backend plays this card.
    pub audio_id: Option<u32>,
    pub info: DeviceInfo,
}

impl Sound {
    pub(crate) fn read(mut e: Elem) -> Result<Sound, XmlError> {
        let model = e.req_attr_with("model", values::keyword::<SoundModel>)?;
        let mut codecs = Vec::new();
        if model.has_codecs() {
            e.each("codec", |mut c| {
                codecs.push(c.req_attr_with("type", values::keyword::<SoundCodec>)?);
                c.finish()
            })?;
        }
        let audio_id = e.child_attr_with("audio", "id", values::u32_pos)?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Sound {
            model,
            codecs,
            audio_id,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("sound");
        w.attr("model", self.model.as_str());
        for c in &self.codecs {
            w.leaf_attr("codec", "type", c.as_str());
        }
        if let Some(id) = self.audio_id {
            w.start("audio");
            w.attr_num("id", id);
            w.end();
        }
        self.info.write(w);
        w.end();
    }
}

/// `<audio id=.. type=..>`; libvirt adds one whenever graphics exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub id: Option<u32>,
    pub audio_type: AudioType,
    /// The WAV file of a `file` backend.
    pub path: Option<String>,
    /// Timer, backend attributes and stream settings.
    pub opts: super::AudioOptions,
}

impl Audio {
    pub(crate) fn read(mut e: Elem) -> Result<Audio, XmlError> {
        let id = e.attr_with("id", values::u32_pos)?;
        let audio_type = e.req_attr_with("type", values::keyword::<AudioType>)?;
        // other backends' attributes stay unread and are reported unknown
        let path = match audio_type {
            AudioType::File => e.attr_with("path", values::non_empty)?,
            _ => None,
        };
        let opts = super::AudioOptions::read(&mut e, audio_type)?;
        e.finish()?;
        Ok(Audio {
            id,
            audio_type,
            path,
            opts,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("audio");
        w.attr_num_opt("id", self.id);
        w.attr("type", self.audio_type.as_str());
        self.opts.write_timer(w);
        self.opts.write_backend_attrs(w);
        w.attr_opt("path", self.path.as_deref());
        self.opts.write_children(w);
        w.end();
    }
}
