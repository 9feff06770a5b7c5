//! Golden command lines for representative definitions, and every refusal.

use std::path::Path;

use super::*;
use crate::drivers::qemu::caps::tests::x86_64;

const UUID: &str = "00000000-0000-4000-8000-000000000001";

pub(super) fn def(os: &str, top: &str, pre: &str, devices: &str) -> DomainDef {
    let os = if os.is_empty() {
        "<os><type>hvm</type></os>"
    } else {
        os
    };
    let xml = format!(
        "<domain type='qemu'><name>t</name><uuid>{UUID}</uuid><memory unit='MiB'>64</memory>\
         {pre}{os}{top}<devices>{devices}</devices></domain>"
    );
    DomainDef::from_xml(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

pub(super) fn build_with(d: &DomainDef, caps: &Caps, accel: Accel) -> Result<Plan> {
    let env = Env {
        caps,
        accel,
        dir: Path::new("/run/vb/qemu/d1"),
        id: 3,
        free_port: &|| Some(5901),
        host: None,
    };
    build(d, &env)
}

/// `devices` on an i440fx machine, with the driver's define-time defaults applied.
pub(super) fn plan_on_pc(devices: &str) -> std::result::Result<Plan, String> {
    let xml = format!(
        "<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{devices}</devices>\
         </domain>"
    );
    let mut d = DomainDef::from_xml(&xml).map_err(|e| e.to_string())?;
    let caps = x86_64();
    crate::drivers::qemu::defaults::apply(&mut d, &caps).map_err(|e| e.to_string())?;
    build_with(&d, &caps, Accel::Tcg).map_err(|e| e.to_string())
}

/// Why the model refuses a bare domain with `devices`.
pub(super) fn parse_error(devices: &str) -> String {
    let xml = format!(
        "<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    );
    DomainDef::from_xml(&xml)
        .map(|_| panic!("accepted: {devices}"))
        .unwrap_or_else(|e| e.to_string())
}

fn cmd(d: &DomainDef) -> String {
    build_with(d, &x86_64(), Accel::Tcg)
        .expect("builds")
        .args
        .join(" ")
}

const PREFIX: &str = "-name guest=t,debug-threads=on -S -uuid 00000000-0000-4000-8000-000000000001 \
    -no-user-config -nodefaults -no-shutdown -msg timestamp=on \
    -chardev socket,id=charmonitor,path=/run/vb/qemu/d1/monitor.sock,server=on,wait=off \
    -mon chardev=charmonitor,id=monitor,mode=control";

#[test]
fn golden_minimal() {
    let want = format!(
        "{PREFIX} -machine pc-i440fx-7.2,usb=off,dump-guest-core=off,acpi=off -accel tcg \
         -m size=65536k -smp 1,maxcpus=1,sockets=1,cores=1,threads=1 -rtc base=utc \
         -boot strict=on -display none"
    );
    let plan = build_with(&def("", "", "", ""), &x86_64(), Accel::Tcg).expect("builds");
    assert_eq!(plan.args.join(" "), want);
    assert_eq!(plan.monitor, Path::new("/run/vb/qemu/d1/monitor.sock"));
    assert!(plan.agent.is_none() && plan.setup.is_empty() && plan.ptys.is_empty());
    assert_eq!(plan.live.os.machine.as_deref(), Some("pc-i440fx-7.2"));
    assert_eq!(
        plan.live.devices.emulator.as_deref(),
        Some("/usr/bin/qemu-system-x86_64")
    );
}

#[test]
fn golden_test_guest() {
    let d = def(
        "<os><type arch='x86_64'>hvm</type><kernel>/g/vmlinux</kernel>\
         <initrd>/g/initrd</initrd><cmdline>console=ttyS0 quiet</cmdline></os>",
        "<features><acpi/></features>",
        "<vcpu>2</vcpu>",
        "<disk type='file'><driver name='qemu' type='qcow2'/><source file='/d/a,b.qcow2'/>\
         <target dev='vda' bus='virtio'/></disk>\
         <interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>\
         <serial type='pty'/><console type='pty'><target type='serial'/></console>\
         <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
         <graphics type='vnc' autoport='yes'/>\
         <memballoon model='virtio'/>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    );
    let plan = build_with(&d, &x86_64(), Accel::Tcg).expect("builds");
    let want = format!(
        "{PREFIX} -machine pc-i440fx-7.2,usb=off,dump-guest-core=off -accel tcg \
         -m size=65536k -smp 2,maxcpus=2,sockets=2,cores=1,threads=1 -rtc base=utc \
         -boot strict=on -kernel /g/vmlinux -initrd /g/initrd -append console=ttyS0 quiet \
         -display none -device virtio-serial-pci,id=virtio-serial0 \
         -blockdev {{\"auto-read-only\":true,\"driver\":\"file\",\"filename\":\"/d/a,b.qcow2\",\"node-name\":\"vb-vda-file\",\"read-only\":false}} \
         -blockdev {{\"driver\":\"qcow2\",\"file\":\"vb-vda-file\",\"node-name\":\"vb-vda\",\"read-only\":false}} \
         -device virtio-blk-pci,drive=vb-vda,id=virtio-disk0 \
         -netdev user,id=hostnet0 \
         -device virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:12:34:56,romfile= \
         -chardev pty,id=charserial0 -device isa-serial,chardev=charserial0,id=serial0,index=0 \
         -chardev socket,id=charchannel0,path=/run/vb/qemu/d1/charchannel0.sock,server=on,wait=off \
         -device virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=org.qemu.guest_agent.0 \
         -vnc 127.0.0.1:0,to=100 -device VGA,id=video0 -device virtio-balloon-pci,id=balloon0 \
         -object rng-random,id=objrng0,filename=/dev/urandom \
         -device virtio-rng-pci,rng=objrng0,id=rng0"
    );
    assert_eq!(plan.args.join(" "), want);
    assert_eq!(
        plan.agent.as_deref(),
        Some(Path::new("/run/vb/qemu/d1/charchannel0.sock"))
    );
    assert_eq!(
        plan.ptys,
        [
            ("charserial0".to_owned(), PtyOf::Serial(0)),
            ("charserial0".to_owned(), PtyOf::Console(0))
        ]
    );
    assert_eq!(plan.vnc_auto, Some(0));
    // the live definition: aliases, the generated socket, the implicit controller and video
    let live = plan.live.to_xml(&Default::default());
    for want in [
        "<alias name='virtio-disk0'/>",
        "<alias name='net0'/>",
        "<source mode='bind' path='/run/vb/qemu/d1/charchannel0.sock'/>",
        "<controller type='virtio-serial' index='0'>",
        "<model type='vga' primary='yes'/>",
        "<address type='virtio-serial' controller='0' bus='0' port='1'/>",
    ] {
        assert!(live.contains(want), "{want} in {live}");
    }
    plan.live.validate().expect("the live definition is valid");
    // the input is untouched
    assert!(d.devices.disks[0].info.alias.is_none());
}

#[test]
fn golden_q35_kvm_storage_and_net() {
    let d = def(
        "<os><type machine='q35'>hvm</type>\
         <bootmenu enable='yes' timeout='500'/></os>",
        "<features><acpi/><smm state='on'/></features><cpu mode='host-passthrough'>\
         <topology sockets='1' cores='2' threads='2'/></cpu>\
         <clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
         <timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/></clock>\
         <on_reboot>destroy</on_reboot><on_crash>preserve</on_crash>\
         <pm><suspend-to-mem enabled='yes'/></pm>",
        "<vcpu current='2'>4</vcpu>",
        "<disk type='block'><driver name='qemu' type='raw' cache='directsync' io='native' \
         detect_zeroes='on'/><source dev='/dev/vg/x'/><target dev='sda' bus='sata'/>\
         <serial>S1</serial><shareable/></disk>\
         <disk type='file' device='cdrom'><source file='/iso/d.iso'/><target dev='sdb' bus='sata'/>\
         <readonly/></disk>\
         <interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br0'/>\
         <model type='virtio'/><driver name='vhost' queues='2'/><link state='down'/>\
         <boot order='1'/></interface>",
    );
    let plan = build_with(&d, &x86_64(), Accel::Kvm).expect("builds");
    let got = plan.args.join(" ");
    for want in [
        "-machine pc-q35-7.2,usb=off,dump-guest-core=off,smm=on,hpet=off -accel kvm -cpu host",
        "-smp 2,maxcpus=4,sockets=1,cores=2,threads=2",
        "-rtc base=localtime,driftfix=slew -global kvm-pit.lost_tick_policy=delay",
        "-global ICH9-LPC.disable_s3=0",
        "-boot strict=on,menu=on,splash-time=500",
        "-no-reboot -device pvpanic -action panic=pause",
        "-blockdev {\"aio\":\"native\",\"auto-read-only\":true,\"cache\":{\"direct\":true,\"no-flush\":false},\"driver\":\"host_device\",\"filename\":\"/dev/vg/x\"",
        "\"detect-zeroes\":\"on\",\"driver\":\"raw\"",
        "-device ide-hd,bus=ide.0,drive=vb-sda,id=sata0-0-0,serial=S1,share-rw=on,write-cache=off",
        "-device ide-cd,bus=ide.1,drive=vb-sdb,id=sata0-0-1",
        "-netdev tap,id=hostnet0,ifname=vb3n0,script=no,downscript=no,vhost=on,queues=2",
        "-device virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:00:00:02,mq=on,vectors=6,bootindex=1",
    ] {
        assert!(got.contains(want), "{want}\nin\n{got}");
    }
    assert!(!got.contains("ich9-ahci"), "q35 has its own AHCI: {got}");
    assert_eq!(
        plan.setup,
        [
            Setup::Bridge {
                tap: "vb3n0".into(),
                bridge: "br0".into()
            },
            Setup::LinkDown {
                device: "net0".into()
            }
        ]
    );
    assert_eq!(
        plan.live.devices.interfaces[0].target_dev.as_deref(),
        Some("vb3n0")
    );
}

#[test]
fn golden_display_and_misc() {
    let d = def(
        "",
        "",
        "<currentMemory unit='MiB'>32</currentMemory>",
        "<controller type='usb' model='qemu-xhci' ports='8'/>\
         <input type='tablet' bus='usb'/><input type='keyboard' bus='virtio'/>\
         <graphics type='spice' autoport='yes' passwd='pw'><image compression='auto_glz'/></graphics>\
         <graphics type='vnc' port='5905' autoport='no' keymap='de' passwd='v'>\
         <listen type='address' address='::1'/></graphics>\
         <video><model type='qxl' ram='65536' vram='32768' vgamem='16384' heads='2'/></video>\
         <video><model type='virtio'/></video>\
         <audio id='1' type='none'/>\
         <watchdog model='i6300esb' action='poweroff'/>\
         <memballoon model='virtio' autodeflate='on'><stats period='10'/></memballoon>\
         <rng model='virtio'><rate bytes='1024'/><backend model='builtin'/></rng>\
         <serial type='file'><source path='/var/log/s.log' append='on'/></serial>\
         <serial type='unix'><source mode='bind'/><target type='pci-serial'/></serial>",
    );
    let plan = build_with(&d, &x86_64(), Accel::Tcg).expect("builds");
    let got = plan.args.join(" ");
    for want in [
        "-device qemu-xhci,id=usb,p2=8,p3=8",
        "-device usb-tablet,id=input0,bus=usb.0",
        "-device virtio-keyboard-pci,id=input1",
        "-spice port=5901,addr=127.0.0.1,image-compression=auto_glz",
        "-k de -vnc [::1]:5,password=on",
        "-device qxl-vga,id=video0,ram_size=67108864,vram_size=33554432,vgamem_mb=16,max_outputs=2",
        "-device virtio-gpu-pci,id=video1",
        "-audiodev none,id=audio1",
        "-device i6300esb,id=watchdog0 -action watchdog=poweroff",
        "-device virtio-balloon-pci,id=balloon0,deflate-on-oom=on",
        "-object rng-builtin,id=objrng0 -device virtio-rng-pci,rng=objrng0,id=rng0,max-bytes=1024,period=1000",
        "-chardev file,id=charserial0,path=/var/log/s.log,append=on",
        "-chardev socket,id=charserial1,path=/run/vb/qemu/d1/charserial1.sock,server=on,wait=off \
         -device pci-serial,chardev=charserial1,id=serial1",
    ] {
        assert!(got.contains(want), "{want}\nin\n{got}");
    }
    assert!(
        !got.contains("disable-ticketing"),
        "a password means tickets"
    );
    assert_eq!(
        plan.setup,
        [
            Setup::Password {
                protocol: "spice",
                secret: "pw".into()
            },
            Setup::Password {
                protocol: "vnc",
                secret: "v".into()
            },
            Setup::BalloonStats { period: 10 },
            Setup::Balloon {
                bytes: 32 * 1024 * 1024
            },
        ]
    );
    assert_eq!(plan.live.devices.graphics[0].port, Some(5901));
    assert!(plan.vnc_auto.is_none());
}

#[test]
fn optional_missing_cdrom_starts_empty() {
    let d = def(
        "",
        "",
        "",
        "<disk type='file' device='cdrom'><source file='/nonexistent/x.iso' \
         startupPolicy='optional'/><target dev='hdc' bus='ide'/><readonly/></disk>",
    );
    let plan = build_with(&d, &x86_64(), Accel::Tcg).expect("builds");
    let got = plan.args.join(" ");
    assert!(
        got.contains("-device ide-cd,bus=ide.1,unit=0,id=ide0-1-0"),
        "{got}"
    );
    assert!(!got.contains("-blockdev"), "{got}");
    assert!(plan.live.devices.disks[0].source.is_none());
}

#[test]
fn every_refusal_names_what_it_refuses() {
    // (name, <os>, elements after <os>, elements before <os>, devices, expected text)
    let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "arch",
            "<os><type arch='aarch64'>hvm</type></os>",
            "",
            "",
            "",
            "architecture 'aarch64'",
        ),
        (
            "machine",
            "<os><type machine='virt'>hvm</type></os>",
            "",
            "",
            "",
            "machine type 'virt'",
        ),
        (
            "ostype",
            "<os><type>exe</type><init>/sbin/init</init></os>",
            "",
            "",
            "",
            "QEMU runs 'hvm'",
        ),
        (
            "uefi-unresolved",
            "<os firmware='efi'><type>hvm</type></os>",
            "",
            "",
            "",
            "was not resolved",
        ),
        (
            "secure-boot-i440fx",
            "<os><type>hvm</type><loader readonly='yes' secure='yes' type='pflash'>/c.fd</loader>\
             <nvram>/v.fd</nvram></os>",
            "<features><smm state='on'/></features>",
            "",
            "",
            "q35",
        ),
        (
            "secure-boot-no-smm",
            "<os><type machine='q35'>hvm</type><loader readonly='yes' secure='yes' \
             type='pflash'>/c.fd</loader><nvram>/v.fd</nvram></os>",
            "",
            "",
            "",
            "<smm state='on'/>",
        ),
        (
            "rom-nvram",
            "<os><type>hvm</type><loader>/bios.bin</loader><nvram>/v.fd</nvram></os>",
            "",
            "",
            "",
            "ROM loader",
        ),
        (
            "init",
            "<os><type>hvm</type><init>/sbin/init</init></os>",
            "",
            "",
            "",
            "container init",
        ),
        (
            "partition",
            "",
            "",
            "<resource><partition>/machine</partition></resource>",
            "",
            "partition",
        ),
        ("hap", "", "<features><hap/></features>", "", "", "hap"),
        (
            "balloonless",
            "",
            "",
            "<currentMemory unit='MiB'>32</currentMemory>",
            "",
            "memballoon",
        ),
        (
            "poweroff_preserve",
            "",
            "<on_poweroff>preserve</on_poweroff>",
            "",
            "",
            "<on_poweroff>preserve</on_poweroff>",
        ),
        (
            "reboot_rename",
            "",
            "<on_reboot>rename-restart</on_reboot>",
            "",
            "",
            "rename-restart",
        ),
        (
            "crash_coredump",
            "",
            "<on_crash>coredump-destroy</on_crash>",
            "",
            "",
            "coredump-destroy",
        ),
        (
            "parallel_address",
            "",
            "",
            "",
            "<parallel type='pty'><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></parallel>",
            "<parallel type='pty'>: address type 'pci'",
        ),
        (
            "sound",
            "",
            "",
            "",
            "<sound model='ich7'/>",
            "<sound model='ich7'>: QEMU has no ICH7",
        ),
        (
            "tsc_mode",
            "",
            "<clock><timer name='tsc' mode='native'/></clock>",
            "",
            "",
            "<timer name='tsc'> mode",
        ),
        (
            "rtc_merge",
            "",
            "<clock><timer name='rtc' tickpolicy='merge'/></clock>",
            "",
            "",
            "<timer name='rtc'> tickpolicy 'merge'",
        ),
        (
            "rtc_track",
            "",
            "<clock><timer name='rtc' track='boot'/></clock>",
            "",
            "",
            "<timer name='rtc'> track 'boot'",
        ),
        (
            "rtc_absent",
            "",
            "<clock><timer name='rtc' present='no'/></clock>",
            "",
            "",
            "<timer name='rtc'> present='no'",
        ),
        (
            "hpet_tick",
            "",
            "<clock><timer name='hpet' tickpolicy='delay'/></clock>",
            "",
            "",
            "<timer name='hpet'> tickpolicy",
        ),
        (
            "pit_catchup",
            "",
            "<clock><timer name='pit' tickpolicy='catchup'/></clock>",
            "",
            "",
            "<timer name='pit'> tickpolicy 'catchup' under TCG",
        ),
        (
            "pit_absent",
            "",
            "<clock><timer name='pit' present='no'/></clock>",
            "",
            "",
            "<timer name='pit'> present='no'",
        ),
        (
            "tsc",
            "",
            "<clock><timer name='platform'/></clock>",
            "",
            "",
            "<timer name='platform'> on x86",
        ),
        (
            "vendor",
            "",
            "<cpu mode='custom'><model>qemu64</model><vendor>Intel</vendor></cpu>",
            "",
            "",
            "<cpu><vendor>",
        ),
        (
            "passthrough_tcg",
            "",
            "<cpu mode='host-passthrough'/>",
            "",
            "",
            "needs KVM",
        ),
        (
            "feature_no_model",
            "",
            "<cpu><feature policy='require' name='vmx'/></cpu>",
            "",
            "",
            "without a <model>",
        ),
        (
            "migratable_custom",
            "",
            "<cpu mode='custom' migratable='on'><model>qemu64</model></cpu>",
            "",
            "",
            "migratable",
        ),
        (
            "ctl_driver",
            "",
            "",
            "",
            "<controller type='virtio-serial'><driver ioeventfd='on'/></controller>",
            "<driver> tuning",
        ),
        (
            "ide_index",
            "",
            "",
            "",
            "<controller type='ide' index='1'/>",
            "index 1 on this machine",
        ),
        (
            "q35_sata_index",
            "<os><type machine='q35'>hvm</type></os>",
            "",
            "",
            "<controller type='sata' index='1'/>",
            "on a q35 machine",
        ),
        (
            "usb_companion_without_master",
            "",
            "",
            "",
            "<controller type='usb' model='ich9-uhci1'><master startport='0'/></controller>",
            "no master USB controller",
        ),
        (
            "usb_none",
            "",
            "",
            "",
            "<controller type='usb' model='none'/><input type='tablet' bus='usb'/>",
            "model='none'",
        ),
        (
            "usb_model",
            "",
            "",
            "",
            "<controller type='usb' model='vt82c686b-uhci'/>",
            "no device 'vt82c686b-usb-uhci'",
        ),
        (
            "usb_ports",
            "",
            "",
            "",
            "<controller type='usb' model='piix3-uhci' ports='4'/>",
            "ports on model",
        ),
        (
            "scsi",
            "",
            "",
            "",
            "<controller type='scsi' model='buslogic'/>",
            "model='buslogic'",
        ),
        (
            "floppy",
            "",
            "",
            "",
            "<disk type='file' device='floppy'><source file='/f.img'/>\
             <target dev='fda' bus='ide'/></disk>",
            "floppy drives, and only they",
        ),
        (
            "nobus",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='xda'/></disk>",
            "name a bus",
        ),
        (
            "badname",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='vd1' bus='virtio'/></disk>",
            "a target name is",
        ),
        (
            "longnode",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='vdaaaaaaaaaaaaaaaaaaaaaaaaa' bus='virtio'/></disk>",
            "node name",
        ),
        (
            "drvname",
            "",
            "",
            "",
            "<disk type='file'><driver name='tap'/><source file='/d.img'/><target dev='vda'/></disk>",
            "driver name 'tap'",
        ),
        (
            "vmdk",
            "",
            "",
            "",
            "<disk type='file'><driver name='qemu' type='vmdk'/><source file='/d.img'/><target dev='vda'/></disk>",
            "image format 'vmdk'",
        ),
        (
            "virtio_cdrom",
            "",
            "",
            "",
            "<disk type='file' device='cdrom'><target dev='vdb' bus='virtio'/></disk>",
            "CD-ROM on the virtio bus",
        ),
        (
            "ro_sata",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='sda' bus='sata'/><readonly/></disk>",
            "read-only sata",
        ),
        (
            "sata_unit",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='sda' bus='sata'/><address type='drive' controller='0' bus='0' target='0' unit='6'/></disk>",
            "SATA unit 6",
        ),
        (
            "q35_sata_ctl",
            "<os><type machine='q35'>hvm</type></os>",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='sda' bus='sata'/><address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>",
            "SATA controller 1 on q35",
        ),
        (
            "q35_ide",
            "<os><type machine='q35'>hvm</type></os>",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='hda' bus='ide'/></disk>",
            "IDE on a q35",
        ),
        (
            "usb_disk",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='sda' bus='usb'/></disk>",
            "no USB controller to plug it into",
        ),
        (
            "pci_bus1",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='vda' bus='virtio'/><address type='pci' domain='0x0000' bus='0x01' slot='0x02' function='0x0'/></disk>",
            "PCI bus 1",
        ),
        (
            "pci_slot",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='vda' bus='virtio'/><address type='pci' domain='0x0000' bus='0x00' slot='0x28' function='0x0'/></disk>",
            "slot must be at most 31",
        ),
        (
            "addr_type",
            "",
            "",
            "",
            "<disk type='file'><source file='/d.img'/><target dev='vda' bus='virtio'/><address type='drive' controller='0' bus='0' target='0' unit='0'/></disk>",
            "address type 'drive'",
        ),
        (
            "tap_name",
            "",
            "",
            "",
            "<interface type='ethernet'><target dev='abcdefghijklmnop'/></interface>",
            "longer than 15",
        ),
        (
            "direct",
            "",
            "",
            "",
            "<interface type='direct'><source dev='eth0'/></interface>",
            "macvtap",
        ),
        (
            "nic_model",
            "",
            "",
            "",
            "<interface type='user'><model type='ne2k_isa'/></interface>",
            "NIC model 'ne2k_isa'",
        ),
        (
            "queues_e1000",
            "",
            "",
            "",
            "<interface type='bridge'><source bridge='br0'/><model type='e1000'/><driver queues='2'/></interface>",
            "queues on NIC model",
        ),
        (
            "unix_connect",
            "",
            "",
            "",
            "<serial type='unix'><source mode='connect'/></serial>",
            "needs a path",
        ),
        (
            "serial_stdio",
            "",
            "",
            "",
            "<serial type='stdio'/>",
            "source type 'stdio'",
        ),
        (
            "serial_usb",
            "",
            "",
            "",
            "<serial type='pty'><target type='usb-serial'/></serial>",
            "target type 'usb-serial'",
        ),
        (
            "serial_model",
            "",
            "",
            "",
            "<serial type='pty'><target type='isa-serial'><model name='pci-serial'/></target></serial>",
            "model 'pci-serial'",
        ),
        (
            "two_consoles",
            "",
            "",
            "",
            "<console type='pty'/><console type='pty'/>",
            "serial consoles beyond the first",
        ),
        (
            "console_xen",
            "",
            "",
            "",
            "<console type='pty'><target type='xen'/></console>",
            "target type 'xen'",
        ),
        (
            "channel_xen",
            "",
            "",
            "",
            "<channel type='pty'><target type='xen'/></channel>",
            "target type 'xen'",
        ),
        (
            "channel_ctl",
            "",
            "",
            "",
            "<channel type='pty'><target type='virtio' name='a.b'/><address type='virtio-serial' controller='1' bus='1' port='1'/></channel>",
            "virtio-serial bus other than 0",
        ),
        (
            "channel_addr",
            "",
            "",
            "",
            "<channel type='pty'><target type='virtio' name='a.b'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></channel>",
            "address type 'pci'",
        ),
        (
            "ps2_tablet",
            "",
            "",
            "",
            "<input type='tablet' bus='ps2'/>",
            "tablet on the ps2 bus",
        ),
        (
            "input_xen",
            "",
            "",
            "",
            "<input type='mouse' bus='xen'/>",
            "bus 'xen'",
        ),
        (
            "two_vnc",
            "",
            "",
            "",
            "<graphics type='vnc'/><graphics type='vnc'/>",
            "more than one VNC",
        ),
        (
            "vnc_low",
            "",
            "",
            "",
            "<graphics type='vnc' port='5800' autoport='no'/>",
            "below 5900",
        ),
        (
            "ws_auto",
            "",
            "",
            "",
            "<graphics type='vnc' websocket='-1'/>",
            "websocket autoport",
        ),
        (
            "two_spice",
            "",
            "",
            "",
            "<graphics type='spice'/><graphics type='spice'/>",
            "more than one SPICE",
        ),
        (
            "spice_keymap",
            "",
            "",
            "",
            "<graphics type='spice' keymap='fr'/>",
            "keymap",
        ),
        (
            "video_xen",
            "",
            "",
            "",
            "<video><model type='xen'/></video>",
            "model 'xen'",
        ),
        (
            "video_secondary",
            "",
            "",
            "",
            "<video><model type='vga'/></video><video><model type='cirrus'/></video>",
            "secondary model 'cirrus'",
        ),
        (
            "vga_ram",
            "",
            "",
            "",
            "<video><model type='vga' ram='65536'/></video>",
            "ram sizes",
        ),
        (
            "virtio_vgamem",
            "",
            "",
            "",
            "<video><model type='virtio' vgamem='16384'/></video>",
            "vgamem on model 'virtio'",
        ),
        (
            "vga_heads",
            "",
            "",
            "",
            "<video><model type='vga' heads='2'/></video>",
            "heads on model 'vga'",
        ),
        (
            "audio_coreaudio",
            "",
            "",
            "",
            "<audio id='1' type='coreaudio'/>",
            "<audio type='coreaudio'>",
        ),
        (
            "two_watchdogs",
            "",
            "",
            "",
            "<watchdog model='ib700'/><watchdog model='ib700'/>",
            "more than one <watchdog>",
        ),
        ("itco_pc", "", "", "", "<watchdog model='itco'/>", "itco"),
        (
            "balloon_xen",
            "",
            "",
            "",
            "<memballoon model='xen'/>",
            "<memballoon model='xen'>",
        ),
    ];
    for (name, os, top, pre, devices, want) in cases {
        let xml = format!(
            "<domain type='qemu'><name>t</name><memory unit='MiB'>64</memory>{pre}{os}{top}\
             <devices>{devices}</devices></domain>",
            os = if os.is_empty() {
                "<os><type>hvm</type></os>"
            } else {
                os
            }
        );
        let d = DomainDef::from_xml(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = build_with(&d, &x86_64(), Accel::Tcg).expect_err(name);
        assert!(
            e.to_string().contains(want),
            "{name}: '{e}' does not name '{want}'"
        );
    }
}

#[test]
fn refusals_that_depend_on_the_emulator() {
    let mut caps = x86_64();
    caps.spice = false;
    let spice = def("", "", "", "<graphics type='spice'/>");
    let e = build_with(&spice, &caps, Accel::Tcg).expect_err("no spice");
    assert!(e.to_string().contains("has no SPICE support"), "{e}");
    let vmc = def(
        "",
        "",
        "",
        "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>",
    );
    let e = build_with(&vmc, &caps, Accel::Tcg).expect_err("no spice");
    assert!(
        e.to_string().contains(
            "<channel type='spicevmc'>: /usr/bin/qemu-system-x86_64 has no SPICE support"
        ),
        "{e}"
    );

    let mut caps = x86_64();
    caps.devices.retain(|d| d != "VGA");
    let e = build_with(&def("", "", "", "<video/>"), &caps, Accel::Tcg).expect_err("no VGA");
    assert_eq!(
        e,
        CmdlineError::NotSupported(
            "<video>: /usr/bin/qemu-system-x86_64 has no device 'VGA'".into()
        )
    );

    let mut caps = x86_64();
    caps.accels = vec!["tcg".into()];
    let e = build_with(&def("", "", "", ""), &caps, Accel::Kvm).expect_err("no kvm");
    assert!(
        e.to_string().contains("accelerator 'kvm' is not compiled"),
        "{e}"
    );

    let mut caps = x86_64();
    caps.machines.iter_mut().for_each(|m| m.default = false);
    let e = build_with(&def("", "", "", ""), &caps, Accel::Tcg).expect_err("no default");
    assert!(e.to_string().contains("no default machine type"), "{e}");

    let e = build_with(
        &def("", "<cpu mode='host-model'/>", "", ""),
        &x86_64(),
        Accel::Tcg,
    )
    .expect_err("host-model under TCG");
    assert!(e.to_string().contains("needs KVM"), "{e}");

    let long = "/run/".to_owned() + &"x".repeat(100);
    let env = Env {
        caps: &x86_64(),
        accel: Accel::Tcg,
        dir: Path::new(&long),
        id: 1,
        free_port: &|| None,
        host: None,
    };
    let e = build(&def("", "", "", ""), &env).expect_err("long path");
    assert!(
        matches!(&e, CmdlineError::Invalid(m) if m.contains("longer than 107")),
        "{e}"
    );

    let env = Env {
        caps: &x86_64(),
        accel: Accel::Tcg,
        dir: Path::new("/run/vb"),
        id: 1,
        free_port: &|| None,
        host: None,
    };
    let e = build(&def("", "", "", "<graphics type='spice'/>"), &env).expect_err("no port");
    assert!(e.to_string().contains("no free port"), "{e}");
}

#[test]
fn escaping_and_names() {
    assert_eq!(esc("a,b,,c"), "a,,b,,,,c");
    assert_eq!(disk_index("vda"), Some(0));
    assert_eq!(disk_index("sdb"), Some(1));
    assert_eq!(disk_index("hdaa"), Some(26));
    assert_eq!(disk_index("vd"), None);
    assert_eq!(disk_index("vd1"), None);
    let d = def(
        "",
        "",
        "",
        "<serial type='file'><source path='/var/log/a,b.log'/></serial>",
    );
    assert!(cmd(&d).contains("path=/var/log/a,,b.log"), "{}", cmd(&d));
    let d = def("<os><type>hvm</type></os>", "", "", "");
    let mut named = d.clone();
    named.name = "we,ird".into();
    assert!(
        build_with(&named, &x86_64(), Accel::Tcg)
            .expect("builds")
            .args
            .contains(&"guest=we,,ird,debug-threads=on".to_owned())
    );
}

/// libvirt's `disk-floppy` and `disk-floppy-q35`: the PC's own controller, or an ISA one
/// added on q35; an empty drive has no medium.
#[test]
fn floppies_as_libvirt() {
    let drives = "<disk type='file' device='floppy'><source file='/tmp/firmware.img'/>\
                  <target dev='fda' bus='fdc'/></disk>\
                  <disk type='file' device='floppy'><target dev='fdb' bus='fdc'/></disk>";
    let plan = build_with(&def("", "", "", drives), &x86_64(), Accel::Tcg).expect("builds");
    let a = plan.args.join(" ");
    assert!(
        a.contains("-device floppy,unit=0,drive=vb-fda,id=fdc0-0-0"),
        "{a}"
    );
    assert!(a.contains("-device floppy,unit=1,id=fdc0-0-1"), "{a}");
    assert!(!a.contains("isa-fdc"), "{a}");
    let x = plan.live.to_xml(&Default::default());
    assert!(x.contains("<alias name='fdc0-0-1'/>\n      <address type='drive' controller='0' bus='0' target='0' unit='1'/>"), "{x}");
    let q35 = "<os><type machine='q35'>hvm</type></os>";
    let a = cmd(&def(q35, "", "", drives));
    assert_eq!(a.matches("-device isa-fdc").count(), 1, "{a}");
    assert!(a.contains("-device isa-fdc -device floppy,unit=0"), "{a}");
}

/// libvirt's `serial-tcp-telnet-chardev` and `serial-udp-chardev`: network serial ports,
/// written back in libvirt's canonical form.
#[test]
fn network_serial_ports_as_libvirt() {
    let devs = "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='9999'/>\
                <protocol type='telnet'/><target port='0'/></serial>\
                <serial type='udp'><source mode='connect' service='9999'/>\
                <source mode='bind' host='127.0.0.1' service='9998'/><target port='1'/></serial>\
                <serial type='tcp'><source mode='connect' host='10.0.0.1' service='7'>\
                <reconnect enabled='yes' timeout='10'/></source><target port='2'/></serial>";
    let d = def("", "", "", devs);
    let x = d.to_xml(&Default::default());
    for want in [
        "<serial type='tcp'>\n      <source mode='bind' host='127.0.0.1' service='9999'/>\n      \
         <protocol type='telnet'/>",
        "<serial type='udp'>\n      <source mode='bind' host='127.0.0.1' service='9998'/>\n      \
         <source mode='connect' service='9999'/>",
        "<source mode='connect' host='10.0.0.1' service='7'>\n        \
         <reconnect enabled='yes' timeout='10'/>\n      </source>\n      <protocol type='raw'/>",
    ] {
        assert!(x.contains(want), "{want}\nin\n{x}");
    }
    let a = cmd(&d);
    for want in [
        "-chardev socket,id=charserial0,host=127.0.0.1,port=9999,telnet=on,server=on,wait=off",
        "-chardev udp,id=charserial1,host=,port=9999,localaddr=127.0.0.1,localport=9998",
        "-chardev socket,id=charserial2,host=10.0.0.1,port=7,reconnect=10",
    ] {
        assert!(a.contains(want), "{want}\nin\n{a}");
    }
    for (bad, why) in [
        (
            "<serial type='tcp'><source mode='connect' host='h' service='1' tls='yes'/></serial>",
            "TLS",
        ),
        (
            "<serial type='tcp'><source mode='connect' host='h' service='ssh'/></serial>",
            "not a port number",
        ),
    ] {
        let e = build_with(&def("", "", "", bad), &x86_64(), Accel::Tcg).expect_err(bad);
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
    for bad in [
        "<serial type='tcp'><target port='0'/></serial>",
        "<serial type='udp'><source mode='bind' service='1'/></serial>",
        "<serial type='udp'><source service='1'/><source service='2'/></serial>",
    ] {
        let e = parse_error(bad);
        assert!(e.contains("/domain/devices/serial"), "{bad}: {e}");
    }
}

#[test]
fn golden_pflash_secure_boot() {
    let d = def(
        "<os><type machine='q35'>hvm</type><loader readonly='yes' secure='yes' type='pflash'>\
         /usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>\
         <nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>/var/lib/n/t_VARS.fd</nvram></os>",
        "<features><acpi/><smm state='on'/></features>",
        "",
        "",
    );
    let c = cmd(&d);
    let want = "-blockdev {\"auto-read-only\":true,\"discard\":\"unmap\",\"driver\":\"file\",\
        \"filename\":\"/usr/share/OVMF/OVMF_CODE_4M.ms.fd\",\"node-name\":\"libvirt-pflash0-storage\"} \
        -blockdev {\"driver\":\"raw\",\"file\":\"libvirt-pflash0-storage\",\
        \"node-name\":\"libvirt-pflash0-format\",\"read-only\":true} \
        -blockdev {\"auto-read-only\":true,\"discard\":\"unmap\",\"driver\":\"file\",\
        \"filename\":\"/var/lib/n/t_VARS.fd\",\"node-name\":\"libvirt-pflash1-storage\"} \
        -blockdev {\"driver\":\"raw\",\"file\":\"libvirt-pflash1-storage\",\
        \"node-name\":\"libvirt-pflash1-format\",\"read-only\":false} \
        -machine pc-q35-7.2,usb=off,dump-guest-core=off,smm=on,\
        pflash0=libvirt-pflash0-format,pflash1=libvirt-pflash1-format -accel tcg";
    assert!(c.contains(want), "{c}");
    assert!(
        c.contains("-global driver=cfi.pflash01,property=secure,value=on"),
        "{c}"
    );
}

#[test]
fn golden_rom_loader() {
    let d = def(
        "<os><type>hvm</type><loader>/usr/share/seabios/bios.bin</loader></os>",
        "",
        "",
        "",
    );
    let c = cmd(&d);
    assert!(
        c.contains("-bios /usr/share/seabios/bios.bin -machine pc-i440fx-7.2"),
        "{c}"
    );
    assert!(!c.contains("pflash"), "{c}");
}

#[test]
fn golden_tpm_emulator_and_refusals() {
    let mut caps = x86_64();
    caps.devices.push("tpm-crb".into());
    caps.devices.push("tpm-tis".into());
    caps.devices.sort();
    let tpm = |backend: &str, model: &str| {
        def(
            "",
            "",
            "",
            &format!("<tpm model='{model}'><backend {backend}/></tpm>"),
        )
    };
    let plan = build_with(
        &tpm("type='emulator' version='2.0'", "tpm-crb"),
        &caps,
        Accel::Tcg,
    )
    .expect("builds");
    let c = plan.args.join(" ");
    assert!(
        c.contains(
            "-chardev socket,id=chrtpm,path=/run/vb/qemu/d1/swtpm.sock \
             -tpmdev emulator,id=tpm-tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm-tpm0,id=tpm0"
        ),
        "{c}"
    );
    assert_eq!(
        plan.live.devices.tpms[0].info.alias.as_deref(),
        Some("tpm0")
    );
    for (d, why) in [
        (tpm("type='emulator' version='1.2'", "tpm-crb"), "TPM 1.2"),
        (tpm("type='emulator'", "tpm-spapr"), "no device 'tpm-spapr'"),
        (
            def(
                "",
                "",
                "",
                "<tpm model='tpm-tis'><backend type='passthrough'>\
                 <device path='/dev/tpm-none'/></backend></tpm>",
            ),
            "/dev/tpm-none",
        ),
        (
            def(
                "",
                "",
                "",
                "<tpm><backend type='emulator'/></tpm><tpm><backend type='emulator'/></tpm>",
            ),
            "more than one",
        ),
    ] {
        let e = build_with(&d, &caps, Accel::Tcg).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    // an emulator without tpm devices
    let e = build_with(&tpm("type='emulator'", "tpm-tis"), &x86_64(), Accel::Tcg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no device 'tpm-tis'"), "{e}");
}

/// libvirt's `net-mcast`, `net-client`, `net-server` and `net-udp`: socket-backed NICs.
#[test]
fn socket_interfaces_as_libvirt() {
    let nics = "<interface type='mcast'><mac address='52:54:00:8c:b9:05'/>\
                <source address='192.0.0.1' port='5558'/></interface>\
                <interface type='client'><mac address='52:54:00:8c:b9:06'/>\
                <source address='192.168.0.1' port='5558'/></interface>\
                <interface type='server'><mac address='52:54:00:8c:b9:07'/>\
                <source address='192.168.0.1' port='5558'/></interface>\
                <interface type='udp'><mac address='52:54:00:8c:b9:08'/>\
                <source address='192.168.10.1' port='5555'>\
                <local address='192.168.10.1' port='5556'/></source></interface>";
    let d = def("", "", "", nics);
    let x = d.to_xml(&Default::default());
    assert!(
        x.contains(
            "<source address='192.168.10.1' port='5555'>\n        \
             <local address='192.168.10.1' port='5556'/>\n      </source>"
        ),
        "{x}"
    );
    let a = cmd(&d);
    for want in [
        "-netdev socket,mcast=192.0.0.1:5558,id=hostnet0",
        "-netdev socket,connect=192.168.0.1:5558,id=hostnet1",
        "-netdev socket,listen=192.168.0.1:5558,id=hostnet2",
        "-netdev socket,udp=192.168.10.1:5555,localaddr=192.168.10.1:5556,id=hostnet3",
        "-device rtl8139,netdev=hostnet3,id=net3,mac=52:54:00:8c:b9:08",
    ] {
        assert!(a.contains(want), "{want}\nin\n{a}");
    }
    for bad in [
        "<interface type='client'><source port='1'/></interface>",
        "<interface type='udp'><source address='a' port='1'/></interface>",
        "<interface type='mcast'><source address='a' port='0'/></interface>",
    ] {
        let e = parse_error(bad);
        assert!(e.contains("/domain/devices/interface"), "{bad}: {e}");
    }
}

/// A network interface defines whether or not its network exists (as in libvirt); at start
/// the core must have resolved it to a bridge.
#[test]
fn network_interfaces_need_a_bridge_only_at_start() {
    let d = def(
        "",
        "",
        "",
        "<interface type='network'><source network='default'/></interface>",
    );
    assert!(build_with(&d, &x86_64(), Accel::Tcg).is_ok());
    let host = super::Host::default();
    let env = Env {
        caps: &x86_64(),
        accel: Accel::Tcg,
        dir: Path::new("/run/vb/qemu/d1"),
        id: 3,
        free_port: &|| Some(5901),
        host: Some(&host),
    };
    let e = build(&d, &env).map(|_| ()).unwrap_err().to_string();
    assert!(
        e.contains("network 'default' was not resolved to a bridge"),
        "{e}"
    );
    // multiqueue needs a tap: defined as in libvirt, refused at start
    let d = def(
        "",
        "",
        "",
        "<interface type='user'><model type='virtio'/><driver queues='2'/></interface>",
    );
    assert!(build_with(&d, &x86_64(), Accel::Tcg).is_ok());
    let e = build(&d, &env).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("queues with user networking"), "{e}");
}

/// What libvirt defines but only a host with more can start: the definition builds, and a
/// start on a host without numad, SPICE certificates, a render node or SEV says what is
/// missing (this machine kind has none of them).
#[test]
fn refused_only_at_start() {
    let host = super::Host::default();
    let caps = x86_64();
    let env = Env {
        caps: &caps,
        accel: Accel::Tcg,
        dir: Path::new("/run/vb/qemu/d1"),
        id: 3,
        free_port: &|| Some(5901),
        host: Some(&host),
    };
    for (name, top, pre, devices, want) in [
        (
            "numad",
            "",
            "<vcpu placement='auto'>2</vcpu>",
            "",
            "<vcpu placement='auto'> (automatic placement needs numad",
        ),
        (
            "numad memory",
            "",
            "<numatune><memory mode='strict' placement='auto'/></numatune>",
            "",
            "automatic placement needs numad",
        ),
        (
            "spice tls",
            "",
            "",
            "<graphics type='spice' port='5903' tlsPort='5904' autoport='no'/>",
            "tlsPort needs SPICE's TLS certificate /etc/pki/libvirt-spice/ca-cert.pem",
        ),
        (
            "spice gl",
            "",
            "",
            "<graphics type='spice' autoport='no'><gl enable='yes' \
             rendernode='/dev/dri/vb-none'/></graphics>",
            "render node /dev/dri/vb-none does not exist",
        ),
        (
            "virgl",
            "",
            "",
            "<video><model type='virtio'><acceleration accel3d='yes'/></model></video>",
            "<video><model type='virtio'><acceleration>",
        ),
        (
            "sev",
            "<launchSecurity type='sev'><policy>0x0001</policy></launchSecurity>",
            "",
            "",
            "<launchSecurity type='sev'>: AMD SEV needs",
        ),
        (
            "ide unit 2",
            "",
            "",
            "<disk type='file' device='disk'><source file='/d/a.img'/>\
             <target dev='hdc' bus='ide'/>\
             <address type='drive' controller='0' bus='0' target='0' unit='2'/></disk>",
            "IDE bus 0 unit 2 (the PIIX IDE controller has buses 0-1 with units 0-1)",
        ),
    ] {
        let d = def("", top, pre, devices);
        build_with(&d, &caps, Accel::Tcg).unwrap_or_else(|e| panic!("{name} at define: {e}"));
        let e = build(&d, &env).map(|_| ()).expect_err(name).to_string();
        assert!(e.contains(want), "{name}: '{e}' does not name '{want}'");
    }
}

/// libvirt's video-virtio-vga-gpu-gl, downscript, disk-usb-device-removable and
/// chardev-reconnect (unix), in this driver's argument form.
#[test]
fn virgl_scripts_usb_disks_unix_reconnect() {
    let d = def(
        "",
        "",
        "",
        "<video><model type='virtio' heads='1' primary='yes'><acceleration accel3d='yes'/>\
         </model></video><video><model type='virtio' heads='1'>\
         <acceleration accel3d='yes'/></model></video>\
         <interface type='ethernet'><mac address='52:54:00:f6:66:88'/>\
         <script path='/home/ifup.sh'/><downscript path='/home/ifdown.sh'/>\
         <model type='virtio'/></interface>\
         <controller type='usb' index='0'/>\
         <disk type='file' device='disk'><source file='/d/u.img'/>\
         <target dev='sdb' bus='usb' removable='on'/></disk>\
         <channel type='unix'><source mode='connect' path='/unix/socket/path'>\
         <reconnect enabled='yes' timeout='10'/></source><protocol type='raw'/>\
         <target type='virtio' name='test2'/></channel>",
    );
    let got = cmd(&d);
    for want in [
        "-device virtio-vga-gl,id=video0",
        "-device virtio-gpu-gl-pci,id=video1",
        "-netdev tap,id=hostnet0,ifname=vb3n0,script=/home/ifup.sh,downscript=/home/ifdown.sh",
        "-device usb-storage,bus=usb.0,drive=vb-sdb,id=usb-disk1,removable=on",
        "-chardev socket,id=charchannel0,path=/unix/socket/path,server=off,reconnect=10",
    ] {
        assert!(got.contains(want), "{want}\nin\n{got}");
    }
    for (devices, want) in [
        (
            "<interface type='user'><script path='/x'/></interface>",
            "are for interfaces of type 'ethernet'",
        ),
        (
            "<video><model type='vga'><acceleration accel3d='yes'/></model></video>",
            "accel3d='yes' needs model type 'virtio'",
        ),
        (
            "<video><model type='virtio'><acceleration accel2d='yes'/></model></video>",
            "accel2d",
        ),
        (
            "<controller type='usb' index='0'/><disk type='file' device='cdrom'>\
             <source file='/d/c.iso'/><target dev='sda' bus='usb'/></disk>",
            "a cdrom on the USB bus",
        ),
        (
            "<disk type='file' device='disk'><source file='/d/a.img'/>\
             <target dev='vda' bus='virtio' removable='on'/></disk>",
            "<target removable> is for USB disks",
        ),
    ] {
        let e = build_with(&def("", "", "", devices), &x86_64(), Accel::Tcg)
            .map(|_| ())
            .expect_err(devices)
            .to_string();
        assert!(e.contains(want), "{devices}: '{e}' does not name '{want}'");
    }
}

#[test]
fn watchdog_dump_is_a_pause_the_driver_follows_with_a_dump() {
    let d = def("", "", "", "<watchdog model='ib700' action='dump'/>");
    let plan = build_with(&d, &x86_64(), Accel::Tcg).expect("builds");
    let got = plan.args.join(" ");
    assert!(
        got.contains("-device ib700,id=watchdog0 -action watchdog=pause"),
        "{got}"
    );
}
