//! `<launchSecurity type='sev'>`: an AMD SEV guest, whose memory the host cannot read. The
//! definition is kept as libvirt keeps it; starting one needs SEV hardware (`/dev/sev`).

use crate::model::error::XmlError;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSecurity {
    /// `kernelHashes`: measure the direct-boot kernel, initrd and command line.
    pub kernel_hashes: Option<bool>,
    /// The C-bit position in page table entries; the host's when absent.
    pub cbitpos: Option<u32>,
    /// Physical address bits lost to encryption; the host's when absent.
    pub reduced_phys_bits: Option<u32>,
    /// The guest policy bits (libvirt's `<policy>`, hexadecimal).
    pub policy: u32,
    /// The guest owner's Diffie-Hellman certificate and session blob (base64).
    pub dh_cert: Option<String>,
    pub session: Option<String>,
}

/// libvirt reads `<policy>` as hexadecimal, with or without `0x`.
fn hex(s: &str) -> Result<u32, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u32::from_str_radix(digits, 16).map_err(|_| "expected a hexadecimal number".into())
}

fn small(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| "expected a non-negative integer".into())
}

impl LaunchSecurity {
    pub(crate) fn read(mut e: Elem) -> Result<LaunchSecurity, XmlError> {
        let kind = e.req_attr("type")?;
        if kind != "sev" {
            return Err(e.attr_invalid(
                "type",
                kind,
                "this driver knows launch security type 'sev' (x86 only)",
            ));
        }
        let kernel_hashes = e.attr_with("kernelHashes", crate::model::values::yes_no)?;
        let cbitpos = e.child_text_with("cbitpos", small)?;
        let reduced_phys_bits = e.child_text_with("reducedPhysBits", small)?;
        let policy = match e.child_text_with("policy", hex)? {
            Some(p) => p,
            None => return Err(e.missing_child("policy")),
        };
        let dh_cert = e.child_text("dhCert")?;
        let session = e.child_text("session")?;
        e.finish()?;
        Ok(LaunchSecurity {
            kernel_hashes,
            cbitpos,
            reduced_phys_bits,
            policy,
            dh_cert,
            session,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("launchSecurity");
        w.attr("type", "sev");
        w.attr_opt(
            "kernelHashes",
            self.kernel_hashes.map(crate::model::values::yes_no_str),
        );
        if let Some(c) = self.cbitpos {
            w.leaf("cbitpos", &c.to_string());
        }
        if let Some(r) = self.reduced_phys_bits {
            w.leaf("reducedPhysBits", &r.to_string());
        }
        w.leaf("policy", &format!("0x{:04x}", self.policy));
        w.leaf_opt("dhCert", self.dh_cert.as_deref());
        w.leaf_opt("session", self.session.as_deref());
        w.end();
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{DomainDef, FormatOptions};

    fn domain(inner: &str) -> String {
        format!(
            "<domain type='qemu'><name>t</name><memory>65536</memory>\
             <os><type>hvm</type></os>{inner}</domain>"
        )
    }

    /// libvirt's launch-security-sev: read, written in libvirt's form, read again the same.
    #[test]
    fn sev_round_trips() {
        let xml = domain(
            "<launchSecurity type='sev' kernelHashes='yes'><cbitpos>47</cbitpos>\
             <reducedPhysBits>1</reducedPhysBits><policy>1</policy><dhCert>AQ</dhCert>\
             <session>IH</session></launchSecurity>",
        );
        let d = DomainDef::from_xml(&xml).expect("parses");
        let out = d.to_xml(&FormatOptions::default());
        assert!(
            out.contains(
                "  <launchSecurity type='sev' kernelHashes='yes'>\n    <cbitpos>47</cbitpos>\n    \
                 <reducedPhysBits>1</reducedPhysBits>\n    <policy>0x0001</policy>\n    \
                 <dhCert>AQ</dhCert>\n    <session>IH</session>\n  </launchSecurity>\n"
            ),
            "{out}"
        );
        assert_eq!(DomainDef::from_xml(&out).expect("reparses"), d);
    }

    #[test]
    fn refusals() {
        for (inner, want) in [
            (
                "<launchSecurity type='s390-pv'/>",
                "/domain/launchSecurity/@type",
            ),
            (
                "<launchSecurity type='sev'><cbitpos>47</cbitpos></launchSecurity>",
                "/domain/launchSecurity/policy",
            ),
            (
                "<launchSecurity type='sev'><policy>zz</policy></launchSecurity>",
                "/domain/launchSecurity/policy",
            ),
            (
                "<launchSecurity type='sev'><policy>1</policy><bogus/></launchSecurity>",
                "/domain/launchSecurity/bogus",
            ),
        ] {
            let e = DomainDef::from_xml(&domain(inner)).expect_err(inner);
            assert!(e.to_string().contains(want), "{inner}: {e}");
        }
    }
}
