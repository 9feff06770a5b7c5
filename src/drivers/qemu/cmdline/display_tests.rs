//! Local displays and VNC extras against libvirt 9.0's tests/qemuxml2argvdata/graphics-*.args.

use std::path::Path;

use super::tests::{parse_error, plan_on_pc};
use super::*;
use crate::drivers::qemu::caps::tests::x86_64;
use crate::model::FormatOptions;

fn args(devices: &str) -> String {
    plan_on_pc(devices).expect("builds").args.join(" ")
}

#[test]
fn sdl_with_its_x_display() {
    let plan = plan_on_pc(
        "<graphics type='sdl' display=':0.1' xauth='/root/.Xauthority' fullscreen='yes'>\
         <gl enable='yes'/></graphics>",
    )
    .expect("builds");
    let a = plan.args.join(" ");
    assert!(a.contains("-full-screen -display sdl,gl=on"), "{a}");
    assert!(!a.contains("-display none"), "{a}");
    // SDL plays host audio only when libvirt's environment asks for it: no default backend
    assert!(!a.contains("-audiodev"), "{a}");
    assert_eq!(
        plan.env,
        [
            ("XAUTHORITY".to_owned(), "/root/.Xauthority".to_owned()),
            ("DISPLAY".to_owned(), ":0.1".to_owned())
        ]
    );
}

#[test]
fn egl_headless_and_dbus() {
    let a = args(
        "<graphics type='vnc' port='5903' autoport='no'/>\
         <graphics type='egl-headless'><gl rendernode='/dev/dri/foo'/></graphics>",
    );
    assert!(
        a.contains("-vnc 127.0.0.1:3")
            && a.contains("-display egl-headless,rendernode=/dev/dri/foo"),
        "{a}"
    );
    let a = args(
        "<graphics type='dbus' p2p='yes'><audio id='1'/></graphics>\
         <audio id='1' type='dbus'/>",
    );
    assert!(a.contains("-display dbus,p2p=on,audiodev=audio1"), "{a}");
    let a = args(
        "<graphics type='dbus' address='unix:path=/tmp/foo'>\
         <gl enable='yes' rendernode='/dev/dri/foo'/></graphics>",
    );
    assert!(
        a.contains("-display dbus,addr=unix:path=/tmp/foo,gl=on,rendernode=/dev/dri/foo"),
        "{a}"
    );
    let e = plan_on_pc("<graphics type='dbus'/>").expect_err("no bus");
    assert!(e.contains("D-Bus daemon per domain"), "{e}");
    let e = plan_on_pc("<graphics type='sdl'/><graphics type='egl-headless'/>").expect_err("two");
    assert!(e.contains("more than one local display"), "{e}");
    let e = parse_error("<graphics type='dbus' p2p='yes' address='unix:path=/x'/>");
    assert!(e.contains("/domain/devices/graphics/@address"), "{e}");
    let e = parse_error("<graphics type='sdl'><listen type='address'/></graphics>");
    assert!(e.contains("does not listen"), "{e}");
    let e = parse_error("<graphics type='egl-headless' display=':0'/>");
    assert!(e.contains("/domain/devices/graphics/@display"), "{e}");
}

#[test]
fn vnc_policy_power_audio_and_sockets() {
    let a = args(
        "<graphics type='vnc' port='65530' autoport='no' listen='::' \
         sharePolicy='allow-exclusive' powerControl='yes'><listen type='address' address='::'/>\
         <audio id='2'/></graphics><audio id='1' type='none'/><audio id='2' type='none'/>",
    );
    assert!(
        a.contains("-vnc [::]:59630,share=allow-exclusive,power-control=on,audiodev=audio2"),
        "{a}"
    );
    let e = plan_on_pc("<graphics type='vnc'><audio id='3'/></graphics>").expect_err("no audio");
    assert!(e.contains("<audio id='3'> names no <audio>"), "{e}");
    // the legacy socket attribute is a socket listen, written back both ways as libvirt does
    let xml = "<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm</type>\
               </os><devices><graphics type='vnc' socket='/tmp/vnc.sock'>\
               <listen type='address' address='0.0.0.0'/></graphics></devices></domain>";
    let d = DomainDef::from_xml(xml).expect("parses");
    let out = d.to_xml(&FormatOptions::default());
    assert!(
        out.contains(
            "<graphics type='vnc' socket='/tmp/vnc.sock'>\n      \
             <listen type='socket' socket='/tmp/vnc.sock'/>"
        ),
        "{out}"
    );
    assert!(
        args("<graphics type='vnc' socket='/tmp/vnc.sock'/>").contains("-vnc unix:/tmp/vnc.sock")
    );
    let a =
        args("<graphics type='spice'><listen type='socket' socket='/tmp/spice.sock'/></graphics>");
    assert!(a.contains("-spice unix=on,addr=/tmp/spice.sock,"), "{a}");
    let a = args("<graphics type='spice'><listen type='socket'/></graphics>");
    assert!(
        a.contains("-spice unix=on,addr=/run/vb/qemu/d1/spice.sock,"),
        "{a}"
    );
}

#[test]
fn network_listens_define_but_do_not_start() {
    let dev = "<graphics type='vnc' listen='1.2.3.4' autoport='yes'>\
               <listen type='address' address='1.2.3.4'/>\
               <listen type='network' network='Bobsnetwork'/></graphics>";
    assert!(args(dev).contains("-vnc 1.2.3.4:0,to=100"));
    let xml = format!(
        "<domain type='qemu'><name>t</name><memory>65536</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{dev}</devices></domain>"
    );
    let mut d = DomainDef::from_xml(&xml).expect("parses");
    let caps = x86_64();
    crate::drivers::qemu::defaults::apply(&mut d, &caps).expect("defaults");
    let host = Host::default();
    let env = Env {
        caps: &caps,
        accel: Accel::Tcg,
        dir: Path::new("/run/vb/qemu/d1"),
        id: 3,
        free_port: &|| Some(5901),
        host: Some(&host),
    };
    let e = build(&d, &env).expect_err("at start");
    assert!(
        matches!(&e, CmdlineError::NotSupported(m) if m.contains("network='Bobsnetwork'")),
        "{e}"
    );
}

#[test]
fn local_displays_written_in_libvirts_order() {
    let xml = "<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm</type>\
               </os><devices><graphics type='sdl' display=':0.1' xauth='/root/.Xauthority' \
               fullscreen='yes'><gl enable='yes'/></graphics><graphics type='dbus' p2p='yes'>\
               <gl enable='no'/><audio id='1'/></graphics><graphics type='vnc' \
               sharePolicy='force-shared' powerControl='no'><audio id='1'/></graphics>\
               </devices></domain>";
    let d = DomainDef::from_xml(xml).expect("parses");
    let out = d.to_xml(&FormatOptions::default());
    for want in [
        "<graphics type='sdl' display=':0.1' xauth='/root/.Xauthority' fullscreen='yes'>\n      \
         <gl enable='yes'/>\n    </graphics>",
        "<graphics type='dbus' p2p='yes'>\n      <gl enable='no'/>\n      <audio id='1'/>",
        "sharePolicy='force-shared' powerControl='no'>",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    assert_eq!(DomainDef::from_xml(&out).expect("reparses"), d);
}
