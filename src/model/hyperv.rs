//! `<features><hyperv>` (Hyper-V enlightenments for Windows guests) and
//! `<features><kvm>` (KVM paravirtual hints). Both keep libvirt's fixed output
//! order whatever order the input used, as libvirt stores them by kind.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum HypervMode {
        Custom = "custom",
        /// All enlightenments the host's KVM offers.
        Passthrough = "passthrough",
    }
}

xml_enum! {
    /// The enlightenments, in libvirt's order.
    pub enum HvFlag {
        Relaxed = "relaxed",
        Vapic = "vapic",
        Spinlocks = "spinlocks",
        Vpindex = "vpindex",
        Runtime = "runtime",
        Synic = "synic",
        Stimer = "stimer",
        Reset = "reset",
        VendorId = "vendor_id",
        Frequencies = "frequencies",
        Reenlightenment = "reenlightenment",
        Tlbflush = "tlbflush",
        Ipi = "ipi",
        Evmcs = "evmcs",
        Avic = "avic",
    }
}

/// Shortest spinlock retry count libvirt takes.
const MIN_SPINLOCK_RETRIES: u64 = 0xfff;
/// The CPUID vendor signature is three 32-bit registers.
const MAX_VENDOR_ID: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hyperv {
    /// `custom` when the attribute is absent, as in libvirt.
    pub mode: HypervMode,
    /// The `state` of each enlightenment the document names, in libvirt's order.
    pub flags: Vec<(HvFlag, bool)>,
    /// `<spinlocks retries>`, with spinlocks on.
    pub spinlock_retries: Option<u32>,
    /// `<stimer><direct state>`, with stimer on.
    pub stimer_direct: Option<bool>,
    /// `<vendor_id value>`, with vendor_id on.
    pub vendor_id: Option<String>,
}

impl Hyperv {
    /// The state of `flag`, if the document names it.
    pub fn state(&self, flag: HvFlag) -> Option<bool> {
        self.flags.iter().find(|(f, _)| *f == flag).map(|(_, s)| *s)
    }

    pub(crate) fn read(mut e: Elem) -> Result<Hyperv> {
        let mode = e
            .attr_with("mode", values::keyword::<HypervMode>)?
            .unwrap_or(HypervMode::Custom);
        let mut hv = Hyperv {
            mode,
            flags: Vec::new(),
            spinlock_retries: None,
            stimer_direct: None,
            vendor_id: None,
        };
        for &flag in HvFlag::ALL {
            let Some(mut c) = e.child(flag.as_str())? else {
                continue;
            };
            let on = c.req_attr_with("state", values::on_off)?;
            if on {
                match flag {
                    HvFlag::Spinlocks => {
                        let r = c.req_attr_with("retries", |v| {
                            values::uint_in(v, MIN_SPINLOCK_RETRIES, u64::from(u32::MAX))
                        })?;
                        hv.spinlock_retries = u32::try_from(r).ok();
                    }
                    HvFlag::Stimer => {
                        hv.stimer_direct = c.child_attr_with("direct", "state", values::on_off)?;
                    }
                    HvFlag::VendorId => {
                        hv.vendor_id = Some(c.req_attr_with("value", vendor_id)?);
                    }
                    _ => {}
                }
            }
            c.finish()?;
            hv.flags.push((flag, on));
        }
        e.finish()?;
        Ok(hv)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("hyperv");
        w.attr("mode", self.mode.as_str());
        for &(flag, on) in &self.flags {
            w.start(flag.as_str());
            w.attr("state", values::on_off_str(on));
            if on {
                match flag {
                    HvFlag::Spinlocks => w.attr_num_opt("retries", self.spinlock_retries),
                    HvFlag::VendorId => w.attr_opt("value", self.vendor_id.as_deref()),
                    // libvirt writes `direct` only when it is on
                    HvFlag::Stimer if self.stimer_direct == Some(true) => {
                        w.leaf_attr("direct", "state", "on")
                    }
                    _ => {}
                }
            }
            w.end();
        }
        w.end();
    }
}

/// A vendor signature QEMU can take: at most 12 characters, no comma (it would split
/// QEMU's option list).
fn vendor_id(v: &str) -> std::result::Result<String, String> {
    if v.chars().count() > MAX_VENDOR_ID {
        return Err(format!("at most {MAX_VENDOR_ID} characters"));
    }
    if v.contains(',') {
        return Err("a comma is not allowed".into());
    }
    Ok(v.to_string())
}

xml_enum! {
    /// `<features><kvm>` children, in libvirt's order.
    pub enum KvmFlag {
        Hidden = "hidden",
        HintDedicated = "hint-dedicated",
        PollControl = "poll-control",
        PvIpi = "pv-ipi",
        DirtyRing = "dirty-ring",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvmFeatures {
    pub flags: Vec<(KvmFlag, bool)>,
    /// `<dirty-ring size>` (entries), with the dirty ring on.
    pub dirty_ring_size: Option<u32>,
}

impl KvmFeatures {
    pub fn state(&self, flag: KvmFlag) -> Option<bool> {
        self.flags.iter().find(|(f, _)| *f == flag).map(|(_, s)| *s)
    }

    pub(crate) fn read(mut e: Elem) -> Result<KvmFeatures> {
        let mut k = KvmFeatures::default();
        for &flag in KvmFlag::ALL {
            let Some(mut c) = e.child(flag.as_str())? else {
                continue;
            };
            let on = c.req_attr_with("state", values::on_off)?;
            if on && flag == KvmFlag::DirtyRing {
                k.dirty_ring_size = Some(c.req_attr_with("size", dirty_ring_size)?);
            }
            c.finish()?;
            k.flags.push((flag, on));
        }
        e.finish()?;
        Ok(k)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("kvm");
        for &(flag, on) in &self.flags {
            w.start(flag.as_str());
            w.attr("state", values::on_off_str(on));
            if on && flag == KvmFlag::DirtyRing {
                w.attr_num_opt("size", self.dirty_ring_size);
            }
            w.end();
        }
        w.end();
    }
}

/// KVM takes a power of two between 1024 and 65536 entries.
fn dirty_ring_size(v: &str) -> std::result::Result<u32, String> {
    let n = values::uint_in(v, 1024, 65536)?;
    if !n.is_power_of_two() {
        return Err("a power of two from 1024 to 65536".into());
    }
    Ok(n as u32)
}
