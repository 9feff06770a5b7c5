//! The firmware part of the command line: `-bios` for a ROM loader, or two pflash
//! `-blockdev` chains (code read-only, NVRAM writable) that `-machine pflash0/pflash1` name,
//! as libvirt 9.0 does with QEMU 7.2, and for secure boot the pflash `secure` property so
//! only SMM code may write the variable store.

use serde_json::json;

use super::{CmdlineError, Result, unsupported};
use crate::model::{DomainDef, LoaderType};

/// The firmware arguments to put before `-machine`, and the properties `-machine` gains.
pub struct Firmware {
    pub args: Vec<String>,
    pub machine_props: String,
    /// `-global` for secure boot, which libvirt puts after `-cpu`.
    pub global: Option<String>,
}

/// Node names of pflash unit `unit`: its protocol node and its format node.
fn nodes(unit: u8) -> (String, String) {
    (
        format!("libvirt-pflash{unit}-storage"),
        format!("libvirt-pflash{unit}-format"),
    )
}

fn blockdevs(args: &mut Vec<String>, unit: u8, path: &str, readonly: bool) {
    let (storage, format) = nodes(unit);
    let file = json!({
        "driver": "file",
        "filename": path,
        "node-name": storage,
        "auto-read-only": true,
        "discard": "unmap",
    });
    let fmt = json!({
        "node-name": format,
        "read-only": readonly,
        "driver": "raw",
        "file": storage,
    });
    for v in [file, fmt] {
        args.push("-blockdev".into());
        args.push(v.to_string());
    }
}

/// What the definition's `<loader>` and `<nvram>` add to the command line. Automatic
/// selection must have been resolved already (see [`crate::drivers::qemu::firmware`]).
pub fn build(def: &DomainDef, q35: bool) -> Result<Firmware> {
    let mut fw = Firmware {
        args: Vec::new(),
        machine_props: String::new(),
        global: None,
    };
    if def.os.firmware.is_some() {
        return Err(CmdlineError::Invalid(
            "<os firmware> was not resolved to a loader before building the command line".into(),
        ));
    }
    let Some(loader) = &def.os.loader else {
        return Ok(fw);
    };
    let Some(path) = loader.path.as_deref() else {
        return Err(CmdlineError::Invalid(
            "/domain/os/loader has no path and firmware autoselection is disabled".into(),
        ));
    };
    let nvram = def.os.nvram.as_ref().and_then(|n| n.path.as_deref());
    match loader.loader_type {
        None | Some(LoaderType::Rom) => {
            if def.os.nvram.is_some() {
                return unsupported("<nvram> with a ROM loader (use <loader type='pflash'>)");
            }
            if loader.secure == Some(true) {
                return unsupported("<loader secure='yes'> with a ROM loader (needs pflash)");
            }
            fw.args.push("-bios".into());
            fw.args.push(path.to_owned());
        }
        Some(LoaderType::Pflash) => {
            let readonly = loader.readonly.unwrap_or(false);
            blockdevs(&mut fw.args, 0, path, readonly);
            fw.machine_props
                .push_str(&format!(",pflash0={}", nodes(0).1));
            if let Some(nv) = nvram {
                blockdevs(&mut fw.args, 1, nv, false);
                fw.machine_props
                    .push_str(&format!(",pflash1={}", nodes(1).1));
            }
            if loader.secure == Some(true) {
                if !q35 {
                    return unsupported(format!(
                        "<loader secure='yes'> ({path}): secure boot needs a q35 machine type, \
                         not '{}'",
                        def.os.machine.as_deref().unwrap_or("the default")
                    ));
                }
                if def.os.arch.as_deref().is_some_and(|a| a != "x86_64") {
                    return unsupported("<loader secure='yes'>: secure boot on x86_64 only");
                }
                if !def.features.smm.is_some_and(|s| s.enabled()) {
                    return unsupported(format!(
                        "<loader secure='yes'> ({path}) needs <features><smm state='on'/>"
                    ));
                }
                fw.global = Some("driver=cfi.pflash01,property=secure,value=on".into());
            }
        }
    }
    Ok(fw)
}
