//! `<clock>`: how guest time relates to host time, and timer devices.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum ClockOffset {
        Utc = "utc",
        Localtime = "localtime",
        Timezone = "timezone",
        Variable = "variable",
    }
}

xml_enum! {
    /// What a `variable` clock's adjustment is relative to.
    pub enum ClockBasis {
        Utc = "utc",
        Localtime = "localtime",
    }
}

xml_enum! {
    pub enum TimerName {
        Platform = "platform",
        Pit = "pit",
        Rtc = "rtc",
        Hpet = "hpet",
        Tsc = "tsc",
        Kvmclock = "kvmclock",
        Hypervclock = "hypervclock",
        Armvtimer = "armvtimer",
    }
}

xml_enum! {
    pub enum TickPolicy {
        Delay = "delay",
        Catchup = "catchup",
        Merge = "merge",
        Discard = "discard",
    }
}

xml_enum! {
    pub enum TimerTrack {
        Boot = "boot",
        Guest = "guest",
        Wall = "wall",
        Realtime = "realtime",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub name: TimerName,
    pub present: Option<bool>,
    pub tickpolicy: Option<TickPolicy>,
    pub track: Option<TimerTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// `utc` when the attribute is absent, as in libvirt.
    pub offset: ClockOffset,
    /// Only with `offset='timezone'`.
    pub timezone: Option<String>,
    /// Seconds (or `reset`), only with `offset='variable'`.
    pub adjustment: Option<String>,
    pub basis: Option<ClockBasis>,
    pub timers: Vec<Timer>,
}

impl Clock {
    /// A clock with `offset` and nothing else.
    pub fn with_offset(offset: ClockOffset) -> Clock {
        Clock {
            offset,
            timezone: None,
            adjustment: None,
            basis: None,
            timers: Vec::new(),
        }
    }

    pub(crate) fn read(mut e: Elem) -> Result<Clock> {
        let offset = e
            .attr_with("offset", values::keyword::<ClockOffset>)?
            .unwrap_or(ClockOffset::Utc);
        let (mut timezone, mut adjustment, mut basis) = (None, None, None);
        // Attributes of other offsets stay unread and are reported unknown.
        match offset {
            ClockOffset::Timezone => {
                timezone = Some(e.req_attr_with("timezone", values::non_empty)?);
            }
            ClockOffset::Variable => {
                adjustment = e.attr_with("adjustment", |v| {
                    if v == "reset" {
                        Ok(v.to_string())
                    } else {
                        values::int_in(v, i64::MIN + 1, i64::MAX).map(|_| v.to_string())
                    }
                })?;
                basis = e.attr_with("basis", values::keyword::<ClockBasis>)?;
            }
            ClockOffset::Utc | ClockOffset::Localtime => {}
        }
        let mut timers = Vec::new();
        e.each("timer", |mut t| {
            let timer = Timer {
                name: t.req_attr_with("name", values::keyword::<TimerName>)?,
                present: t.attr_with("present", values::yes_no)?,
                tickpolicy: t.attr_with("tickpolicy", values::keyword::<TickPolicy>)?,
                track: t.attr_with("track", values::keyword::<TimerTrack>)?,
            };
            t.finish()?;
            timers.push(timer);
            Ok(())
        })?;
        e.finish()?;
        Ok(Clock {
            offset,
            timezone,
            adjustment,
            basis,
            timers,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("clock");
        w.attr("offset", self.offset.as_str());
        w.attr_opt("timezone", self.timezone.as_deref());
        w.attr_opt("adjustment", self.adjustment.as_deref());
        w.attr_opt("basis", self.basis.map(|b| b.as_str()));
        for t in &self.timers {
            w.start("timer");
            w.attr("name", t.name.as_str());
            w.attr_opt("present", t.present.map(values::yes_no_str));
            w.attr_opt("tickpolicy", t.tickpolicy.map(|p| p.as_str()));
            w.attr_opt("track", t.track.map(|p| p.as_str()));
            w.end();
        }
        w.end();
    }
}
