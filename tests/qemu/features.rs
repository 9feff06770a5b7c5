//! A Windows-style definition (virt-install's win10 profile: Hyper-V enlightenments,
//! localtime clock with its timers, no suspend) with an ICH9 HD audio card, run under TCG:
//! the guest sees the sound card at the address given at define, no HPET and no S3.

use crate::{define_guest_with, guest, guests, support::*, wait_agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_profile_features_timers_and_ich9_sound() {
    let _permit = guests(1).await;
    let devices = format!(
        "{}<sound model='ich9'><codec type='output'/><audio id='1'/></sound>\
         <audio id='1' type='none'/>",
        guest::TEST_CHANNEL
    );
    let g = define_guest_with("winf", &devices, |xml| {
        xml.replace("<type arch='x86_64'>", "<type arch='x86_64' machine='q35'>")
            .replace(
                "<features><acpi/></features>",
                "<features><acpi/><apic/><hyperv mode='custom'><relaxed state='on'/>\
                     <vapic state='on'/><spinlocks state='on' retries='8191'/>\
                     <vendor_id state='on' value='virtbus'/></hyperv><vmport state='off'/>\
                     </features>\
                     <clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
                     <timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/>\
                     <timer name='hypervclock' present='yes'/></clock>\
                     <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>",
            )
    })
    .await;
    let dom = proxies::domain(&g.conn, &g.path).await;
    let inactive = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        inactive.contains("<spinlocks state='on' retries='8191'/>"),
        "{inactive}"
    );
    // libvirt's place for the ICH9's own HD audio on q35
    let sound = &inactive[inactive.find("<sound model='ich9'>").expect("sound")..];
    let sound = &sound[..sound.find("</sound>").expect("end")];
    assert!(
        sound.contains("<codec type='output'/>")
            && sound.contains("bus='0x00' slot='0x1b' function='0x0'"),
        "{sound}"
    );
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<alias name='sound0'/>"), "{live}");
    let ga = guest::TestAgent::of(&live).await;
    let ids = ga
        .sh("cat /sys/bus/pci/devices/0000:00:1b.0/vendor /sys/bus/pci/devices/0000:00:1b.0/device")
        .await;
    assert_eq!(
        ids.split_whitespace().collect::<Vec<_>>(),
        ["0x8086", "0x293e"],
        "the ICH9 HD audio controller at 00:1b.0"
    );
    // <timer name='hpet' present='no'/>: the guest has no HPET clocksource
    let sources = ga
        .sh("cat /sys/devices/system/clocksource/clocksource0/available_clocksource")
        .await;
    assert!(
        !sources.is_empty() && !sources.contains("hpet"),
        "{sources}"
    );
    // suspend-to-mem disabled: the firmware offers no S3 ("deep" sleep), only s2idle
    let sleep = ga.sh("cat /sys/power/mem_sleep").await;
    assert!(
        sleep.contains("s2idle") && !sleep.contains("deep"),
        "{sleep}"
    );
    // QEMU 7.2 builds the Hyper-V CPUID leaves only with KVM: under TCG the enlightenments
    // are accepted and the guest runs without them (what the README says)
    let detected = ga.sh("dmesg | grep -c 'Hypervisor detected'; true").await;
    assert_eq!(detected.trim(), "0", "the guest saw a hypervisor signature");
    dom.destroy(no_opts()).await.expect("destroy");
}
