//! Devices against the command lines of libvirt 9.0's tests/qemuxml2argvdata: smartcards,
//! rng egd, virtio-net tuning, parallel ports, channels on a second virtio-serial
//! controller, i686 guests, pcihole64 and ich9 companions without `<master>`.

use super::tests::plan_on_pc;
use crate::model::{DomainDef, FormatOptions};

fn args(devices: &str) -> String {
    plan_on_pc(devices).expect("builds").args.join(" ")
}

fn inactive(devices: &str) -> String {
    let xml = format!(
        "<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{devices}</devices>\
         </domain>"
    );
    DomainDef::from_xml(&xml)
        .expect("parses")
        .to_xml(&FormatOptions::default())
}

#[test]
fn smartcards_as_libvirt_runs_them() {
    // smartcard-controller.args
    let a = args(
        "<controller type='ccid' index='0'/><smartcard mode='host'>\
         <address type='ccid' controller='0' slot='0'/></smartcard>",
    );
    assert!(a.contains("-device usb-ccid,id=ccid0,bus=usb.0"), "{a}");
    assert!(
        a.contains("-device ccid-card-emulated,backend=nss-emulated,id=smartcard0,bus=ccid0.0"),
        "{a}"
    );
    // smartcard-host-certificates-database.args, and the reader libvirt adds
    let a = args(
        "<smartcard mode='host-certificates'><certificate>cert1</certificate>\
         <certificate>cert2</certificate><certificate>cert3</certificate>\
         <database>/tmp/foo</database></smartcard>",
    );
    assert!(a.contains("-device usb-ccid,id=ccid0,bus=usb.0"), "{a}");
    assert!(
        a.contains(
            "-device ccid-card-emulated,backend=certificates,cert1=cert1,cert2=cert2,\
             cert3=cert3,db=/tmp/foo,id=smartcard0,bus=ccid0.0"
        ),
        "{a}"
    );
    // smartcard-passthrough-tcp.args
    let a = args(
        "<smartcard mode='passthrough' type='tcp'>\
         <source mode='bind' host='127.0.0.1' service='2001'/><protocol type='raw'/></smartcard>",
    );
    assert!(
        a.contains("-chardev socket,id=charsmartcard0,host=127.0.0.1,port=2001,server=on,wait=off"),
        "{a}"
    );
    assert!(
        a.contains("-device ccid-card-passthru,chardev=charsmartcard0,id=smartcard0,bus=ccid0.0"),
        "{a}"
    );
    let x = inactive(
        "<smartcard mode='passthrough' type='tcp'>\
         <source mode='bind' host='127.0.0.1' service='2001'/><protocol type='raw'/></smartcard>",
    );
    assert!(
        x.contains("<smartcard mode='passthrough' type='tcp'>"),
        "{x}"
    );
    // two cards in one reader: QEMU's usb-ccid has one slot
    let e = plan_on_pc("<smartcard mode='host'/><smartcard mode='host'/>").unwrap_err();
    assert!(e.contains("one slot"), "{e}");
    let e = super::tests::parse_error(
        "<smartcard mode='host-certificates'><certificate>a</certificate></smartcard>",
    );
    assert!(e.contains("exactly three"), "{e}");
}

#[test]
fn rng_egd_over_a_socket() {
    // virtio-rng-egd.args
    let a = args(
        "<rng model='virtio'><backend model='egd' type='tcp'>\
         <source mode='connect' host='1.2.3.4' service='1234'/><protocol type='raw'/>\
         </backend></rng>",
    );
    assert!(
        a.contains(
            "-chardev socket,id=charrng0,host=1.2.3.4,port=1234 \
             -object rng-egd,id=objrng0,chardev=charrng0 -device virtio-rng-pci,rng=objrng0,id=rng0"
        ),
        "{a}"
    );
    let x = inactive(
        "<rng model='virtio'><backend model='egd' type='tcp'>\
         <source mode='connect' host='1.2.3.4' service='1234'/></backend></rng>",
    );
    assert!(x.contains("<backend model='egd' type='tcp'>"), "{x}");
}

#[test]
fn virtio_net_tuning() {
    // net-virtio-disable-offloads.args, net-virtio-rxtxqueuesize.args, disk-ioeventfd.args
    let a = args(
        "<interface type='user'><mac address='00:22:44:66:88:aa'/><model type='virtio'/>\
         <driver name='vhost' txmode='iothread' ioeventfd='off' rx_queue_size='512' \
         tx_queue_size='1024' rss='on'>\
         <host csum='off' gso='off' tso4='off' tso6='off' ecn='off' ufo='off' mrg_rxbuf='off'/>\
         <guest csum='off' tso4='off' tso6='off' ecn='off' ufo='off'/></driver>\
         <mtu size='9000'/><rom bar='off'/></interface>",
    );
    assert!(
        a.contains(
            "-device virtio-net-pci,tx=bh,ioeventfd=off,csum=off,gso=off,host_tso4=off,\
             host_tso6=off,host_ecn=off,host_ufo=off,mrg_rxbuf=off,guest_csum=off,\
             guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,rx_queue_size=512,\
             tx_queue_size=1024,rss=on,host_mtu=9000,netdev=hostnet0,id=net0,\
             mac=00:22:44:66:88:aa"
        ),
        "{a}"
    );
    assert!(a.contains(",rombar=0"), "{a}");
    let x = inactive(
        "<interface type='user'><mac address='00:22:44:66:88:aa'/><model type='virtio'/>\
         <driver txmode='timer' event_idx='off' ats='on'><host csum='off'/></driver>\
         <mtu size='1500'/><rom enabled='no'/></interface>",
    );
    for want in [
        "<driver txmode='timer' event_idx='off' ats='on'>",
        "<host csum='off'/>",
        "<mtu size='1500'/>",
        "<rom enabled='no'/>",
    ] {
        assert!(x.contains(want), "{want} in {x}");
    }
    // virtio-net only
    let e = plan_on_pc(
        "<interface type='user'><model type='e1000'/><driver txmode='timer'/></interface>",
    )
    .unwrap_err();
    assert!(e.contains("virtio-net only"), "{e}");
    let e = super::tests::parse_error(
        "<interface type='user'><driver rx_queue_size='100'/></interface>",
    );
    assert!(e.contains("power of two"), "{e}");
}

