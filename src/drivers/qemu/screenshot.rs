//! Screenshots: QMP `screendump` into a file of the domain's runtime directory, read back
//! and removed. PPM, QEMU's default format and the one libvirt 9.0 asks for.

use serde_json::json;

use super::monitor::Vm;
use crate::drivers::{DriverError, DriverResult, Screenshot};

/// libvirt's MIME type for QEMU's PPM screenshots.
const PPM: &str = "image/x-portable-pixmap";

/// Screen `screen` of `vm` (QEMU names its first head 0).
pub async fn take(vm: &Vm, screen: u32) -> DriverResult<Screenshot> {
    // one name per call: screenshots of one guest may overlap
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = vm.dir.join(format!("screenshot-{n}.ppm"));
    let mut args = json!({ "filename": path.to_string_lossy() });
    if screen != 0 {
        args["head"] = json!(screen);
    }
    let r = vm.command("screendump", Some(args)).await;
    let data = r.and_then(|_| {
        std::fs::read(&path).map_err(|e| {
            DriverError::Failed(format!(
                "cannot read the screenshot '{}': {e}",
                path.display()
            ))
        })
    });
    let _ = std::fs::remove_file(&path);
    Ok(Screenshot {
        mime: PPM.into(),
        data: data?,
    })
}
