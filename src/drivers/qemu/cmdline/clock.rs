//! `<clock>`: the `-rtc` option, the HPET switch, the PIT's lost-tick policy and the
//! timezone of a `timezone` clock. The paravirtual timers (kvmclock, hypervclock, tsc)
//! are `-cpu` flags, see `features.rs`.

use super::{Accel, Result, unsupported};
use crate::model::{ClockBasis, ClockOffset, DomainDef, TickPolicy, TimerName, TimerTrack};

pub(super) struct ClockArgs {
    pub rtc: String,
    pub hpet_off: bool,
    pub pit_global: Option<String>,
    /// `TZ` for QEMU with `offset='timezone'`.
    pub tz: Option<String>,
    /// A `variable` clock's adjustment from UTC as started (a `localtime` basis folded
    /// in), for the live definition.
    pub utc_adjustment: Option<i64>,
}

/// The clock arguments for `def`; `now` is the host's time in seconds since the epoch and
/// `local_offset` its local timezone's offset from UTC in seconds.
pub(super) fn clock_args(
    def: &DomainDef,
    accel: Accel,
    now: i64,
    local_offset: i64,
) -> Result<ClockArgs> {
    let mut out = ClockArgs {
        rtc: "base=utc".into(),
        hpet_off: false,
        pit_global: None,
        tz: None,
        utc_adjustment: None,
    };
    let Some(c) = &def.clock else {
        return Ok(out);
    };
    match c.offset {
        ClockOffset::Utc => {}
        ClockOffset::Localtime => out.rtc = "base=localtime".into(),
        ClockOffset::Timezone => {
            out.rtc = "base=localtime".into();
            out.tz = c.timezone.clone();
        }
        ClockOffset::Variable => {
            let mut adj = c.adjustment.unwrap_or(0);
            if c.basis == Some(ClockBasis::Localtime) {
                adj = adj.saturating_add(local_offset);
            }
            out.rtc = format!("base={}", utc_datetime(now.saturating_add(adj)));
            out.utc_adjustment = Some(adj);
        }
    }
    for t in &c.timers {
        let what = format!("<timer name='{}'>", t.name);
        if t.mode.is_some() {
            return unsupported(format!("{what} mode (a Xen setting)"));
        }
        match t.name {
            TimerName::Rtc => {
                match t.track {
                    None => {}
                    Some(TimerTrack::Guest) => out.rtc.push_str(",clock=vm"),
                    Some(TimerTrack::Wall) => out.rtc.push_str(",clock=host"),
                    Some(TimerTrack::Realtime) => out.rtc.push_str(",clock=rt"),
                    Some(tr) => return unsupported(format!("{what} track '{tr}'")),
                }
                match t.tickpolicy {
                    None | Some(TickPolicy::Delay) => {}
                    Some(TickPolicy::Catchup) => out.rtc.push_str(",driftfix=slew"),
                    Some(p) => return unsupported(format!("{what} tickpolicy '{p}'")),
                }
                if t.present == Some(false) {
                    return unsupported(format!("{what} present='no' (QEMU always has an RTC)"));
                }
            }
            TimerName::Hpet => {
                if t.tickpolicy.is_some() || t.track.is_some() {
                    return unsupported(format!("{what} tickpolicy or track"));
                }
                out.hpet_off = t.present == Some(false);
            }
            TimerName::Pit => {
                if t.present == Some(false) || t.track.is_some() {
                    return unsupported(format!("{what} present='no' or track"));
                }
                // only KVM's in-kernel PIT has a lost-tick policy; QEMU's own PIT delays
                out.pit_global = match (t.tickpolicy, accel) {
                    (None | Some(TickPolicy::Delay), Accel::Kvm) => {
                        Some("kvm-pit.lost_tick_policy=delay".into())
                    }
                    (Some(TickPolicy::Discard), Accel::Kvm) => {
                        Some("kvm-pit.lost_tick_policy=discard".into())
                    }
                    (Some(TickPolicy::Catchup), Accel::Kvm) => None,
                    (None | Some(TickPolicy::Delay), Accel::Tcg) => None,
                    (Some(p), _) => {
                        return unsupported(format!(
                            "{what} tickpolicy '{p}'{}",
                            if accel == Accel::Tcg {
                                " under TCG"
                            } else {
                                ""
                            }
                        ));
                    }
                };
            }
            TimerName::Kvmclock | TimerName::Hypervclock | TimerName::Tsc => {
                if t.tickpolicy.is_some() || t.track.is_some() {
                    return unsupported(format!("{what} tickpolicy or track"));
                }
            }
            TimerName::Platform | TimerName::Armvtimer => {
                return unsupported(format!("{what} on x86"));
            }
        }
    }
    Ok(out)
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC for seconds since the epoch (proleptic Gregorian).
pub(super) fn utc_datetime(secs: i64) -> String {
    let (year, month, day) = crate::util::civil_date(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The host's local timezone offset from UTC now, in seconds (0 if unknown).
pub(super) fn local_offset(now: i64) -> i64 {
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok { tm.tm_gmtoff } else { 0 }
}
