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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sound {
    pub model: SoundModel,
    /// `<audio id=...>`: which host backend plays this card.
    pub audio_id: Option<u32>,
    pub info: DeviceInfo,
}

impl Sound {
    pub(crate) fn read(mut e: Elem) -> Result<Sound, XmlError> {
        let model = e.req_attr_with("model", values::keyword::<SoundModel>)?;
        let audio_id = e.child_attr_with("audio", "id", values::u32_pos)?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Sound {
            model,
            audio_id,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("sound");
        w.attr("model", self.model.as_str());
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audio {
    pub id: Option<u32>,
    pub audio_type: AudioType,
}

impl Audio {
    pub(crate) fn read(mut e: Elem) -> Result<Audio, XmlError> {
        let id = e.attr_with("id", values::u32_pos)?;
        let audio_type = e.req_attr_with("type", values::keyword::<AudioType>)?;
        e.finish()?;
        Ok(Audio { id, audio_type })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("audio");
        w.attr_num_opt("id", self.id);
        w.attr("type", self.audio_type.as_str());
        w.end();
    }
}
