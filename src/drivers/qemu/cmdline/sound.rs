//! `<audio>` backends as `-audiodev` and `<sound>` cards as devices, as libvirt writes
//! them: HD audio controllers get their codecs (a duplex one when none is named) as
//! `hda-*` devices on the controller's bus, the PC speaker is a machine property.

use super::{Builder, CmdlineError, Result, alias, esc, pci_addr, unsupported};
use crate::model::{
    AddressType, DomainDef,
    devices::{AudioType, ControllerType, GraphicsType, SoundCodec, SoundModel},
};

/// The QEMU id of `<audio>` number `i` (its `id`, else its position from 1).
fn audio_qemu_id(def: &DomainDef, i: usize) -> String {
    let id = def.devices.audios[i].id.unwrap_or(i as u32 + 1);
    format!("audio{id}")
}

/// The audiodev a sound card plays through: the `<audio id>` it names, else the first.
fn audiodev_of(def: &DomainDef, audio_id: Option<u32>, what: &str) -> Result<Option<String>> {
    let audios = &def.devices.audios;
    match audio_id {
        None => Ok((!audios.is_empty()).then(|| audio_qemu_id(def, 0))),
        Some(want) => audios
            .iter()
            .enumerate()
            .position(|(i, a)| a.id.unwrap_or(i as u32 + 1) == want)
            .map(|i| Some(audio_qemu_id(def, i)))
            .ok_or_else(|| {
                CmdlineError::Invalid(format!("{what}: <audio id='{want}'> names no <audio>"))
            }),
    }
}

/// The audiodev of `<audio id='id'>`, which must exist.
pub(super) fn audiodev_named(def: &DomainDef, id: u32, what: &str) -> Result<String> {
    Ok(audiodev_of(def, Some(id), what)?.unwrap_or_default())
}

/// `-machine` properties for the sound cards: the PC speaker's audiodev.
pub(super) fn machine_props(def: &DomainDef) -> Result<String> {
    let mut speakers = def
        .devices
        .sounds
        .iter()
        .filter(|s| s.model == SoundModel::Pcspk);
    let Some(s) = speakers.next() else {
        return Ok(String::new());
    };
    if speakers.next().is_some() {
        return unsupported("more than one <sound model='pcspk'> (a PC has one speaker)");
    }
    Ok(audiodev_of(def, s.audio_id, "<sound model='pcspk'>")?
        .map(|a| format!(",pcspk-audiodev={a}"))
        .unwrap_or_default())
}

/// One `-audiodev` per `<audio>`.
pub(super) fn audiodevs(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    for (i, a) in def.devices.audios.iter().enumerate() {
        let what = format!("<audio type='{}'>", a.audio_type);
        let driver = match a.audio_type {
            AudioType::None => "none",
            AudioType::Alsa => "alsa",
            AudioType::Pulseaudio => "pa",
            AudioType::Sdl => "sdl",
            AudioType::Oss => "oss",
            AudioType::Jack => "jack",
            AudioType::File => "wav",
            AudioType::Dbus => "dbus",
            // SPICE carries the sound to its client; QEMU refuses it without a SPICE display
            AudioType::Spice => {
                if !def
                    .devices
                    .graphics
                    .iter()
                    .any(|g| g.graphics_type == GraphicsType::Spice)
                {
                    return unsupported(format!("{what} without SPICE graphics"));
                }
                "spice"
            }
            AudioType::Coreaudio => return unsupported(format!("{what}: a macOS backend")),
            AudioType::Pipewire => {
                return unsupported(format!("{what}: QEMU 7.2 has no PipeWire backend"));
            }
        };
        let mut s = format!("{driver},id={}", audio_qemu_id(def, i));
        if let Some(p) = &a.path {
            s.push_str(&format!(",path={}", esc(p)));
        }
        s.push_str(&a.opts.qemu_props());
        b.arg("-audiodev", s);
    }
    Ok(())
}

/// The environment SDL audio backends ask for (`SDL_AUDIODRIVER`), as libvirt sets it.
pub(super) fn audio_env(def: &DomainDef) -> Vec<(String, String)> {
    def.devices
        .audios
        .iter()
        .filter_map(|a| a.opts.sdl_driver)
        .take(1)
        .map(|d| ("SDL_AUDIODRIVER".to_owned(), d.as_str().to_owned()))
        .collect()
}

/// A `-device` per sound card, and one per HD audio codec.
pub(super) fn sounds(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    for (i, s) in def.devices.sounds.iter().enumerate() {
        let what = format!("<sound model='{}'>", s.model);
        let id = alias(&s.info, format!("sound{i}"));
        let audiodev = audiodev_of(def, s.audio_id, &what)?;
        let dev = match s.model {
            // a -machine property, see `machine_props`
            SoundModel::Pcspk => {
                b.live.devices.sounds[i].info.alias = Some(id);
                continue;
            }
            SoundModel::Es1370 => "ES1370",
            SoundModel::Ac97 => "AC97",
            SoundModel::Ich6 => "intel-hda",
            SoundModel::Ich9 => "ich9-intel-hda",
            SoundModel::Sb16 => "sb16",
            SoundModel::Usb => "usb-audio",
            SoundModel::Ich7 => return unsupported(format!("{what}: QEMU has no ICH7 audio")),
        };
        b.need(dev, &what)?;
        let mut d = format!("{dev},id={id}");
        if !s.model.has_codecs()
            && let Some(a) = &audiodev
        {
            d.push_str(&format!(",audiodev={a}"));
        }
        match s.model {
            SoundModel::Sb16 => {
                if s.info.address.is_some() {
                    return unsupported(format!("{what}: an address on an ISA card"));
                }
            }
            SoundModel::Usb => d.push_str(&usb_port(def, s, &what)?),
            _ => d.push_str(&pci_addr(&s.info, &what)?),
        }
        b.device(d);
        if s.model.has_codecs() {
            let default = [SoundCodec::Duplex];
            let codecs = if s.codecs.is_empty() {
                &default[..]
            } else {
                &s.codecs[..]
            };
            for (cad, c) in codecs.iter().enumerate() {
                let mut d = format!("hda-{c},id={id}-codec{cad},bus={id}.0,cad={cad}");
                if let Some(a) = &audiodev {
                    d.push_str(&format!(",audiodev={a}"));
                }
                b.device(d);
            }
        }
        b.live.devices.sounds[i].info.alias = Some(id);
    }
    Ok(())
}

/// `,bus=usb.0` and the port of a `<address type='usb'>`, if any.
fn usb_port(def: &DomainDef, s: &crate::model::devices::Sound, what: &str) -> Result<String> {
    let has_usb =
        def.devices.controllers.iter().any(|c| {
            c.controller_type == ControllerType::Usb && c.model.as_deref() != Some("none")
        });
    if !has_usb {
        return unsupported(format!("{what}: no USB controller to plug it into"));
    }
    let mut out = String::from(",bus=usb.0");
    if let Some(a) = &s.info.address {
        if a.kind != AddressType::Usb || a.get("bus").is_some_and(|b| b != "0") {
            return unsupported(format!("{what}: an address other than on USB bus 0"));
        }
        if let Some(p) = a.get("port") {
            out.push_str(&format!(",port={p}"));
        }
    }
    Ok(out)
}
