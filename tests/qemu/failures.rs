//! What cannot start, and why; and a rich definition that QEMU really accepts.

use crate::{define_guest_with, guest, guests, support::proxies::*, support::*, wait_agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_bad_disk_and_capabilities() {
    let _permit = guests(1).await;
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;

    // The capabilities document says what QEMU offers and whether KVM is usable.
    let caps = mgr.get_capabilities().await.expect("caps");
    assert!(caps.contains("<driver name='qemu'>"), "{caps}");
    assert!(caps.contains("<domain type='kvm'/>"), "{caps}");
    assert!(
        caps.contains("<emulator path='/usr/bin/qemu-system-x86_64' arch='x86_64'"),
        "{caps}"
    );
    assert!(
        caps.contains("<accelerator name='tcg' usable='yes'/>"),
        "{caps}"
    );
    assert!(
        caps.contains("alias='pc' default='yes'>pc-i440fx-"),
        "{caps}"
    );
    let pvm = std::path::Path::new("/sys/module/kvm_pvm").exists();
    if pvm {
        assert!(
            caps.contains("<kvm usable='no' reason='/dev/kvm is kvm-pvm"),
            "{caps}"
        );
    }
    // the capability probe is cached on disk for the next start
    assert!(
        std::fs::read_dir(
            std::env::var("HOME")
                .map(|h| format!("{h}/.cache/virtbus/qemu"))
                .unwrap_or_default()
        )
        .map(|mut r| r.next().is_some())
        .unwrap_or(false)
    );

    // A disk image that does not exist: QEMU's own error, naming the path and the log.
    let xml = guest::domain_xml(
        "baddisk",
        std::path::Path::new("/nonexistent/vb-missing.qcow2"),
        "",
    );
    let path = mgr.define_domain(&xml, no_opts()).await.expect("define");
    let dom = domain(&conn, &path).await;
    sigs.take().await;
    let r = dom.start(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.Failed");
    let msg = error_message(&r);
    assert!(msg.contains("/nonexistent/vb-missing.qcow2"), "{msg}");
    assert!(
        msg.contains("No such file or directory"),
        "QEMU's words: {msg}"
    );
    assert!(msg.contains("qemu/log/baddisk.log"), "names the log: {msg}");
    assert_eq!(dom.state().await.expect("state"), "shut-off");
    assert!(lifecycle(&sigs.take().await).is_empty(), "nothing started");
    let log = std::fs::read_to_string(d.runtime.join("qemu/log/baddisk.log")).expect("log");
    assert!(log.contains("start failed"), "{log}");

    // kvm domains need a usable KVM.
    let kvm = guest::domain_xml("kvmdom", std::path::Path::new("/tmp/x.qcow2"), "")
        .replace("<domain type='qemu'>", "<domain type='kvm'>");
    let r = mgr.define_domain(&kvm, no_opts()).await;
    if pvm {
        assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported");
        let m = error_message(&r);
        assert!(
            m.contains("KVM is not usable") && m.contains("kvm-pvm"),
            "{m}"
        );
    }

    // What the driver cannot honour is refused, named, and nothing changes.
    for (extra, named) in [
        ("<sound model='ich7'/>", "sound"),
        ("<watchdog model='diag288'/>", "diag288"),
        ("<shmem name='legacy'/>", "model 'ivshmem'"),
    ] {
        let xml = guest::domain_xml("refused", std::path::Path::new("/tmp/y.qcow2"), extra);
        let r = mgr.define_domain(&xml, no_opts()).await;
        assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{extra}");
        assert!(
            error_message(&r).contains(named),
            "{extra}: {}",
            error_message(&r)
        );
    }
    assert_eq!(mgr.list_domains(no_opts()).await.expect("list").len(), 1);
}

/// A definition with many kinds of devices: QEMU must accept the command line as generated
/// (started paused, so no boot is needed), and the live XML shows the runtime facts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_definition_starts_under_real_qemu() {
    let _permit = guests(1).await;
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let dir = bus.dir.path();
    let (disk, raw) = (dir.join("rich.qcow2"), dir.join("rich.raw"));
    guest::data_disk(&disk);
    std::fs::write(&raw, vec![0u8; 1 << 20]).expect("raw");
    let serial_log = dir.join("serial.log");
    let xml = format!(
        "<domain type='qemu'>
  <name>rich</name>
  <memory unit='MiB'>256</memory>
  <currentMemory unit='MiB'>192</currentMemory>
  <vcpu current='1'>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/><bootmenu enable='no'/></os>
  <features><acpi/><apic/><vmport state='off'/></features>
  <cpu mode='maximum'><topology sockets='1' cores='2' threads='1'/></cpu>
  <clock offset='utc'><timer name='rtc' tickpolicy='catchup'/><timer name='hpet' present='no'/></clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' discard='unmap'/>
      <source file='{disk}'/><target dev='vda' bus='virtio'/><serial>RICH-1</serial>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='writethrough'/>
      <source file='{raw}'/><target dev='sda' bus='sata'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
    <controller type='usb' model='piix3-uhci'/>
    <interface type='user'><mac address='52:54:00:aa:00:01'/><model type='e1000'/><link state='down'/></interface>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='file'><source path='{serial_log}'/></serial>
    <console type='file'><source path='{serial_log}'/><target type='serial'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <channel type='pty'><target type='virtio' name='org.virtbus.test.0'/></channel>
    <input type='tablet' bus='usb'/>
    <input type='mouse' bus='ps2'/>
    <graphics type='vnc' autoport='yes' passwd='s3cret'><listen type='address' address='127.0.0.1'/></graphics>
    <video><model type='vga' vgamem='16384'/></video>
    <watchdog model='i6300esb' action='reset'/>
    <memballoon model='virtio'><stats period='5'/></memballoon>
    <rng model='virtio'><rate bytes='1024' period='1000'/><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>",
        disk = disk.display(),
        raw = raw.display(),
        serial_log = serial_log.display(),
    );
    let path = mgr.define_domain(&xml, no_opts()).await.expect("define");
    let dom = domain(&conn, &path).await;
    let r = dom
        .start(opts([("paused", zbus::Variant::Bool(true))]))
        .await;
    let log = std::fs::read_to_string(d.runtime.join("qemu/log/rich.log")).unwrap_or_default();
    r.unwrap_or_else(|e| panic!("start: {e}\n{log}"));
    assert_eq!(dom.state().await.expect("state"), "paused");
    let live = dom.get_xml(no_opts()).await.expect("live");
    for want in [
        "<alias name='sata0-0-0'/>",
        "<alias name='ide0-1-0'/>",
        "<alias name='virtio-disk0'/>",
        "<alias name='net1'/>",
        "<alias name='usb'/>",
        "<alias name='channel1'/>",
        "<alias name='balloon0'/>",
        "<alias name='watchdog0'/>",
        "<alias name='rng0'/>",
        "<alias name='video0'/>",
        "<controller type='virtio-serial' index='0'>",
        "<address type='virtio-serial' controller='0' bus='0' port='2'/>",
    ] {
        assert!(live.contains(want), "{want} in\n{live}");
    }
    // the pty channel got its path; the VNC port was picked by QEMU
    assert!(
        live.contains("<channel type='pty'>\n      <source path='/dev/pts/"),
        "{live}"
    );
    assert!(!live.contains("port='-1'"), "{live}");
    let st = dom.get_stats(no_opts()).await.expect("stats");
    assert_eq!(crate::u64_of(&st, "balloon.maximum"), 256 * 1024);
    assert_eq!(crate::u64_of(&st, "vcpu.current"), 1);
    assert_eq!(crate::u64_of(&st, "block.count"), 2);
    assert!(log.contains("-blockdev"), "{log}");
    dom.destroy(no_opts()).await.expect("destroy");
}

/// A q35 guest laid out as libvirt does: its PCI Express devices each behind a
/// pcie-root-port, the ports functions of a slot of pcie.0. The guest boots, its agent
/// answers, and it finds its virtio disk behind a root port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q35_guest_runs_behind_root_ports() {
    let _permit = guests(1).await;
    let g = define_guest_with("q35", guest::TEST_CHANNEL, |xml| {
        xml.replace("<type arch='x86_64'>", "<type arch='x86_64' machine='q35'>")
    })
    .await;
    let dom = domain(&g.conn, &g.path).await;
    let inactive = dom.get_xml(no_opts()).await.expect("xml");
    assert!(inactive.contains("machine='pc-q35-7.2'"), "{inactive}");
    assert!(
        inactive.contains("<controller type='pci' index='1' model='pcie-root-port'>"),
        "{inactive}"
    );
    // the disk behind a root port (bus 0x0N), not on pcie.0
    let disk_xml = &inactive[inactive.find("<disk").expect("disk")..];
    let disk_xml = &disk_xml[..disk_xml.find("</disk>").expect("end")];
    assert!(!disk_xml.contains("bus='0x00'"), "{disk_xml}");
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<alias name='pci.1'/>"), "{live}");
    let ga = guest::TestAgent::of(&live).await;
    // sysfs shows the disk's PCI path: the root complex, a port, then the device
    let path = ga.sh("readlink -f /sys/block/vda; true").await;
    let hops = path.split('/').filter(|p| p.starts_with("0000:")).count();
    assert!(hops >= 2, "vda sits behind a root port: {path}");
    dom.destroy(no_opts()).await.expect("destroy");
}

