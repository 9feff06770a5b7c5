//! Local displays on the command line: `<graphics type='sdl'>` (`-display sdl`, with the X
//! display and authority in QEMU's environment), `egl-headless` and `dbus`, as libvirt
//! 9.0 writes them. QEMU takes one such display beside VNC and SPICE.

use std::path::Path;

use super::{Builder, CmdlineError, Result, esc, sound, unsupported};
use crate::model::DomainDef;
use crate::model::devices::{Graphics, GraphicsType};

/// Whether `g` is a display of this host rather than a network server.
pub(super) fn is_local(g: &Graphics) -> bool {
    matches!(
        g.graphics_type,
        GraphicsType::Sdl | GraphicsType::Dbus | GraphicsType::EglHeadless
    )
}

/// Whether the definition has a local display (then `-display none` is not written).
pub(super) fn has_local(def: &DomainDef) -> bool {
    def.devices.graphics.iter().any(is_local)
}

/// `DISPLAY` and `XAUTHORITY` of an SDL display, as libvirt sets them.
pub(super) fn env(def: &DomainDef) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in &def.devices.graphics {
        if g.graphics_type == GraphicsType::Sdl {
            if let Some(x) = &g.display.xauth {
                out.push(("XAUTHORITY".to_owned(), x.clone()));
            }
            if let Some(d) = &g.display.x_display {
                out.push(("DISPLAY".to_owned(), d.clone()));
            }
        }
    }
    out
}

/// The DRM render node OpenGL rendering uses: the one named, else at start the host's first
/// (as libvirt picks it); a start without one says so.
pub(super) fn render_node(
    b: &Builder<'_>,
    node: Option<&str>,
    what: &str,
) -> Result<Option<String>> {
    if b.env.host.is_none() {
        return Ok(node.map(str::to_owned));
    }
    match node {
        Some(n) if !Path::new(n).exists() => unsupported(format!(
            "{what}: render node {n} does not exist on this host"
        )),
        Some(n) => Ok(Some(n.to_owned())),
        None => {
            let mut found: Vec<String> = std::fs::read_dir("/dev/dri")
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with("renderD"))
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            match found.first() {
                Some(n) => Ok(Some(format!("/dev/dri/{n}"))),
                None => unsupported(format!(
                    "{what}: OpenGL rendering needs a DRM render node (/dev/dri/renderD*), \
                     which this host has none of"
                )),
            }
        }
    }
}

/// The `-display` of local display `g`.
pub(super) fn local(b: &mut Builder<'_>, def: &DomainDef, g: &Graphics) -> Result<()> {
    let what = format!("<graphics type='{}'>", g.graphics_type);
    if def.devices.graphics.iter().filter(|x| is_local(x)).count() > 1 {
        return unsupported(format!(
            "{what}: more than one local display (QEMU shows one of sdl, egl-headless, dbus)"
        ));
    }
    let gl = g.display.gl.as_ref();
    let gl_on = gl.and_then(|g| g.enable) == Some(true);
    let rendernode = gl.and_then(|g| g.rendernode.as_deref());
    let mut s = match g.graphics_type {
        GraphicsType::Sdl => {
            if g.display.fullscreen {
                b.args.push("-full-screen".into());
            }
            String::from("sdl")
        }
        GraphicsType::EglHeadless => {
            render_node(b, rendernode, &what)?;
            String::from("egl-headless")
        }
        GraphicsType::Dbus => {
            let mut s = String::from("dbus");
            if g.display.p2p {
                s.push_str(",p2p=on");
            } else if let Some(a) = &g.display.address {
                s.push_str(&format!(",addr={}", esc(a)));
            } else {
                return unsupported(format!(
                    "{what} without p2p='yes' or an address (libvirt then runs a D-Bus \
                     daemon per domain, which this driver does not)"
                ));
            }
            s
        }
        GraphicsType::Vnc | GraphicsType::Spice => {
            return Err(CmdlineError::Invalid(format!(
                "{what} is not a local display"
            )));
        }
    };
    if gl_on {
        render_node(b, rendernode, &what)?;
        s.push_str(",gl=on");
    }
    if let Some(r) = rendernode {
        s.push_str(&format!(",rendernode={}", esc(r)));
    }
    if let Some(id) = g.display.audio_id {
        let a = sound::audiodev_named(def, id, &what)?;
        s.push_str(&format!(",audiodev={a}"));
    }
    b.arg("-display", s);
    Ok(())
}
