//! The TPM part of the command line: an emulated TPM is reached through the control socket
//! of the domain's swtpm (started by [`crate::drivers::qemu::swtpm`] before QEMU), a host
//! TPM through its character device; the guest sees a `tpm-tis` or `tpm-crb` device.

use std::path::{Path, PathBuf};

use super::{Builder, CmdlineError, Result, alias, socket_path, unsupported};
use crate::model::{
    DomainDef,
    devices::{TpmBackend, TpmModel, TpmVersion},
};

/// The swtpm control socket in a domain's runtime directory.
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("swtpm.sock")
}

pub(super) fn tpms(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    if def.devices.tpms.len() > 1 {
        return unsupported("more than one <tpm> device");
    }
    let Some(tpm) = def.devices.tpms.first() else {
        return Ok(());
    };
    let model = tpm.model.unwrap_or(TpmModel::Tis);
    let what = format!("<tpm model='{model}'>");
    if tpm.info.address.is_some() {
        return unsupported(format!(
            "{what}: an <address> (the TPM sits at a fixed place)"
        ));
    }
    b.need(model.as_str(), &what)?;
    let a = alias(&tpm.info, "tpm0".into());
    let tpmdev = format!("tpm-{a}");
    match &tpm.backend {
        TpmBackend::Passthrough { device } => {
            if !Path::new(device).exists() {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: host TPM device {device} does not exist \
                     (<backend type='passthrough'><device path=...>)"
                )));
            }
            let name = Path::new(device)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cancel = format!("/sys/class/tpm/{name}/device/cancel");
            b.arg(
                "-tpmdev",
                format!(
                    "passthrough,id={tpmdev},path={},cancel-path={}",
                    super::esc(device),
                    super::esc(&cancel)
                ),
            );
        }
        TpmBackend::Emulator(em) => {
            if em.encryption_secret.is_some() {
                return unsupported(format!(
                    "{what}: encrypted TPM state (<encryption secret=...>; virtbus has no \
                     secrets store)"
                ));
            }
            if em.version == Some(TpmVersion::V1_2) && model == TpmModel::Crb {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: TPM 1.2 is not supported with tpm-crb; use version='2.0' or \
                     model='tpm-tis'"
                )));
            }
            if em.active_pcr_banks.is_some() && em.version == Some(TpmVersion::V1_2) {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: <active_pcr_banks> needs a TPM 2.0"
                )));
            }
            let sock = socket_path(socket(b.env.dir))?;
            b.arg(
                "-chardev",
                format!(
                    "socket,id=chrtpm,path={}",
                    super::esc(&sock.display().to_string())
                ),
            );
            b.arg("-tpmdev", format!("emulator,id={tpmdev},chardev=chrtpm"));
        }
    }
    b.device(format!("{model},tpmdev={tpmdev},id={a}"));
    let live = &mut b.live.devices.tpms[0];
    live.model = Some(model);
    live.info.alias = Some(a);
    Ok(())
}
