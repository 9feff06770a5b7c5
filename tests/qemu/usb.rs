//! USB and SPICE devices in a real guest: an xhci controller with a tablet and two SPICE
//! USB redirections at the ports assigned at define time, and SPICE's agent channel.

use std::time::Duration;

use crate::{
    define_guest_with, guest, guests, qemu_pid, support::proxies::*, support::*, until, wait_agent,
};

/// The USB port a live device element carries (`<input type='tablet' …>`), from its
/// `<address type='usb' bus='0' port='N'/>`.
fn usb_port(live: &str, start: &str) -> String {
    let at = live
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {live}"));
    let rest = &live[at..];
    let addr = rest
        .find("<address type='usb'")
        .unwrap_or_else(|| panic!("no USB address after {start} in {live}"));
    let port = &rest[addr..];
    let p = port.find("port='").expect("port") + 6;
    port[p..].split('\'').next().expect("port value").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn usb_tablet_and_spice_redirection_on_xhci() {
    let _permit = guests(1).await;
    let extra = format!(
        "{}<controller type='usb' index='0' model='qemu-xhci' ports='8'/>\
         <input type='tablet' bus='usb'/>\
         <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>\
         <redirdev bus='usb' type='spicevmc'/><redirdev bus='usb' type='spicevmc'/>\
         <redirfilter><usbdev class='0x08' allow='yes'/><usbdev allow='no'/></redirfilter>",
        guest::TEST_CHANNEL
    );
    let g = define_guest_with("usbspice", &extra, |xml| {
        xml.replace(
            "<graphics type='vnc' autoport='yes'/>",
            "<graphics type='spice' autoport='yes'><image compression='off'/>\
             <clipboard copypaste='no'/></graphics>",
        )
    })
    .await;
    let dom = domain(&g.conn, &g.path).await;

    // define time: libvirt's port order (inputs before redirections)
    let inactive = dom.get_xml(no_opts()).await.expect("defined xml");
    assert_eq!(usb_port(&inactive, "<input type='tablet' bus='usb'>"), "1");
    assert_eq!(
        usb_port(&inactive, "<redirdev bus='usb' type='spicevmc'>"),
        "2"
    );

    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<alias name='redir1'/>"), "{live}");

    // QEMU runs the redirections with the filter, at their ports
    let pid = qemu_pid(&g.daemon.runtime, &dom.uuid().await.expect("uuid"));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("qemu cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    for want in [
        "spicevmc,id=charredir0,name=usbredir",
        "usb-redir,chardev=charredir0,id=redir0,filter=0x08:-1:-1:-1:1|-1:-1:-1:-1:0,bus=usb.0,port=2",
        "usb-redir,chardev=charredir1,id=redir1,filter=0x08:-1:-1:-1:1|-1:-1:-1:-1:0,bus=usb.0,port=3",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    assert!(
        args.iter()
            .any(|a| a.starts_with("port=")
                && a.contains("image-compression=off,disable-copy-paste=on")),
        "{args:?}"
    );

    // the guest: QEMU's xhci (1b36:000d) on PCI, the tablet (0627:0001) on the port
    // assigned at define time, and SPICE's agent port
    let ga = guest::TestAgent::of(&live).await;
    let pci = ga
        .sh("for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor):$(cat $d/device); done")
        .await;
    assert!(pci.lines().any(|l| l == "0x1b36:0x000d"), "{pci}");
    let find_tablet = "for d in /sys/bus/usb/devices/*; do \
         [ -f $d/idVendor ] && echo ${d##*/}=$(cat $d/idVendor):$(cat $d/idProduct); done";
    let mut usb = String::new();
    until(
        "the guest enumerates the USB tablet",
        Duration::from_secs(60),
        async || {
            usb = ga.sh(find_tablet).await;
            usb.contains("=0627:0001")
        },
    )
    .await;
    let tablet = usb
        .lines()
        .find(|l| l.ends_with("=0627:0001"))
        .expect("tablet line");
    let name = tablet.split('=').next().expect("sysfs name");
    assert!(
        name.ends_with("-1") && !name.contains('.'),
        "the tablet sits on root port 1: {usb}"
    );
    let ports = ga.sh("cat /sys/class/virtio-ports/*/name").await;
    assert!(ports.lines().any(|l| l == "com.redhat.spice.0"), "{ports}");

    dom.destroy(no_opts()).await.expect("destroy");
}

/// A `bus='usb'` disk is QEMU's `usb-storage` (libvirt's disk-usb-device-removable): the guest
/// enumerates QEMU's mass storage device (46f4:0001) on the USB bus.
#[tokio::test(flavor = "multi_thread")]
async fn usb_disk_reaches_the_guest() {
    let _permit = guests(1).await;
    let probe = tempfile::tempdir().expect("tempdir");
    let image = probe.path().join("usb.qcow2");
    guest::data_disk(&image);
    let extra = format!(
        "{}<controller type='usb' index='0' model='qemu-xhci'/>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='sdb' bus='usb' removable='on'/></disk>",
        guest::TEST_CHANNEL,
        image.display()
    );
    let g = define_guest_with("usbdisk", &extra, |xml| xml).await;
    let dom = domain(&g.conn, &g.path).await;
    let inactive = dom.get_xml(no_opts()).await.expect("defined xml");
    assert!(
        inactive.contains("<target dev='sdb' bus='usb' removable='on'/>"),
        "{inactive}"
    );
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<alias name='usb-disk1'/>"), "{live}");
    let ga = guest::TestAgent::of(&live).await;
    let list = "for d in /sys/bus/usb/devices/*; do \
         [ -f $d/idVendor ] && echo $(cat $d/idVendor):$(cat $d/idProduct); done";
    let mut usb = String::new();
    until(
        "the guest enumerates QEMU's USB mass storage",
        Duration::from_secs(60),
        async || {
            usb = ga.sh(list).await;
            usb.lines().any(|l| l == "46f4:0001")
        },
    )
    .await;
    dom.destroy(no_opts()).await.expect("destroy");
}

/// SPICE TLS defines (as libvirt with `spice_tls` on) and a start without the certificates in
/// libvirt's default directory is refused naming the first one missing, with nothing started.
#[tokio::test(flavor = "multi_thread")]
async fn spice_tls_without_certificates_is_refused_at_start() {
    if std::path::Path::new("/etc/pki/libvirt-spice/ca-cert.pem").exists() {
        eprintln!("skipped: this host has SPICE certificates in /etc/pki/libvirt-spice");
        return;
    }
    let g = define_guest_with("spicetls", "", |xml| {
        xml.replace(
            "<graphics type='vnc' autoport='yes'/>",
            "<graphics type='spice' port='5903' tlsPort='5904' autoport='no'>\
             <channel name='main' mode='secure'/></graphics>",
        )
    })
    .await;
    let dom = domain(&g.conn, &g.path).await;
    let inactive = dom.get_xml(no_opts()).await.expect("defined xml");
    assert!(inactive.contains("tlsPort='5904'"), "{inactive}");
    let e = dom.start(no_opts()).await.expect_err("no certificates");
    assert!(
        e.to_string()
            .contains("tlsPort needs SPICE's TLS certificate /etc/pki/libvirt-spice/ca-cert.pem"),
        "{e}"
    );
    assert!(!dom.active().await.expect("active"), "nothing runs");
}
