//! The tuning of an `<audio>` backend: `timerPeriod`, the backend's own attributes, and
//! `<input>`/`<output>` stream settings. Which attributes exist depends on the backend
//! type, as in libvirt's schema; others are refused as unknown.

use super::AudioType;
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// Sample format of `<settings format>`.
    pub enum AudioFormat {
        U8 = "u8",
        S8 = "s8",
        U16 = "u16",
        S16 = "s16",
        U32 = "u32",
        S32 = "s32",
        F32 = "f32",
    }
}

xml_enum! {
    /// SDL's own audio driver (`<audio type='sdl' driver>`), passed as `SDL_AUDIODRIVER`.
    pub enum SdlDriver {
        Esd = "esd",
        Alsa = "alsa",
        Arts = "arts",
        Pulseaudio = "pulseaudio",
    }
}

/// One direction (`<input>` or `<output>`) of an audio backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioIo {
    pub mixing_engine: Option<bool>,
    pub fixed_settings: Option<bool>,
    pub voices: Option<u32>,
    /// Microseconds.
    pub buffer_length: Option<u32>,
    /// `<settings>`, which libvirt keeps only with `fixedSettings='yes'`.
    pub frequency: Option<u32>,
    pub channels: Option<u32>,
    pub format: Option<AudioFormat>,
    /// alsa, oss: host device.
    pub dev: Option<String>,
    /// coreaudio, oss, sdl.
    pub buffer_count: Option<u32>,
    /// oss.
    pub try_poll: Option<bool>,
    /// jack.
    pub server_name: Option<String>,
    pub client_name: Option<String>,
    pub connect_ports: Option<String>,
    pub exact_name: Option<bool>,
    /// pulseaudio: sink/source name, stream name and latency (microseconds).
    pub name: Option<String>,
    pub stream_name: Option<String>,
    pub latency: Option<u32>,
}

/// Everything of `<audio>` beyond its id, type and file path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioOptions {
    /// Microseconds between timer ticks.
    pub timer_period: Option<u32>,
    /// oss.
    pub try_mmap: Option<bool>,
    pub exclusive: Option<bool>,
    pub dsp_policy: Option<i32>,
    /// pulseaudio: the server to connect to.
    pub server_name: Option<String>,
    /// sdl.
    pub sdl_driver: Option<SdlDriver>,
    pub input: Option<AudioIo>,
    pub output: Option<AudioIo>,
}

impl AudioIo {
    fn read(mut e: Elem, t: AudioType) -> Result<AudioIo> {
        let mut io = AudioIo {
            mixing_engine: e.attr_with("mixingEngine", values::yes_no)?,
            fixed_settings: e.attr_with("fixedSettings", values::yes_no)?,
            voices: e.attr_with("voices", values::u32_pos)?,
            buffer_length: e.attr_with("bufferLength", values::u32_pos)?,
            ..Default::default()
        };
        match t {
            AudioType::Alsa => io.dev = e.attr_with("dev", values::abs_path)?,
            AudioType::Coreaudio | AudioType::Sdl => {
                io.buffer_count = e.attr_with("bufferCount", values::u32_pos)?;
            }
            AudioType::Oss => {
                io.dev = e.attr_with("dev", values::abs_path)?;
                io.buffer_count = e.attr_with("bufferCount", values::u32_pos)?;
                io.try_poll = e.attr_with("tryPoll", values::yes_no)?;
            }
            AudioType::Jack => {
                io.server_name = e.attr_with("serverName", values::non_empty)?;
                io.client_name = e.attr_with("clientName", values::non_empty)?;
                io.connect_ports = e.attr_with("connectPorts", values::non_empty)?;
                io.exact_name = e.attr_with("exactName", values::yes_no)?;
            }
            AudioType::Pulseaudio | AudioType::Pipewire => {
                io.name = e.attr_with("name", values::non_empty)?;
                io.stream_name = e.attr_with("streamName", values::non_empty)?;
                io.latency = e.attr_with("latency", values::u32_pos)?;
            }
            _ => {}
        }
        if let Some(mut s) = e.child("settings")? {
            if io.fixed_settings != Some(true) {
                return Err(s.invalid("", "<settings> needs fixedSettings='yes'"));
            }
            io.frequency = s.attr_with("frequency", values::u32_pos)?;
            io.channels = s.attr_with("channels", values::u32_pos)?;
            io.format = s.attr_with("format", values::keyword::<AudioFormat>)?;
            s.finish()?;
        }
        e.finish()?;
        Ok(io)
    }

    fn write(&self, w: &mut Writer, name: &'static str) {
        let yn = |b: Option<bool>| b.map(values::yes_no_str);
        w.start(name);
        w.attr_opt("mixingEngine", yn(self.mixing_engine));
        w.attr_opt("fixedSettings", yn(self.fixed_settings));
        w.attr_num_opt("voices", self.voices);
        w.attr_num_opt("bufferLength", self.buffer_length);
        w.attr_opt("dev", self.dev.as_deref());
        w.attr_num_opt("bufferCount", self.buffer_count);
        w.attr_opt("tryPoll", yn(self.try_poll));
        w.attr_opt("serverName", self.server_name.as_deref());
        w.attr_opt("clientName", self.client_name.as_deref());
        w.attr_opt("connectPorts", self.connect_ports.as_deref());
        w.attr_opt("exactName", yn(self.exact_name));
        w.attr_opt("name", self.name.as_deref());
        w.attr_opt("streamName", self.stream_name.as_deref());
        w.attr_num_opt("latency", self.latency);
        if self.fixed_settings == Some(true) {
            w.start("settings");
            w.attr_num_opt("frequency", self.frequency);
            w.attr_num_opt("channels", self.channels);
            w.attr_opt("format", self.format.map(|f| f.as_str()));
            w.end();
        }
        w.end();
    }

