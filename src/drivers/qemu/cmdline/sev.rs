//! `<launchSecurity type='sev'>`: QEMU's `sev-guest` object, named by the machine's
//! `confidential-guest-support`, as libvirt writes it. Defining one works anywhere; a start
//! needs an AMD SEV host under KVM, which is refused by name when absent.

use super::Accel;
use super::{Builder, Result, esc, unsupported};
use crate::model::DomainDef;

/// The object's id.
const ID: &str = "lsec0";

/// The host's SEV device: without it (or without KVM) QEMU cannot make the guest ready.
const SEV_DEVICE: &str = "/dev/sev";

/// `,confidential-guest-support=lsec0` for a SEV guest.
pub(super) fn machine_props(def: &DomainDef) -> String {
    match def.launch_security {
        Some(_) => format!(",confidential-guest-support={ID}"),
        None => String::new(),
    }
}

/// The `-object sev-guest` of a SEV guest.
pub(super) fn object(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let Some(l) = &def.launch_security else {
        return Ok(());
    };
    let what = "<launchSecurity type='sev'>";
    if b.env.host.is_some() {
        if !std::path::Path::new(SEV_DEVICE).exists() {
            return unsupported(format!(
                "{what}: AMD SEV needs the host's {SEV_DEVICE} (an AMD host with SEV enabled in \
                 KVM), which this host does not have"
            ));
        }
        if b.env.accel == Accel::Tcg {
            return unsupported(format!(
                "{what}: AMD SEV needs KVM, and this guest runs TCG"
            ));
        }
        return unsupported(format!(
            "{what}: this driver does not yet write the guest owner's certificate and session \
             files a SEV launch reads"
        ));
    }
    let mut s = format!("sev-guest,id={ID}");
    if let Some(c) = l.cbitpos {
        s.push_str(&format!(",cbitpos={c}"));
    }
    if let Some(r) = l.reduced_phys_bits {
        s.push_str(&format!(",reduced-phys-bits={r}"));
    }
    s.push_str(&format!(",policy={}", l.policy));
    if l.dh_cert.is_some() {
        let f = b.env.dir.join("dh_cert.base64");
        s.push_str(&format!(",dh-cert-file={}", esc(&f.display().to_string())));
    }
    if l.session.is_some() {
        let f = b.env.dir.join("session.base64");
        s.push_str(&format!(",session-file={}", esc(&f.display().to_string())));
    }
    if let Some(k) = l.kernel_hashes {
        s.push_str(&format!(",kernel-hashes={}", super::on_off(k)));
    }
    b.arg("-object", s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Accel;
    use super::super::tests::{build_with, def};
    use crate::drivers::qemu::caps::tests::x86_64;

    /// libvirt's launch-security-sev-direct (its 6.0 arguments, in QEMU's keyval form): QEMU
    /// 7.2 parses them; only KVM on an SEV host can make the guest ready.
    #[test]
    fn sev_guest_object() {
        let d = def(
            "",
            "<launchSecurity type='sev' kernelHashes='yes'><cbitpos>47</cbitpos>\
             <reducedPhysBits>1</reducedPhysBits><policy>0x0001</policy><dhCert>AQ</dhCert>\
             <session>IH</session></launchSecurity>",
            "",
            "",
        );
        let args = build_with(&d, &x86_64(), Accel::Tcg)
            .expect("builds")
            .args
            .join(" ");
        assert!(
            args.contains(
                "-machine pc-i440fx-7.2,usb=off,dump-guest-core=off,acpi=off,\
                 confidential-guest-support=lsec0 "
            ),
            "{args}"
        );
        assert!(
            args.contains(
                "-object sev-guest,id=lsec0,cbitpos=47,reduced-phys-bits=1,policy=1,\
                 dh-cert-file=/run/vb/qemu/d1/dh_cert.base64,\
                 session-file=/run/vb/qemu/d1/session.base64,kernel-hashes=on"
            ),
            "{args}"
        );
    }
}
