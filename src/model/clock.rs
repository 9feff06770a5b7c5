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

xml_enum! {
    /// How the guest's TSC is provided (a Xen setting libvirt keeps for every driver).
    pub enum TscMode {
        Auto = "auto",
        Native = "native",
        Emulate = "emulate",
        Paravirt = "paravirt",
        Smpsafe = "smpsafe",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub name: TimerName,
    pub present: Option<bool>,
    pub tickpolicy: Option<TickPolicy>,
    pub track: Option<TimerTrack>,
    /// Hz; `tsc` only.
    pub frequency: Option<u64>,
    /// `tsc` only.
    pub mode: Option<TscMode>,
    /// `<catchup threshold slew limit>`: kept as libvirt keeps it (0 is "not set", an all-zero
    /// element is dropped); QEMU has no knobs for it, so only `tickpolicy` reaches QEMU.
    pub catchup: Catchup,
}

/// A timer's `<catchup>` figures, 0 when not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Catchup {
    pub threshold: u64,
    pub slew: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// `utc` when the attribute is absent, as in libvirt.
    pub offset: ClockOffset,
    /// Only with `offset='timezone'`.
    pub timezone: Option<String>,
    /// Seconds from the basis; `Some` (0 when absent) exactly with `offset='variable'`.
    pub adjustment: Option<i64>,
    /// `Some` (`utc` when absent) exactly with `offset='variable'`.
    pub basis: Option<ClockBasis>,
    /// `adjustment='reset'` on a `utc` or `localtime` clock (a one-off for updates).
    pub reset: bool,
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
            reset: false,
            timers: Vec::new(),
        }
    }

    pub(crate) fn read(mut e: Elem) -> Result<Clock> {
        let mut offset = e
            .attr_with("offset", values::keyword::<ClockOffset>)?
            .unwrap_or(ClockOffset::Utc);
        let (mut timezone, mut adjustment, mut basis, mut reset) = (None, None, None, false);
        // Attributes of other offsets stay unread and are reported unknown.
        match offset {
            ClockOffset::Timezone => {
                timezone = Some(e.req_attr_with("timezone", values::non_empty)?);
            }
            ClockOffset::Variable => {
                adjustment = Some(e.attr_with("adjustment", seconds)?.unwrap_or(0));
                basis = Some(
                    e.attr_with("basis", values::keyword::<ClockBasis>)?
                        .unwrap_or(ClockBasis::Utc),
                );
            }
            ClockOffset::Utc | ClockOffset::Localtime => {
                match e.attr_with("adjustment", |v| {
                    if v == "reset" {
                        Ok(None)
                    } else {
                        seconds(v).map(Some)
                    }
                })? {
                    None => {}
                    Some(None) => reset = true,
                    // libvirt turns a fixed adjustment into a variable clock on that basis
                    Some(Some(secs)) => {
                        basis = Some(if offset == ClockOffset::Utc {
                            ClockBasis::Utc
                        } else {
                            ClockBasis::Localtime
                        });
                        adjustment = Some(secs);
                        offset = ClockOffset::Variable;
                    }
                }
            }
        }
        let mut timers = Vec::new();
        e.each("timer", |mut t| {
            let name = t.req_attr_with("name", values::keyword::<TimerName>)?;
            let mut timer = Timer {
                name,
                present: t.attr_with("present", values::yes_no)?,
                tickpolicy: t.attr_with("tickpolicy", values::keyword::<TickPolicy>)?,
                track: t.attr_with("track", values::keyword::<TimerTrack>)?,
                frequency: None,
                mode: None,
                catchup: Catchup::default(),
            };
            if let Some(mut c) = t.child("catchup")? {
                let n = |v: &str| values::uint_in(v, 0, u64::MAX);
                timer.catchup = Catchup {
                    threshold: c.attr_with("threshold", n)?.unwrap_or(0),
                    slew: c.attr_with("slew", n)?.unwrap_or(0),
                    limit: c.attr_with("limit", n)?.unwrap_or(0),
                };
                c.finish()?;
            }
            // other timers' frequency or mode stay unread and are reported unknown
            if name == TimerName::Tsc {
                // libvirt keeps 0 as "not set"
                timer.frequency = t
                    .attr_with("frequency", |v| values::uint_in(v, 0, u64::MAX))?
                    .filter(|f| *f > 0);
                timer.mode = t.attr_with("mode", values::keyword::<TscMode>)?;
            }
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
            reset,
            timers,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("clock");
        w.attr("offset", self.offset.as_str());
        w.attr_opt("timezone", self.timezone.as_deref());
        if self.reset {
            w.attr("adjustment", "reset");
        }
        w.attr_num_opt("adjustment", self.adjustment);
        w.attr_opt("basis", self.basis.map(|b| b.as_str()));
        for t in &self.timers {
            w.start("timer");
            w.attr("name", t.name.as_str());
            w.attr_opt("present", t.present.map(values::yes_no_str));
            w.attr_opt("tickpolicy", t.tickpolicy.map(|p| p.as_str()));
            w.attr_opt("track", t.track.map(|p| p.as_str()));
            w.attr_num_opt("frequency", t.frequency);
            w.attr_opt("mode", t.mode.map(|m| m.as_str()));
            let c = t.catchup;
            if c != Catchup::default() {
                w.start("catchup");
                w.attr_num_opt("threshold", Some(c.threshold).filter(|v| *v > 0));
                w.attr_num_opt("slew", Some(c.slew).filter(|v| *v > 0));
                w.attr_num_opt("limit", Some(c.limit).filter(|v| *v > 0));
                w.end();
            }
            w.end();
        }
        w.end();
    }
}

/// A signed number of seconds.
fn seconds(v: &str) -> std::result::Result<i64, String> {
    values::int_in(v, i64::MIN + 1, i64::MAX)
}
