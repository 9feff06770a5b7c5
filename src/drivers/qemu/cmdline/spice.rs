//! The `-spice` options beyond port and address, in libvirt's order, and the refusals for
//! what needs TLS certificates or a host GPU this driver does not have.

use super::{Builder, Result, esc, unsupported};
use crate::model::devices::{
    CharDevice, CharSourceType, Graphics, GraphicsType, SpiceChannelMode, SpiceMouseMode,
};

/// `,agent-mouse=…,…,disable-agent-file-xfer=on` for `g`'s SPICE options.
pub(super) fn options(b: &Builder<'_>, g: &Graphics, tls: bool, what: &str) -> Result<String> {
    let o = &g.spice;
    let mut s = String::new();
    match o.mouse {
        Some(SpiceMouseMode::Server) => s.push_str(",agent-mouse=off"),
        Some(SpiceMouseMode::Client) => s.push_str(",agent-mouse=on"),
        None => {}
    }
    let mode = |name: &str, m: SpiceChannelMode| -> Result<Option<String>> {
        match m {
            SpiceChannelMode::Any => Ok(None),
            SpiceChannelMode::Insecure => Ok(Some(format!(",plaintext-channel={name}"))),
            SpiceChannelMode::Secure if tls => Ok(Some(format!(",tls-channel={name}"))),
            SpiceChannelMode::Secure => Err(super::CmdlineError::Invalid(format!(
                "{what}: SPICE channel '{name}' in mode 'secure' needs a tlsPort"
            ))),
        }
    };
    if let Some(m) = o.default_mode
        && let Some(x) = mode("default", m)?
    {
        s.push_str(&x);
    }
    for (name, m) in &o.channels {
        if let Some(x) = mode(name.as_str(), *m)? {
            s.push_str(&x);
        }
    }
    if let Some(c) = g.image_compression {
        s.push_str(&format!(",image-compression={c}"));
    }
    if let Some(c) = o.jpeg {
        s.push_str(&format!(",jpeg-wan-compression={c}"));
    }
    if let Some(c) = o.zlib {
        s.push_str(&format!(",zlib-glz-wan-compression={c}"));
    }
    if let Some(p) = o.playback {
        s.push_str(&format!(",playback-compression={}", super::on_off(p)));
    }
    if let Some(m) = o.streaming {
        s.push_str(&format!(",streaming-video={m}"));
    }
    if o.copypaste == Some(false) {
        s.push_str(",disable-copy-paste=on");
    }
    if o.filetransfer == Some(false) {
        s.push_str(",disable-agent-file-xfer=on");
    }
    if let Some(gl) = o.gl.as_ref().filter(|gl| gl.enable) {
        // QEMU's SPICE OpenGL serves local clients only
        if g.autoport == Some(true) || g.port.is_some_and(|p| p > 0) || tls {
            return Err(super::CmdlineError::Invalid(format!(
                "{what}: <gl enable='yes'> serves local clients only: it takes no port or \
                 tlsPort (listen type 'none' or 'socket')"
            )));
        }
        s.push_str(",gl=on");
        if let Some(n) = super::display::render_node(b, gl.rendernode.as_deref(), what)? {
            s.push_str(&format!(",rendernode={}", esc(&n)));
        }
    }
    Ok(s)
}

/// Where SPICE's TLS certificates are: libvirt's default `spice_tls_x509_cert_dir`.
pub(super) const X509_DIR: &str = "/etc/pki/libvirt-spice";

/// The files QEMU's SPICE server reads from [`X509_DIR`] for TLS.
const X509_FILES: [&str; 3] = ["ca-cert.pem", "server-cert.pem", "server-key.pem"];

/// The TLS port of a SPICE display, if it has one. A definition keeps it (as libvirt does);
/// a start needs the certificates in [`X509_DIR`] and says which one is missing.
pub(super) fn tls(b: &Builder<'_>, g: &Graphics, what: &str) -> Result<Option<u16>> {
    let Some(p) = g.tls_port else {
        return Ok(None);
    };
    if b.env.host.is_some() {
        let dir = std::path::Path::new(X509_DIR);
        if let Some(f) = X509_FILES.iter().find(|f| !dir.join(f).is_file()) {
            return unsupported(format!(
                "{what}: tlsPort needs SPICE's TLS certificate {X509_DIR}/{f}, which does \
                 not exist"
            ));
        }
    }
    if p >= 0 {
        return u16::try_from(p).map(Some).map_err(|_| {
            super::CmdlineError::Invalid(format!("{what}: tlsPort {p} is not a TCP port"))
        });
    }
    (b.env.free_port)().map(Some).ok_or_else(|| {
        super::CmdlineError::NotSupported(format!("{what}: no free port for SPICE TLS"))
    })
}

/// The name SPICE's agent channel must have in the guest.
pub(super) const AGENT_PORT: &str = "com.redhat.spice.0";

