//! `<features>`, `<clock>`, `<pm>` and sound on the command line, checked against the
//! arguments libvirt 9.0 writes for the same input (tests/qemuxml2argvdata).

use super::tests::{build_with, def};
use super::*;
use crate::drivers::qemu::caps::tests::x86_64;

fn args(d: &DomainDef, accel: Accel) -> Vec<String> {
    build_with(d, &x86_64(), accel).expect("builds").args
}

/// The value after the first `flag`.
fn opt(args: &[String], flag: &str) -> String {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args[i + 1].clone()
}

/// Every value after `flag`, in order.
fn opts(args: &[String], flag: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

fn refused(d: &DomainDef, accel: Accel) -> String {
    build_with(d, &x86_64(), accel)
        .expect_err("refused")
        .to_string()
}

const HYPERV_ALL: &str = "<features><acpi/><hyperv><relaxed state='on'/><vapic state='on'/>\
    <spinlocks state='on' retries='12287'/><vpindex state='on'/><runtime state='on'/>\
    <synic state='on'/><stimer state='on'/><reset state='on'/>\
    <vendor_id state='on' value='KVM Hv'/><frequencies state='on'/>\
    <reenlightenment state='on'/><tlbflush state='on'/><ipi state='on'/><evmcs state='on'/>\
    <avic state='on'/></hyperv></features>";

#[test]
fn hyperv_flags_as_libvirt_writes_them() {
    // hyperv.x86_64-latest.args
    let a = args(&def("", HYPERV_ALL, "", ""), Accel::Kvm);
    assert_eq!(
        opt(&a, "-cpu"),
        "qemu64,hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x2fff,hv-vpindex=on,hv-runtime=on,\
         hv-synic=on,hv-stimer=on,hv-reset=on,hv-vendor-id=KVM Hv,hv-frequencies=on,\
         hv-reenlightenment=on,hv-tlbflush=on,hv-ipi=on,hv-evmcs=on,hv-avic=on"
    );
    // hyperv-stimer-direct.x86_64-latest.args; off states pass nothing
    let d = def(
        "",
        "<features><hyperv><vpindex state='on'/><synic state='on'/><stimer state='on'>\
         <direct state='on'/></stimer><relaxed state='off'/></hyperv></features>",
        "",
        "",
    );
    assert_eq!(
        opt(&args(&d, Accel::Kvm), "-cpu"),
        "qemu64,hv-vpindex=on,hv-synic=on,hv-stimer=on,hv-stimer-direct=on"
    );
    let d = def(
        "",
        "<features><hyperv mode='passthrough'/></features>",
        "",
        "",
    );
    assert_eq!(
        opt(&args(&d, Accel::Kvm), "-cpu"),
        "qemu64,hv-passthrough=on"
    );
}

/// virt-install's Windows 10/11 profile: it must start under TCG.
#[test]
fn windows_profile_under_tcg() {
    let d = def(
        "<os><type machine='q35'>hvm</type></os>",
        "<features><acpi/><apic/><hyperv mode='custom'><relaxed state='on'/><vapic state='on'/>\
         <spinlocks state='on' retries='8191'/></hyperv><vmport state='off'/></features>\
         <clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
         <timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/>\
         <timer name='hypervclock' present='yes'/></clock>\
         <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>",
        "",
        "",
    );
    let a = args(&d, Accel::Tcg);
    assert_eq!(
        opt(&a, "-machine"),
        "pc-q35-7.2,usb=off,dump-guest-core=off,vmport=off,hpet=off"
    );
    assert_eq!(
        opt(&a, "-cpu"),
        "qemu64,hv-time=on,hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff"
    );
    assert_eq!(opt(&a, "-rtc"), "base=localtime,driftfix=slew");
    // QEMU's own PIT delays lost ticks: no kvm-pit global under TCG
    assert_eq!(
        opts(&a, "-global"),
        ["ICH9-LPC.disable_s3=1", "ICH9-LPC.disable_s4=1"]
    );
    // the same under KVM gets the in-kernel PIT's policy
    let a = args(&d, Accel::Kvm);
    assert_eq!(opts(&a, "-global")[0], "kvm-pit.lost_tick_policy=delay");
}

#[test]
fn pm_on_i440fx() {
    // pm-* args: PIIX4_PM's switches, inverted
    let d = def(
        "",
        "<pm><suspend-to-mem enabled='yes'/><suspend-to-disk enabled='no'/></pm>",
        "",
        "",
    );
    assert_eq!(
        opts(&args(&d, Accel::Tcg), "-global"),
        ["PIIX4_PM.disable_s3=0", "PIIX4_PM.disable_s4=1"]
    );
}

#[test]
fn kvm_and_cpu_features_as_libvirt_writes_them() {
    // kvm-features.args
    let d = def(
        "",
        "<features><acpi/><kvm><hidden state='on'/><hint-dedicated state='on'/>\
         <poll-control state='on'/><pv-ipi state='on'/><dirty-ring state='on' size='4096'/>\
         </kvm></features><cpu mode='host-passthrough' check='none'/>",
        "",
        "",
    );
    let a = args(&d, Accel::Kvm);
    assert_eq!(opt(&a, "-accel"), "kvm,dirty-ring-size=4096");
    assert_eq!(
        opt(&a, "-cpu"),
        "host,kvm=off,kvm-hint-dedicated=on,kvm-poll-control=on"
    );
    let d = def(
        "",
        "<features><kvm><pv-ipi state='off'/></kvm></features>",
        "",
        "",
    );
    assert_eq!(opt(&args(&d, Accel::Tcg), "-cpu"), "qemu64,kvm-pv-ipi=off");
    // kvmclock+eoi-disabled, pv-spinlock-disabled, pmu-feature-off, cpu-tsc-frequency
    for (top, want) in [
        (
            "<features><apic eoi='off'/></features><clock offset='utc'>\
             <timer name='kvmclock' present='no'/></clock>",
            "qemu64,kvmclock=off,kvm-pv-eoi=off",
        ),
        (
            "<features><pvspinlock state='off'/></features>",
            "qemu64,kvm-pv-unhalt=off",
        ),
        ("<features><pmu state='off'/></features>", "qemu64,pmu=off"),
        (
            "<cpu><model>Haswell</model></cpu><clock offset='utc'>\
             <timer name='tsc' frequency='4567890000'/></clock>",
            "Haswell,tsc-frequency=4567890000",
        ),
    ] {
        assert_eq!(opt(&args(&def("", top, "", ""), Accel::Tcg), "-cpu"), want);
    }
}

#[test]
fn smm_tseg_and_ioapic() {
    // tseg-explicit-size.x86_64-latest.args
    let q35 = "<os><type machine='q35'>hvm</type></os>";
    let d = def(
        q35,
        "<features><smm state='on'><tseg unit='MiB'>48</tseg></smm><ioapic driver='qemu'/>\
         </features>",
        "",
        "",
    );
    let a = args(&d, Accel::Tcg);
    assert_eq!(opts(&a, "-global"), ["mch.extended-tseg-mbytes=48"]);
    assert_eq!(
        opt(&a, "-machine"),
        "pc-q35-7.2,usb=off,dump-guest-core=off,acpi=off,smm=on,kernel_irqchip=split"
    );
    let d = def(
        "",
        "<features><smm state='on'><tseg>48</tseg></smm></features>",
        "",
        "",
    );
    assert!(refused(&d, Accel::Tcg).contains("<tseg> outside a q35 machine"));
    let d = def(
        q35,
        "<features><smm state='on'><tseg unit='KiB'>1536</tseg></smm></features>",
        "",
        "",
    );
    assert!(refused(&d, Accel::Tcg).contains("whole MiB"));
}

#[test]
fn what_tcg_cannot_do_is_refused_by_name() {
    for (top, want) in [
        (
            "<features><hyperv><vpindex state='on'/></hyperv></features>",
            "<features><hyperv><vpindex> under TCG",
        ),
        (
            "<features><hyperv mode='passthrough'/></features>",
            "<features><hyperv mode='passthrough'> under TCG",
        ),
        (
            "<features><kvm><hint-dedicated state='on'/></kvm></features>",
            "<features><kvm><hint-dedicated> under TCG",
        ),
        (
            "<features><kvm><dirty-ring state='on' size='1024'/></kvm></features>",
            "<features><kvm><dirty-ring> under TCG",
        ),
        (
            "<features><ioapic driver='kvm'/></features>",
            "<features><ioapic driver='kvm'> under TCG",
        ),
        (
            "<clock><timer name='pit' tickpolicy='discard'/></clock>",
            "<timer name='pit'> tickpolicy 'discard' under TCG",
        ),
    ] {
        let e = refused(&def("", top, "", ""), Accel::Tcg);
        assert!(e.contains(want), "{top}: '{e}' does not name '{want}'");
    }
    // vpindex off asks for nothing
    let d = def(
        "",
        "<features><hyperv><vpindex state='off'/></hyperv></features>",
        "",
        "",
    );
    assert!(build_with(&d, &x86_64(), Accel::Tcg).is_ok());
}

#[test]
fn clock_offsets_and_rtc_tracking() {
    // clock-france.args: the timezone goes to QEMU's environment
    let d = def(
        "",
        "<clock offset='timezone' timezone='Europe/Paris'/>",
        "",
        "",
    );
    let plan = build_with(&d, &x86_64(), Accel::Tcg).expect("builds");
    assert_eq!(opt(&plan.args, "-rtc"), "base=localtime");
    assert_eq!(plan.env, [("TZ".to_string(), "Europe/Paris".to_string())]);
    // clock-realtime.args and the other tracks
    for (track, want) in [
        ("realtime", "base=utc,clock=rt"),
        ("guest", "base=utc,clock=vm"),
        ("wall", "base=utc,clock=host"),
    ] {
        let d = def(
            "",
            &format!("<clock offset='utc'><timer name='rtc' track='{track}'/></clock>"),
            "",
            "",
        );
        assert_eq!(opt(&args(&d, Accel::Tcg), "-rtc"), want);
    }
}

#[test]
fn variable_clock_starts_at_the_adjusted_time() {
    let d = def(
        "",
        "<clock offset='variable' adjustment='3600' basis='localtime'/>",
        "",
        "",
    );
    // at the epoch, two hours east of UTC: one hour on top of local time
    let c = clock::clock_args(&d, Accel::Tcg, 0, 7200).expect("builds");
    assert_eq!(c.rtc, "base=1970-01-01T03:00:00");
    assert_eq!(c.utc_adjustment, Some(10800));
    let d = def("", "<clock offset='variable' adjustment='-86400'/>", "", "");
    let c = clock::clock_args(&d, Accel::Tcg, 951_868_800, 7200).expect("builds");
    assert_eq!(c.rtc, "base=2000-02-29T00:00:00");
    // the live definition records the UTC adjustment
    let d = def(
        "",
        "<clock offset='variable' adjustment='60' basis='utc'/>",
        "",
        "",
    );
    let plan = build_with(&d, &x86_64(), Accel::Tcg).expect("builds");
    let live = plan.live.clock.expect("clock");
    assert_eq!(
        (live.adjustment, live.basis),
        (Some(60), Some(crate::model::ClockBasis::Utc))
    );
    assert!(opt(&plan.args, "-rtc").starts_with("base=2"));
    assert_eq!(clock::utc_datetime(-1), "1969-12-31T23:59:59");
    assert_eq!(clock::utc_datetime(4_102_444_800), "2100-01-01T00:00:00");
}

#[test]
fn sound_cards_as_libvirt_writes_them() {
    // sound-device.args (one ich9 fewer), addressed at define as libvirt does
    let mut d = def(
        "",
        "",
        "",
        "<controller type='usb' index='0' model='piix3-uhci'/>\
         <sound model='pcspk'/><sound model='es1370'/><sound model='sb16'/><sound model='ac97'/>\
         <sound model='ich6'/><sound model='ich6'><codec type='micro'/><codec type='duplex'/>\
         <codec type='output'/></sound><sound model='ich9'/><sound model='usb'/>\
         <audio id='1' type='none'/>",
    );
    crate::drivers::qemu::defaults::apply(&mut d, &x86_64()).expect("defaults");
    let a = args(&d, Accel::Tcg);
    assert!(
        opt(&a, "-machine").ends_with(",pcspk-audiodev=audio1"),
        "{a:?}"
    );
    assert_eq!(opts(&a, "-audiodev"), ["none,id=audio1"]);
    let devs: Vec<String> = opts(&a, "-device")
        .into_iter()
        .filter(|d| d.contains("sound"))
        .collect();
    assert_eq!(
        devs,
        [
            "ES1370,id=sound1,audiodev=audio1,addr=0x2.0",
            "sb16,id=sound2,audiodev=audio1",
            "AC97,id=sound3,audiodev=audio1,addr=0x3.0",
            "intel-hda,id=sound4,addr=0x4.0",
            "hda-duplex,id=sound4-codec0,bus=sound4.0,cad=0,audiodev=audio1",
            "intel-hda,id=sound5,addr=0x5.0",
            "hda-micro,id=sound5-codec0,bus=sound5.0,cad=0,audiodev=audio1",
            "hda-duplex,id=sound5-codec1,bus=sound5.0,cad=1,audiodev=audio1",
            "hda-output,id=sound5-codec2,bus=sound5.0,cad=2,audiodev=audio1",
            "ich9-intel-hda,id=sound6,addr=0x6.0",
            "hda-duplex,id=sound6-codec0,bus=sound6.0,cad=0,audiodev=audio1",
            "usb-audio,id=sound7,audiodev=audio1,bus=usb.0,port=1",
        ]
    );
}

#[test]
fn ich9_on_q35_and_audio_links() {
    let mut d = def(
        "<os><type machine='q35'>hvm</type></os>",
        "",
        "",
        "<sound model='ich9'><codec type='output'/><audio id='2'/></sound>\
         <audio id='1' type='none'/><audio id='2' type='file' path='/tmp/out,1.wav'/>",
    );
    crate::drivers::qemu::defaults::apply(&mut d, &x86_64()).expect("defaults");
    let a = args(&d, Accel::Tcg);
    assert_eq!(
        opts(&a, "-audiodev"),
        ["none,id=audio1", "wav,id=audio2,path=/tmp/out,,1.wav"]
    );
    let devs = opts(&a, "-device");
    assert!(
        devs.contains(&"ich9-intel-hda,id=sound0,addr=0x1b.0".to_string()),
        "{devs:?}"
    );
    assert!(
        devs.contains(&"hda-output,id=sound0-codec0,bus=sound0.0,cad=0,audiodev=audio2".into())
    );

    let bad = def(
        "",
        "",
        "",
        "<sound model='ac97'><audio id='3'/></sound><audio id='1' type='none'/>",
    );
    assert!(refused(&bad, Accel::Tcg).contains("<audio id='3'> names no <audio>"));
    for (devices, want) in [
        ("<audio id='1' type='pipewire'/>", "no PipeWire backend"),
        ("<audio id='1' type='spice'/>", "without SPICE graphics"),
        (
            "<sound model='usb'/><controller type='usb' model='none'/>",
            "no USB controller",
        ),
    ] {
        let e = refused(&def("", "", "", devices), Accel::Tcg);
        assert!(e.contains(want), "{devices}: {e}");
    }
}
