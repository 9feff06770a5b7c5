//! `<perf>`: which of the host's perf events are counted for the guest's QEMU process
//! (`<event name='task_clock' enabled='yes'/>`), libvirt's event names.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// libvirt's `virPerfEventType`, in its order (the order `<perf>` is written in).
    pub enum PerfEvent {
        Cmt = "cmt",
        Mbmt = "mbmt",
        Mbml = "mbml",
        CpuCycles = "cpu_cycles",
        Instructions = "instructions",
        CacheReferences = "cache_references",
        CacheMisses = "cache_misses",
        BranchInstructions = "branch_instructions",
        BranchMisses = "branch_misses",
        BusCycles = "bus_cycles",
        StalledCyclesFrontend = "stalled_cycles_frontend",
        StalledCyclesBackend = "stalled_cycles_backend",
        RefCpuCycles = "ref_cpu_cycles",
        CpuClock = "cpu_clock",
        TaskClock = "task_clock",
        PageFaults = "page_faults",
        ContextSwitches = "context_switches",
        CpuMigrations = "cpu_migrations",
        PageFaultsMin = "page_faults_min",
        PageFaultsMaj = "page_faults_maj",
        AlignmentFaults = "alignment_faults",
        EmulationFaults = "emulation_faults",
    }
}

/// The events named in `<perf>`, each on or off; unnamed ones are off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Perf {
    pub events: Vec<(PerfEvent, bool)>,
}

impl Perf {
    /// Whether `e` is to be counted.
    pub fn enabled(&self, e: PerfEvent) -> bool {
        self.events.iter().any(|(x, on)| *x == e && *on)
    }

    /// Names `e` on or off.
    pub fn set(&mut self, e: PerfEvent, on: bool) {
        match self.events.iter_mut().find(|(x, _)| *x == e) {
            Some(slot) => slot.1 = on,
            None => self.events.push((e, on)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub(crate) fn read(mut e: Elem) -> Result<Perf> {
        let mut events: Vec<(PerfEvent, bool)> = Vec::new();
        e.each("event", |mut ev| {
            let name: PerfEvent = ev.req_attr_with("name", values::keyword)?;
            let on = ev.req_attr_with("enabled", values::yes_no)?;
            if events.iter().any(|(x, _)| *x == name) {
                return Err(ev.invalid(
                    name.as_str(),
                    format!("perf event '{name}' was already specified"),
                ));
            }
            ev.finish()?;
            events.push((name, on));
            Ok(())
        })?;
        e.finish()?;
        Ok(Perf { events })
    }

    /// libvirt's form: the events in its order, nothing when none is named.
    pub(crate) fn write(&self, w: &mut Writer) {
        if self.events.is_empty() {
            return;
        }
        w.start("perf");
        for ev in PerfEvent::ALL {
            if let Some((_, on)) = self.events.iter().find(|(x, _)| x == ev) {
                w.start("event");
                w.attr("name", ev.as_str());
                w.attr("enabled", values::yes_no_str(*on));
                w.end();
            }
        }
        w.end();
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{DomainDef, FormatOptions};

    fn doc(perf: &str) -> String {
        format!(
            "<domain type='qemu'><name>p</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os>{perf}<devices/></domain>"
        )
    }

    #[test]
    fn round_trips_in_libvirts_order() {
        let d = DomainDef::from_xml(&doc(
            "<perf><event name='task_clock' enabled='yes'/><event name='cmt' enabled='no'/></perf>",
        ))
        .expect("parses");
        let out = d.to_xml(&FormatOptions::default());
        assert!(
            out.contains(
                "<perf>\n    <event name='cmt' enabled='no'/>\n    \
                 <event name='task_clock' enabled='yes'/>\n  </perf>\n  <devices"
            ),
            "{out}"
        );
    }

    #[test]
    fn unknown_and_repeated_events_are_refused_with_their_path() {
        let e = DomainDef::from_xml(&doc("<perf><event name='bogus' enabled='yes'/></perf>"))
            .expect_err("unknown");
        assert!(e.to_string().contains("/domain/perf/event"), "{e}");
        let e = DomainDef::from_xml(&doc("<perf><event name='task_clock' enabled='yes'/>\
             <event name='task_clock' enabled='no'/></perf>"))
        .expect_err("twice");
        assert!(e.to_string().contains("already specified"), "{e}");
        let e = DomainDef::from_xml(&doc("<perf><event name='task_clock'/></perf>"))
            .expect_err("no enabled");
        assert!(e.to_string().contains("enabled"), "{e}");
        let e = DomainDef::from_xml(&doc("<perf><foo/></perf>")).expect_err("unknown element");
        assert!(e.to_string().contains("/domain/perf/foo"), "{e}");
    }
}