    /// QEMU `-audiodev` properties under `prefix` (`in.` or `out.`), in libvirt's order.
    pub fn qemu_props(&self, prefix: &str) -> String {
        let on = |b: bool| values::on_off_str(b);
        let mut v: Vec<(&str, String)> = Vec::new();
        if let Some(b) = self.mixing_engine {
            v.push(("mixing-engine", on(b).into()));
        }
        if let Some(b) = self.fixed_settings {
            v.push(("fixed-settings", on(b).into()));
        }
        let nums = [
            ("voices", self.voices),
            ("buffer-length", self.buffer_length),
        ];
        v.extend(
            nums.iter()
                .filter_map(|(k, n)| n.map(|n| (*k, n.to_string()))),
        );
        if self.fixed_settings == Some(true) {
            if let Some(f) = self.frequency {
                v.push(("frequency", f.to_string()));
            }
            if let Some(c) = self.channels {
                v.push(("channels", c.to_string()));
            }
            if let Some(f) = self.format {
                v.push(("format", f.as_str().into()));
            }
        }
        let strs = [
            ("dev", &self.dev),
            ("server-name", &self.server_name),
            ("client-name", &self.client_name),
            ("connect-ports", &self.connect_ports),
            ("name", &self.name),
            ("stream-name", &self.stream_name),
        ];
        for (k, s) in strs {
            if let Some(s) = s {
                v.push((k, s.replace(',', ",,")));
            }
        }
        if let Some(n) = self.buffer_count {
            v.push(("buffer-count", n.to_string()));
        }
        if let Some(b) = self.try_poll {
            v.push(("try-poll", on(b).into()));
        }
        if let Some(b) = self.exact_name {
            v.push(("exact-name", on(b).into()));
        }
        if let Some(n) = self.latency {
            v.push(("latency", n.to_string()));
        }
        v.iter()
            .map(|(k, val)| format!(",{prefix}{k}={val}"))
            .collect()
    }
}

impl AudioOptions {
    /// Reads the tuning of an `<audio>` of type `t` (its id, type and path already taken).
    pub(crate) fn read(e: &mut Elem, t: AudioType) -> Result<AudioOptions> {
        let mut o = AudioOptions {
            timer_period: e.attr_with("timerPeriod", values::u32_pos)?,
            ..Default::default()
        };
        match t {
            AudioType::Oss => {
                o.try_mmap = e.attr_with("tryMMap", values::yes_no)?;
                o.exclusive = e.attr_with("exclusive", values::yes_no)?;
                o.dsp_policy = e.attr_with("dspPolicy", |v| {
                    values::int_in(v, 0, i32::MAX.into()).map(|n| n as i32)
                })?;
            }
            AudioType::Pulseaudio => {
                o.server_name = e.attr_with("serverName", values::non_empty)?;
            }
            AudioType::Sdl => o.sdl_driver = e.attr_with("driver", values::keyword::<SdlDriver>)?,
            _ => {}
        }
        o.input = e.child("input")?.map(|i| AudioIo::read(i, t)).transpose()?;
        o.output = e
            .child("output")?
            .map(|i| AudioIo::read(i, t))
            .transpose()?;
        Ok(o)
    }

    /// Attributes after `type`, in libvirt's order; `path` (file backends) goes in between.
    pub(crate) fn write_timer(&self, w: &mut Writer) {
        w.attr_num_opt("timerPeriod", self.timer_period);
    }

    pub(crate) fn write_backend_attrs(&self, w: &mut Writer) {
        let yn = |b: Option<bool>| b.map(values::yes_no_str);
        w.attr_opt("tryMMap", yn(self.try_mmap));
        w.attr_opt("exclusive", yn(self.exclusive));
        w.attr_num_opt("dspPolicy", self.dsp_policy);
        w.attr_opt("serverName", self.server_name.as_deref());
        w.attr_opt("driver", self.sdl_driver.map(|d| d.as_str()));
    }

    pub(crate) fn write_children(&self, w: &mut Writer) {
        if let Some(i) = &self.input {
            i.write(w, "input");
        }
        if let Some(o) = &self.output {
            o.write(w, "output");
        }
    }

    pub fn has_children(&self) -> bool {
        self.input.is_some() || self.output.is_some()
    }

    /// QEMU `-audiodev` properties: the backend's, then `in.*` and `out.*`.
    pub fn qemu_props(&self) -> String {
        let on = |b: bool| values::on_off_str(b);
        let mut s = String::new();
        if let Some(t) = self.timer_period {
            s.push_str(&format!(",timer-period={t}"));
        }
        if let Some(b) = self.try_mmap {
            s.push_str(&format!(",try-mmap={}", on(b)));
        }
        if let Some(b) = self.exclusive {
            s.push_str(&format!(",exclusive={}", on(b)));
        }
        if let Some(p) = self.dsp_policy {
            s.push_str(&format!(",dsp-policy={p}"));
        }
        if let Some(n) = &self.server_name {
            s.push_str(&format!(",server={}", n.replace(',', ",,")));
        }
        if let Some(i) = &self.input {
            s.push_str(&i.qemu_props("in."));
        }
        if let Some(o) = &self.output {
            s.push_str(&o.qemu_props("out."));
        }
        s
    }
}