#[test]
fn parallel_ports() {
    // parallel-tcp-chardev.args, parallel-parport-chardev.args
    let a = args(
        "<parallel type='tcp'><source mode='bind' host='127.0.0.1' service='9999'/>\
         <protocol type='raw'/><target port='0'/></parallel>\
         <parallel type='dev'><source path='/dev/parport0'/><target port='1'/></parallel>",
    );
    assert!(
        a.contains(
            "-chardev socket,id=charparallel0,host=127.0.0.1,port=9999,server=on,wait=off \
             -device isa-parallel,chardev=charparallel0,id=parallel0"
        ),
        "{a}"
    );
    assert!(
        a.contains(
            "-chardev parallel,id=charparallel1,path=/dev/parport0 \
             -device isa-parallel,chardev=charparallel1,id=parallel1"
        ),
        "{a}"
    );
}

#[test]
fn channels_on_several_virtio_serial_controllers() {
    // channel-virtio-auto.args: controller 2 is added, ports count per controller
    let a = args(
        "<controller type='virtio-serial' index='0' ports='16' vectors='4'/>\
         <controller type='virtio-serial' index='1'/>\
         <channel type='pty'><target type='virtio' name='org.linux-kvm.port.0'/></channel>\
         <channel type='pty'><target type='virtio' name='org.linux-kvm.port.foo'/>\
         <address type='virtio-serial' controller='1' bus='0'/></channel>\
         <channel type='pty'><target type='virtio' name='org.linux-kvm.port.bar'/>\
         <address type='virtio-serial' controller='1' bus='0' port='3'/></channel>\
         <channel type='pty'><target type='virtio' name='org.linux-kvm.port.ooh'/>\
         <address type='virtio-serial' controller='1' bus='0'/></channel>\
         <channel type='pty'><target type='virtio' name='org.linux-kvm.port.lla'/>\
         <address type='virtio-serial' controller='2' bus='0'/></channel>",
    );
    for want in [
        "-device virtio-serial-pci,id=virtio-serial2",
        "-device virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=org.linux-kvm.port.0",
        "-device virtserialport,bus=virtio-serial1.0,nr=1,chardev=charchannel1,id=channel1,name=org.linux-kvm.port.foo",
        "-device virtserialport,bus=virtio-serial1.0,nr=3,chardev=charchannel2,id=channel2,name=org.linux-kvm.port.bar",
        "-device virtserialport,bus=virtio-serial1.0,nr=2,chardev=charchannel3,id=channel3,name=org.linux-kvm.port.ooh",
        "-device virtserialport,bus=virtio-serial2.0,nr=1,chardev=charchannel4,id=channel4,name=org.linux-kvm.port.lla",
    ] {
        assert!(a.contains(want), "{want} in {a}");
    }
    let e = plan_on_pc(
        "<channel type='pty'><target type='virtio' name='a.b'/>\
         <address type='virtio-serial' controller='0' bus='1' port='1'/></channel>",
    )
    .unwrap_err();
    assert!(e.contains("bus other than 0"), "{e}");
}

#[test]
fn pcihole64_and_usb2_companions() {
    // pcihole64.args
    let a = args(
        "<controller type='pci' index='0' model='pci-root'>\
         <pcihole64 unit='GiB'>1</pcihole64></controller>",
    );
    assert!(
        a.contains("-global i440FX-pcihost.pci-hole64-size=1048576K"),
        "{a}"
    );
    let x = inactive(
        "<controller type='pci' index='0' model='pci-root'>\
         <pcihole64 unit='GiB'>1</pcihole64></controller>",
    );
    assert!(
        x.contains("<pcihole64 unit='KiB'>1048576</pcihole64>"),
        "{x}"
    );
    // q35-usb2.xml: companions without <master> take ports 0, 2, 4 as in libvirt
    let x = inactive(
        "<controller type='usb' index='0' model='ich9-ehci1'/>\
         <controller type='usb' index='0' model='ich9-uhci1'/>\
         <controller type='usb' index='0' model='ich9-uhci2'/>\
         <controller type='usb' index='0' model='ich9-uhci3'/>",
    );
    for p in ["0", "2", "4"] {
        assert!(x.contains(&format!("<master startport='{p}'/>")), "{x}");
    }
}

#[test]
fn i686_guest_on_the_x86_64_emulator() {
    let xml = "<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory>\
        <os><type arch='i686' machine='pc'>hvm</type></os><devices/></domain>";
    let mut d = DomainDef::from_xml(xml).expect("parses");
    let caps = crate::drivers::qemu::caps::tests::x86_64();
    crate::drivers::qemu::defaults::apply(&mut d, &caps).expect("defaults");
    let a = super::tests::build_with(&d, &caps, super::Accel::Tcg)
        .expect("builds")
        .args
        .join(" ");
    // libvirt's qemuBuildCpuArgStr: a 32-bit CPU for i686 on qemu-system-x86_64
    assert!(a.contains("-cpu qemu32"), "{a}");
}
