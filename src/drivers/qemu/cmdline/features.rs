//! `<features>` and the paravirtual `<clock>` timers as QEMU `-cpu` flags, `-machine`
//! properties and `-global`s, the way libvirt's qemu_command.c spells them.
//!
//! Under TCG, QEMU 7.2 takes the Hyper-V flags (it only hands their CPUID leaves to the guest
//! with KVM) except `hv-vpindex`, which it refuses; what only exists with KVM (passthrough
//! Hyper-V, dedicated-CPU hints, the dirty ring, the in-kernel I/O APIC) is refused here by
//! name instead of being passed on for QEMU to ignore.

use super::{Accel, Result, on_off, unsupported};
use crate::model::{DomainDef, FeatureState, HvFlag, HypervMode, IoapicDriver, KvmFlag, TimerName};

/// The flags appended to the `-cpu` model, in libvirt's order: timers, APIC EOI,
/// pvspinlock, Hyper-V, KVM, PMU.
pub(super) fn cpu_flags(def: &DomainDef, accel: Accel) -> Result<String> {
    let mut s = String::new();
    let tcg = accel == Accel::Tcg;
    for t in def.clock.iter().flat_map(|c| &c.timers) {
        match t.name {
            TimerName::Kvmclock => {
                if let Some(p) = t.present {
                    s.push_str(&format!(",kvmclock={}", on_off(p)));
                }
            }
            TimerName::Hypervclock if t.present == Some(true) => s.push_str(",hv-time=on"),
            TimerName::Tsc => {
                if let Some(f) = t.frequency {
                    s.push_str(&format!(",tsc-frequency={f}"));
                }
            }
            _ => {}
        }
    }
    let f = &def.features;
    if let Some(eoi) = f.apic_eoi {
        s.push_str(&format!(",kvm-pv-eoi={}", on_off(eoi)));
    }
    if let Some(p) = f.pvspinlock {
        s.push_str(&format!(",kvm-pv-unhalt={}", on_off(p.enabled())));
    }
    if let Some(hv) = &f.hyperv {
        match hv.mode {
            HypervMode::Custom => {}
            HypervMode::Passthrough if tcg => {
                return unsupported(
                    "<features><hyperv mode='passthrough'> under TCG (it copies KVM's enlightenments)",
                );
            }
            HypervMode::Passthrough => s.push_str(",hv-passthrough=on"),
        }
        for &(flag, on) in &hv.flags {
            if !on {
                continue;
            }
            match flag {
                HvFlag::Vpindex if tcg => {
                    return unsupported(
                        "<features><hyperv><vpindex> under TCG (QEMU needs KVM for it)",
                    );
                }
                HvFlag::Spinlocks => {
                    if let Some(r) = hv.spinlock_retries {
                        s.push_str(&format!(",hv-spinlocks={r:#x}"));
                    }
                }
                HvFlag::VendorId => {
                    if let Some(v) = &hv.vendor_id {
                        s.push_str(&format!(",hv-vendor-id={v}"));
                    }
                }
                HvFlag::Stimer => {
                    s.push_str(",hv-stimer=on");
                    if hv.stimer_direct == Some(true) {
                        s.push_str(",hv-stimer-direct=on");
                    }
                }
                other => s.push_str(&format!(",hv-{}=on", other.as_str())),
            }
        }
    }
    if let Some(k) = &f.kvm {
        for &(flag, on) in &k.flags {
            match (flag, on) {
                (KvmFlag::Hidden, true) => s.push_str(",kvm=off"),
                (KvmFlag::HintDedicated, true) if tcg => {
                    return unsupported("<features><kvm><hint-dedicated> under TCG");
                }
                (KvmFlag::HintDedicated, true) => s.push_str(",kvm-hint-dedicated=on"),
                (KvmFlag::PollControl, true) => s.push_str(",kvm-poll-control=on"),
                (KvmFlag::PvIpi, false) => s.push_str(",kvm-pv-ipi=off"),
                // the dirty ring belongs to -accel (see `accel_props`)
                _ => {}
            }
        }
    }
    if let Some(p) = f.pmu {
        s.push_str(&format!(",pmu={}", on_off(p.enabled())));
    }
    Ok(s)
}

/// Properties appended to `-accel`.
pub(super) fn accel_props(def: &DomainDef, accel: Accel) -> Result<String> {
    let Some(k) = &def.features.kvm else {
        return Ok(String::new());
    };
    match (k.state(KvmFlag::DirtyRing), k.dirty_ring_size) {
        (Some(true), _) if accel == Accel::Tcg => {
            unsupported("<features><kvm><dirty-ring> under TCG (a KVM dirty page log)")
        }
        (Some(true), Some(n)) => Ok(format!(",dirty-ring-size={n}")),
        _ => Ok(String::new()),
    }
}

/// Properties appended to `-machine` (after `smm=`).
pub(super) fn machine_props(def: &DomainDef, accel: Accel) -> Result<String> {
    match def.features.ioapic {
        None => Ok(String::new()),
        Some(IoapicDriver::Kvm) if accel == Accel::Tcg => {
            unsupported("<features><ioapic driver='kvm'> under TCG (KVM's in-kernel I/O APIC)")
        }
        Some(IoapicDriver::Kvm) => Ok(",kernel_irqchip=on".into()),
        Some(IoapicDriver::Qemu) => Ok(",kernel_irqchip=split".into()),
    }
}

/// `-global`s for the features: the q35 TSEG size.
pub(super) fn globals(def: &DomainDef, q35: bool) -> Result<Vec<String>> {
    let f = &def.features;
    let Some(bytes) = f
        .smm_tseg
        .filter(|_| f.smm.is_some_and(FeatureState::enabled))
    else {
        return Ok(Vec::new());
    };
    if !q35 {
        return unsupported("<features><smm><tseg> outside a q35 machine");
    }
    const MIB: u64 = 1024 * 1024;
    if bytes % MIB != 0 {
        return unsupported(format!(
            "<features><smm><tseg> of {bytes} bytes (QEMU takes whole MiB)"
        ));
    }
    Ok(vec![format!("mch.extended-tseg-mbytes={}", bytes / MIB)])
}
