//! `<features>`: hypervisor features toggled for the guest.

use crate::model::error::XmlError;
use crate::model::hyperv::{Hyperv, KvmFeatures};
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// A feature element that may carry `state='on|off'`. `Present` is the
/// element without the attribute, which libvirt treats as on; it is kept
/// apart so documents round-trip as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureState {
    Present,
    On,
    Off,
}

impl FeatureState {
    /// Whether the feature ends up enabled.
    pub fn enabled(self) -> bool {
        !matches!(self, FeatureState::Off)
    }
}

xml_enum! {
    /// Who emulates the I/O APIC: the host kernel or QEMU (a split irqchip).
    pub enum IoapicDriver {
        Kvm = "kvm",
        Qemu = "qemu",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    pub acpi: bool,
    pub apic: bool,
    /// `<apic eoi='on|off'>`: KVM's paravirtual end-of-interrupt.
    pub apic_eoi: Option<bool>,
    pub pae: bool,
    pub hap: Option<FeatureState>,
    /// `<privnet/>`: a container gets a network namespace of its own even without NICs.
    pub privnet: bool,
    pub hyperv: Option<Hyperv>,
    pub kvm: Option<KvmFeatures>,
    pub pvspinlock: Option<FeatureState>,
    /// `<capabilities policy>`: what a container's processes may keep.
    pub capabilities: Option<crate::model::proc_caps::ProcessCaps>,
    pub pmu: Option<FeatureState>,
    pub vmport: Option<FeatureState>,
    pub smm: Option<FeatureState>,
    /// A `vmcoreinfo` device, through which the guest kernel tells where its dump notes are.
    pub vmcoreinfo: Option<FeatureState>,
    /// `<smm><tseg>` in bytes, with SMM on.
    pub smm_tseg: Option<u64>,
    pub ioapic: Option<IoapicDriver>,
}

impl Features {
    pub(crate) fn read(mut e: Elem) -> Result<Features> {
        let (apic, apic_eoi) = match e.child("apic")? {
            None => (false, None),
            Some(mut c) => {
                let eoi = c.attr_with("eoi", values::on_off)?;
                c.finish()?;
                (true, eoi)
            }
        };
        let (smm, smm_tseg) = read_smm(&mut e)?;
        let f = Features {
            acpi: e.flag("acpi")?,
            apic,
            apic_eoi,
            pae: e.flag("pae")?,
            hap: read_state(&mut e, "hap")?,
            privnet: e.flag("privnet")?,
            hyperv: e.child("hyperv")?.map(Hyperv::read).transpose()?,
            kvm: e.child("kvm")?.map(KvmFeatures::read).transpose()?,
            pvspinlock: read_state(&mut e, "pvspinlock")?,
            capabilities: e
                .child("capabilities")?
                .map(crate::model::proc_caps::ProcessCaps::read)
                .transpose()?
                .filter(|c| {
                    c.policy
                        .is_some_and(|p| p != crate::model::proc_caps::CapsPolicy::Default)
                        || !c.caps.is_empty()
                }),
            pmu: read_state(&mut e, "pmu")?,
            vmport: read_state(&mut e, "vmport")?,
            smm,
            smm_tseg,
            vmcoreinfo: read_state(&mut e, "vmcoreinfo")?,
            // libvirt keeps `<ioapic/>` without a driver as no setting at all
            ioapic: e
                .child("ioapic")?
                .map(|mut c| {
                    let d = c.attr_with("driver", values::keyword::<IoapicDriver>)?;
                    c.finish().map(|()| d)
                })
                .transpose()?
                .flatten(),
        };
        e.finish()?;
        Ok(f)
    }

    /// Writes `<features>` unless nothing is set.
    pub(crate) fn write(&self, w: &mut Writer) {
        if *self == Features::default() {
            return;
        }
        w.start("features");
        w.flag("acpi", self.acpi);
        if self.apic {
            w.start("apic");
            w.attr_opt("eoi", self.apic_eoi.map(values::on_off_str));
            w.end();
        }
        w.flag("pae", self.pae);
        write_state(w, "hap", self.hap);
        w.flag("privnet", self.privnet);
        if let Some(h) = &self.hyperv {
            h.write(w);
        }
        if let Some(k) = &self.kvm {
            k.write(w);
        }
        write_state(w, "pvspinlock", self.pvspinlock);
        if let Some(c) = &self.capabilities {
            c.write(w);
        }
        write_state(w, "pmu", self.pmu);
        write_state(w, "vmport", self.vmport);
        match (self.smm, self.smm_tseg) {
            (Some(s), Some(bytes)) if s.enabled() => {
                w.start("smm");
                w.attr("state", "on");
                let (n, unit) = pretty_bytes(bytes);
                w.start("tseg");
                w.attr("unit", unit);
                w.end_with_text(&n.to_string());
                w.end();
            }
            (s, _) => write_state(w, "smm", s),
        }
        if let Some(d) = self.ioapic {
            w.leaf_attr("ioapic", "driver", d.as_str());
        }
        write_state(w, "vmcoreinfo", self.vmcoreinfo);
        w.end();
    }
}

fn write_state(w: &mut Writer, name: &'static str, state: Option<FeatureState>) {
    match state {
        None => {}
        Some(FeatureState::Present) => w.flag(name, true),
        Some(s) => w.leaf_attr(name, "state", values::on_off_str(s.enabled())),
    }
}

/// `<smm state>` and, with SMM on, its `<tseg>` size (MiB when no unit is given).
fn read_smm(e: &mut Elem) -> Result<(Option<FeatureState>, Option<u64>)> {
    let Some(mut c) = e.child("smm")? else {
        return Ok((None, None));
    };
    let state = match c.attr_with("state", values::on_off)? {
        None => FeatureState::Present,
        Some(true) => FeatureState::On,
        Some(false) => FeatureState::Off,
    };
    let mut tseg = None;
    if state.enabled()
        && let Some(mut t) = c.child("tseg")?
    {
        let unit = t
            .attr_with("unit", values::memory_unit)?
            .unwrap_or(1024 * 1024);
        let n = t.text_with(|v| values::uint_in(v, 0, u64::MAX))?;
        let bytes = n
            .checked_mul(unit)
            .ok_or_else(|| t.invalid(&n.to_string(), "too large"))?;
        t.finish()?;
        tseg = Some(bytes);
    }
    c.finish()?;
    Ok((Some(state), tseg))
}

/// A byte count in the largest binary unit that divides it, as libvirt prints it.
fn pretty_bytes(bytes: u64) -> (u64, &'static str) {
    let mut n = bytes;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] {
        if n == 0 || !n.is_multiple_of(1024) {
            return (n, unit);
        }
        n /= 1024;
    }
    (n, "EiB")
}

fn read_state(e: &mut Elem, name: &str) -> Result<Option<FeatureState>> {
    match e.child(name)? {
        None => Ok(None),
        Some(mut c) => {
            let state = match c.attr_with("state", values::on_off)? {
                None => FeatureState::Present,
                Some(true) => FeatureState::On,
                Some(false) => FeatureState::Off,
            };
            c.finish()?;
            Ok(Some(state))
        }
    }
}
