//! Small platform devices and options: the VM generation id (`vmgenid`), `vmcoreinfo`,
//! the serial graphics adapter for `<bios useserial>`, and `<bios rebootTimeout>`.

use super::{Builder, Result};
use crate::model::DomainDef;

/// `reboot-timeout=N,` for `-boot`, before libvirt's `strict=on`.
pub(super) fn boot_prefix(def: &DomainDef) -> String {
    def.os
        .bios_reboot_timeout
        .map(|t| format!("reboot-timeout={t},"))
        .unwrap_or_default()
}

/// `vmgenid`, `vmcoreinfo` and `sga` devices.
pub(super) fn devices(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    if def.os.bios_useserial == Some(true) {
        b.need("sga", "<os><bios useserial='yes'>")?;
        b.device("sga");
    }
    if let Some(g) = def.genid {
        b.need("vmgenid", "<genid>")?;
        b.device(format!("vmgenid,guid={},id=vmgenid0", g.hyphenated()));
    }
    if def.features.vmcoreinfo.is_some_and(|s| s.enabled()) {
        b.need("vmcoreinfo", "<features><vmcoreinfo>")?;
        b.device("vmcoreinfo");
    }
    Ok(())
}
