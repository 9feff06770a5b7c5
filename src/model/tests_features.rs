//! `<features>`, `<clock>` timers and sound: libvirt's output order and its checks.

use super::tests::{assert_domain_round_trip, kvm_with, parse};
use super::*;

#[test]
fn features_round_trip_in_libvirt_order() {
    // input order scrambled; libvirt writes by kind
    let xml = kvm_with(
        "<features><ioapic driver='qemu'/><smm state='on'><tseg unit='KiB'>49152</tseg></smm>\
         <kvm><dirty-ring state='on' size='4096'/><hidden state='on'/></kvm><pmu state='off'/>\
         <hyperv><avic state='on'/><stimer state='on'><direct state='on'/></stimer>\
         <vendor_id state='on' value='KVM Hv'/><spinlocks state='on' retries='8191'/>\
         <relaxed state='off'/></hyperv><apic eoi='on'/><pvspinlock state='on'/><acpi/></features>",
        "",
    );
    let out = assert_domain_round_trip(&xml);
    let want = "  <features>
    <acpi/>
    <apic eoi='on'/>
    <hyperv mode='custom'>
      <relaxed state='off'/>
      <spinlocks state='on' retries='8191'/>
      <stimer state='on'>
        <direct state='on'/>
      </stimer>
      <vendor_id state='on' value='KVM Hv'/>
      <avic state='on'/>
    </hyperv>
    <kvm>
      <hidden state='on'/>
      <dirty-ring state='on' size='4096'/>
    </kvm>
    <pvspinlock state='on'/>
    <pmu state='off'/>
    <smm state='on'>
      <tseg unit='MiB'>48</tseg>
    </smm>
    <ioapic driver='qemu'/>
  </features>
";
    assert!(out.contains(want), "{out}");
    let d = parse(&xml);
    let hv = d.features.hyperv.as_ref().expect("hyperv");
    assert_eq!(hv.state(HvFlag::Relaxed), Some(false));
    assert_eq!(hv.spinlock_retries, Some(8191));
    assert_eq!(d.features.smm_tseg, Some(48 << 20));
}

#[test]
fn feature_values_libvirt_refuses() {
    for (features, path) in [
        (
            "<hyperv><spinlocks state='on' retries='100'/></hyperv>",
            "/domain/features/hyperv/spinlocks/@retries",
        ),
        (
            "<hyperv><vendor_id state='on' value='ABCDEFGHIJKLM'/></hyperv>",
            "/domain/features/hyperv/vendor_id/@value",
        ),
        (
            "<hyperv><vendor_id state='on' value='a,b'/></hyperv>",
            "/domain/features/hyperv/vendor_id/@value",
        ),
        (
            "<hyperv><relaxed/></hyperv>",
            "/domain/features/hyperv/relaxed/@state",
        ),
        ("<hyperv mode='auto'/>", "/domain/features/hyperv/@mode"),
        (
            "<kvm><dirty-ring state='on' size='3000'/></kvm>",
            "/domain/features/kvm/dirty-ring/@size",
        ),
        (
            "<hyperv><crash state='on'/></hyperv>",
            "/domain/features/hyperv/crash",
        ),
        ("<gic version='3'/>", "/domain/features/gic"),
        ("<apic eoi='maybe'/>", "/domain/features/apic/@eoi"),
    ] {
        let xml = kvm_with(&format!("<features>{features}</features>"), "");
        let e = DomainDef::from_xml(&xml).expect_err(features);
        assert_eq!(e.path(), Some(path), "{features}: {e}");
    }
}

#[test]
fn clocks_and_timers_as_libvirt_keeps_them() {
    // a numeric adjustment on a utc/localtime clock makes it variable on that basis
    let d = parse(&kvm_with("<clock offset='localtime' adjustment='30'/>", ""));
    let c = d.clock.as_ref().expect("clock");
    assert_eq!(
        (c.offset, c.adjustment, c.basis),
        (ClockOffset::Variable, Some(30), Some(ClockBasis::Localtime))
    );
    // a variable clock always writes its adjustment and basis
    let out = assert_domain_round_trip(&kvm_with(
        "<clock offset='variable'><timer name='tsc' frequency='2000000000' mode='native'/>\
         <timer name='pit' tickpolicy='discard'/></clock>",
        "",
    ));
    assert!(
        out.contains(
            "<clock offset='variable' adjustment='0' basis='utc'>\n    \
             <timer name='tsc' frequency='2000000000' mode='native'/>"
        ),
        "{out}"
    );
    // frequency belongs to tsc only
    let e = DomainDef::from_xml(&kvm_with(
        "<clock><timer name='rtc' frequency='5'/></clock>",
        "",
    ))
    .expect_err("rtc frequency");
    assert_eq!(e.path(), Some("/domain/clock/timer/@frequency"));
}

#[test]
fn sound_codecs_and_audio_paths_round_trip() {
    let out = assert_domain_round_trip(&kvm_with(
        "",
        "<sound model='ich9'><codec type='micro'/><codec type='output'/><audio id='2'/></sound>\
         <audio id='2' type='file' path='/tmp/a.wav'/>",
    ));
    assert!(
        out.contains("<sound model='ich9'>\n      <codec type='micro'/>\n      <codec type='output'/>\n      <audio id='2'/>"),
        "{out}"
    );
    assert!(
        out.contains("<audio id='2' type='file' path='/tmp/a.wav'/>"),
        "{out}"
    );
    // codecs are for HD audio only, a path for file backends only
    for (devices, path) in [
        (
            "<sound model='ac97'><codec type='duplex'/></sound>",
            "/domain/devices/sound/codec",
        ),
        (
            "<sound model='ich6'><codec type='stereo'/></sound>",
            "/domain/devices/sound/codec/@type",
        ),
        (
            "<audio id='1' type='none' path='/x'/>",
            "/domain/devices/audio/@path",
        ),
    ] {
        let e = DomainDef::from_xml(&kvm_with("", devices)).expect_err(devices);
        assert_eq!(e.path(), Some(path), "{devices}: {e}");
    }
}