/// libvirt's QEMU namespace: the arguments reach QEMU (the guest reads the serial number
/// they set), the variables its environment, and the domain is marked tainted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_commandline_reaches_qemu() {
    let _permit = guests(1).await;
    let g = define_guest_with("qns", guest::TEST_CHANNEL, |xml| {
        xml.replace(
            "<domain type='qemu'>",
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
        )
        .replace(
            "</domain>",
            "<qemu:commandline><qemu:arg value='-smbios'/>\
             <qemu:arg value='type=1,serial=VBQEMUNS'/>\
             <qemu:env name='VB_TEST_ENV' value='on'/></qemu:commandline></domain>",
        )
    })
    .await;
    let dom = domain(&g.conn, &g.path).await;
    assert!(
        dom.warning()
            .await
            .expect("warning")
            .starts_with("tainted:")
    );
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(
        live.contains("<qemu:arg value='type=1,serial=VBQEMUNS'/>"),
        "{live}"
    );
    let ga = guest::TestAgent::of(&live).await;
    let serial = ga
        .sh("cat /sys/class/dmi/id/product_serial 2>/dev/null; true")
        .await;
    assert_eq!(serial.trim(), "VBQEMUNS");
    // QEMU's environment has the variable
    let environ = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .contains("guest=qns,")
                .then(|| std::fs::read(e.path().join("environ")).ok())?
        })
        .next()
        .expect("the guest's QEMU");
    assert!(
        String::from_utf8_lossy(&environ)
            .split('\0')
            .any(|v| v == "VB_TEST_ENV=on"),
        "QEMU's environment"
    );
    dom.destroy(no_opts()).await.expect("destroy");
}
