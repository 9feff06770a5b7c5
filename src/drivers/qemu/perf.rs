//! perf events counted for a guest's QEMU process (`<perf>`), as libvirt's `virperf.c` does:
//! one `perf_event_open(2)` counter per enabled event on QEMU's pid (inherited by the threads
//! it creates from then on), read as the `perf.<event>` statistics.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use crate::drivers::{DriverError, DriverResult, StatValue, Stats};
use crate::model::perf::{Perf, PerfEvent};

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_TYPE_SOFTWARE: u32 = 1;
/// `PERF_EVENT_IOC_ENABLE` and `_DISABLE` (`_IO('$', 0)`, `_IO('$', 1)`).
const IOC_ENABLE: libc::c_ulong = 0x2400;
const IOC_DISABLE: libc::c_ulong = 0x2401;
/// `attr.disabled` and `attr.inherit`, the first bits of the flag word.
const DISABLED: u64 = 1;
const INHERIT: u64 = 1 << 1;

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER0` (the kernel takes any known size).
#[repr(C)]
#[derive(Default)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// The kernel's type and config of `e`; `None` for the resctrl events (cmt, mbmt, mbml),
/// whose kernel interface (`intel_cqm`) is gone from current kernels.
fn kind_of(e: PerfEvent) -> Option<(u32, u64)> {
    use PerfEvent as P;
    Some(match e {
        P::Cmt | P::Mbmt | P::Mbml => return None,
        P::CpuCycles => (PERF_TYPE_HARDWARE, 0),
        P::Instructions => (PERF_TYPE_HARDWARE, 1),
        P::CacheReferences => (PERF_TYPE_HARDWARE, 2),
        P::CacheMisses => (PERF_TYPE_HARDWARE, 3),
        P::BranchInstructions => (PERF_TYPE_HARDWARE, 4),
        P::BranchMisses => (PERF_TYPE_HARDWARE, 5),
        P::BusCycles => (PERF_TYPE_HARDWARE, 6),
        P::StalledCyclesFrontend => (PERF_TYPE_HARDWARE, 7),
        P::StalledCyclesBackend => (PERF_TYPE_HARDWARE, 8),
        P::RefCpuCycles => (PERF_TYPE_HARDWARE, 9),
        P::CpuClock => (PERF_TYPE_SOFTWARE, 0),
        P::TaskClock => (PERF_TYPE_SOFTWARE, 1),
        P::PageFaults => (PERF_TYPE_SOFTWARE, 2),
        P::ContextSwitches => (PERF_TYPE_SOFTWARE, 3),
        P::CpuMigrations => (PERF_TYPE_SOFTWARE, 4),
        P::PageFaultsMin => (PERF_TYPE_SOFTWARE, 5),
        P::PageFaultsMaj => (PERF_TYPE_SOFTWARE, 6),
        P::AlignmentFaults => (PERF_TYPE_SOFTWARE, 7),
        P::EmulationFaults => (PERF_TYPE_SOFTWARE, 8),
    })
}

/// An enabled counter on `pid`, or libvirt's error.
fn open(e: PerfEvent, pid: i32) -> DriverResult<OwnedFd> {
    let Some((kind, config)) = kind_of(e) else {
        return Err(DriverError::ArgumentUnsupported(format!(
            "unable to enable host cpu perf event for {e}"
        )));
    };
    let attr = Attr {
        kind,
        size: std::mem::size_of::<Attr>() as u32,
        config,
        flags: DISABLED | INHERIT,
        ..Default::default()
    };
    // libvirt's words: the reason as strerror(3) gives it
    let sys = |what: &str| {
        DriverError::System(format!(
            "unable to {what} host cpu perf event for {e}: {}",
            nix::errno::Errno::last().desc()
        ))
    };
    // SAFETY: perf_event_open(2) reads `attr` (a valid, initialized perf_event_attr of the
    // size it names) and returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const Attr,
            pid,
            -1 as libc::c_int,
            -1 as libc::c_int,
            0 as libc::c_ulong,
        )
    };
    if fd < 0 {
        return Err(sys("open"));
    }
    // SAFETY: `fd` is the new descriptor the kernel just returned; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: an ioctl without argument on a perf event descriptor we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), IOC_ENABLE, 0) } < 0 {
        return Err(sys("enable"));
    }
    Ok(fd)
}

/// The counters open for one QEMU, by event.
#[derive(Debug, Default)]
pub struct Counters {
    open: Mutex<Vec<(PerfEvent, OwnedFd)>>,
}

impl Counters {
    /// Opens counters for the events `perf` enables that are not open yet and closes those it
    /// disables; when one cannot open, none of this call's changes is made.
    pub fn apply(&self, perf: &Perf, pid: i32) -> DriverResult<()> {
        let mut open = crate::util::lock(&self.open);
        let mut opened = Vec::new();
        for (e, on) in &perf.events {
            if *on && !open.iter().any(|(x, _)| x == e) {
                // on failure the counters opened so far close as `opened` drops
                opened.push((*e, open_counter(*e, pid)?));
            }
        }
        open.retain(|(e, fd)| {
            let keep = perf.events.iter().all(|(x, on)| x != e || *on);
            if !keep {
                // SAFETY: an ioctl without argument on a descriptor we own.
                unsafe { libc::ioctl(fd.as_raw_fd(), IOC_DISABLE, 0) };
            }
            keep
        });
        open.extend(opened);
        Ok(())
    }

    /// Opens what `perf` enables on a QEMU adopted after a daemon restart; an event that
    /// cannot open is turned off in `perf` (libvirt's `qemuDomainPerfRestart`).
    pub fn reopen(&self, perf: &mut Perf, pid: i32) {
        let mut open = crate::util::lock(&self.open);
        for (e, on) in perf.events.iter_mut() {
            if *on {
                match open_counter(*e, pid) {
                    Ok(fd) => open.push((*e, fd)),
                    Err(err) => {
                        tracing::warn!(event = %e, "cannot reopen perf event: {err}");
                        *on = false;
                    }
                }
            }
        }
    }

    /// Whether a counter for `e` is open.
    pub fn is_open(&self, e: PerfEvent) -> bool {
        crate::util::lock(&self.open).iter().any(|(x, _)| *x == e)
    }

    /// `perf.<event>` for each open counter, in libvirt's event order.
    pub fn stats(&self, out: &mut Stats) {
        let open = crate::util::lock(&self.open);
        for e in PerfEvent::ALL {
            let Some((_, fd)) = open.iter().find(|(x, _)| x == e) else {
                continue;
            };
            let mut v = [0u8; 8];
            // SAFETY: reads at most 8 bytes into `v` from a descriptor we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr().cast(), v.len()) };
            if n == 8 {
                out.push((format!("perf.{e}"), StatValue::U64(u64::from_ne_bytes(v))));
            }
        }
    }
}

fn open_counter(e: PerfEvent, pid: i32) -> DriverResult<OwnedFd> {
    open(e, pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A software counter on this test's own process counts: task_clock rises with work.
    #[test]
    fn a_software_counter_counts() {
        let c = Counters::default();
        let mut perf = Perf::default();
        perf.set(PerfEvent::TaskClock, true);
        c.apply(&perf, 0).expect("perf_event_open");
        let read = || {
            let mut s = Vec::new();
            c.stats(&mut s);
            match s.as_slice() {
                [(k, StatValue::U64(v))] if k == "perf.task_clock" => *v,
                other => panic!("{other:?}"),
            }
        };
        let a = read();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(read() > a);
        perf.set(PerfEvent::TaskClock, false);
        c.apply(&perf, 0).expect("disable");
        assert!(!c.is_open(PerfEvent::TaskClock));
    }

    #[test]
    fn resctrl_events_are_refused_as_libvirt_does() {
        let e = open(PerfEvent::Cmt, 1).expect_err("no resctrl perf");
        assert_eq!(
            e,
            DriverError::ArgumentUnsupported("unable to enable host cpu perf event for cmt".into())
        );
    }
}