/// A `spicevmc` or `spiceport` character device needs a SPICE display to belong to, and a
/// `spicevmc` channel the agent's port name.
pub(super) fn check_chardev(b: &Builder<'_>, c: &CharDevice, what: &str) -> Result<()> {
    if !b.env.caps.spice {
        return unsupported(format!(
            "{what}: {} has no SPICE support",
            b.env.caps.emulator.display()
        ));
    }
    let spice = b
        .live
        .devices
        .graphics
        .iter()
        .any(|g| g.graphics_type == GraphicsType::Spice);
    if !spice {
        return unsupported(format!(
            "{what}: chardev '{}' not supported without spice graphics",
            c.source_type
        ));
    }
    if c.source_type == CharSourceType::Spicevmc
        && c.target_name.as_deref().is_some_and(|n| n != AGENT_PORT)
    {
        return unsupported(format!(
            "{what}: spicevmc target name '{}' (SPICE's agent channel is '{AGENT_PORT}')",
            c.target_name.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Plan;
    use crate::drivers::qemu::cmdline::tests::plan_on_pc as plan;

    fn spice_arg(p: &Plan) -> String {
        let at = p.args.iter().position(|a| a == "-spice").expect("-spice");
        p.args[at + 1].clone()
    }

    /// libvirt's graphics-spice-compression and -agentmouse, less TLS.
    #[test]
    fn options_in_libvirt_order() {
        let p = plan(
            "<graphics type='spice' port='5903' autoport='no' listen='127.0.0.1'>\
             <channel name='inputs' mode='insecure'/><channel name='main' mode='any'/>\
             <image compression='auto_glz'/><jpeg compression='auto'/>\
             <zlib compression='auto'/><playback compression='on'/>\
             <streaming mode='filter'/><mouse mode='server'/><clipboard copypaste='no'/>\
             <filetransfer enable='no'/><gl enable='no'/></graphics>",
        )
        .expect("builds");
        assert_eq!(
            spice_arg(&p),
            "port=5903,addr=127.0.0.1,disable-ticketing=on,agent-mouse=off,\
             plaintext-channel=inputs,image-compression=auto_glz,jpeg-wan-compression=auto,\
             zlib-glz-wan-compression=auto,playback-compression=on,streaming-video=filter,\
             disable-copy-paste=on,disable-agent-file-xfer=on"
        );
    }

    /// SPICE without ports listens nowhere: libvirt's `<listen type='none'/>` and `port=0`.
    #[test]
    fn no_listen() {
        let p = plan("<graphics type='spice'/>").expect("builds");
        assert_eq!(spice_arg(&p), "port=0,disable-ticketing=on");
        let g = &p.live.devices.graphics[0];
        assert_eq!(g.port, None);
        assert_eq!(g.listens[0].listen_type.as_str(), "none");
    }

    /// libvirt's channel-spicevmc and serial-spiceport.
    #[test]
    fn spice_chardevs() {
        let p = plan(
            "<graphics type='spice' autoport='yes'/>\
             <channel type='spicevmc'><target type='virtio'/></channel>\
             <serial type='spiceport'><source channel='org.qemu.console.serial.0'/></serial>",
        )
        .expect("builds");
        let got = p.args.join(" ");
        for want in [
            "-chardev spicevmc,id=charchannel0,name=vdagent -device virtserialport,\
             bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=com.redhat.spice.0",
            "-chardev spiceport,id=charserial0,name=org.qemu.console.serial.0 \
             -device isa-serial,chardev=charserial0,id=serial0",
        ] {
            assert!(got.contains(want), "{want}\nin\n{got}");
        }
    }

    /// libvirt's graphics-spice (TLS on port 5904 with its certificate directory) and
    /// graphics-spice-gl-auto-rendernode; a start without certificates or render node is
    /// refused (`super::super::tests::refused_only_at_start`).
    #[test]
    fn tls_and_gl_define() {
        let p = plan(
            "<graphics type='spice' port='5903' tlsPort='5904' autoport='no' \
             listen='127.0.0.1' defaultMode='secure'><channel name='main' mode='secure'/>\
             <channel name='inputs' mode='insecure'/></graphics>",
        )
        .expect("builds");
        assert_eq!(
            spice_arg(&p),
            "port=5903,tls-port=5904,addr=127.0.0.1,x509-dir=/etc/pki/libvirt-spice,\
             disable-ticketing=on,tls-channel=default,tls-channel=main,plaintext-channel=inputs"
        );
        let p = plan(
            "<graphics type='spice' autoport='no'><gl enable='yes' rendernode='/dev/dri/foo'/>\
             </graphics>",
        )
        .expect("builds");
        assert_eq!(
            spice_arg(&p),
            "port=0,disable-ticketing=on,gl=on,rendernode=/dev/dri/foo"
        );
    }

    #[test]
    fn refusals() {
        for (devices, want) in [
            (
                "<graphics type='spice' autoport='yes'><gl enable='yes' \
                 rendernode='/dev/dri/renderD128'/></graphics>",
                "<gl enable='yes'> serves local clients only",
            ),
            (
                "<graphics type='spice' autoport='yes'><channel name='main' mode='secure'/>\
                 </graphics>",
                "SPICE channel 'main' in mode 'secure'",
            ),
            (
                "<graphics type='spice' autoport='yes' defaultMode='secure'/>",
                "SPICE channel 'default' in mode 'secure'",
            ),
            (
                "<graphics type='vnc'/><channel type='spicevmc'><target type='virtio'/>\
                 </channel>",
                "chardev 'spicevmc' not supported without spice graphics",
            ),
            (
                "<serial type='spiceport'><source channel='x'/></serial>",
                "chardev 'spiceport' not supported without spice graphics",
            ),
            (
                "<graphics type='spice'/><channel type='spicevmc'>\
                 <target type='virtio' name='org.other.0'/></channel>",
                "spicevmc target name 'org.other.0'",
            ),
        ] {
            match plan(devices) {
                Ok(_) => panic!("{devices} builds"),
                Err(e) => assert!(e.contains(want), "{devices}: '{e}' does not name '{want}'"),
            }
        }
    }
}
