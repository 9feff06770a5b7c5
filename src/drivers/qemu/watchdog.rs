//! A watchdog with `action='dump'`: QEMU pauses the guest when it fires, and we write the
//! guest's memory to the auto-dump directory and let it run again, as libvirt does
//! (`<state>/qemu/dump/<id>-<name>-<local time>`, an ELF core of memory only).

use std::{
    fs::OpenOptions,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde_json::json;

use super::monitor::Vm;
use crate::{
    drivers::{DriverError, DriverResult},
    model::devices::WatchdogAction,
};

/// How long writing the guest's memory may take (QEMU's dump is synchronous).
const DUMP_LIMIT: Duration = Duration::from_secs(600);

/// Whether the running guest's watchdog wants its memory dumped when it fires.
pub fn wants_dump(vm: &Vm) -> bool {
    let live = crate::util::lock(&vm.live);
    live.devices
        .watchdogs
        .first()
        .is_some_and(|w| w.action == Some(WatchdogAction::Dump))
}

/// libvirt's short name of a domain: its id and up to 20 characters of its name.
fn short_name(id: u32, name: &str) -> String {
    let name: String = name.chars().take(20).collect();
    format!("{id}-{name}")
}

/// `YYYY-MM-DD-HH:MM:SS` in the host's local time, as libvirt names dumps.
fn local_stamp(now: i64) -> String {
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: a zeroed tm is a valid out-parameter; localtime_r writes only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        tm.tm_gmtoff = 0;
    }
    let local = now + tm.tm_gmtoff;
    let (y, mo, d) = crate::util::civil_date(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}-{:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The file a dump taken now goes to.
pub fn dump_path(dir: &Path, id: u32, name: &str, now: i64) -> PathBuf {
    dir.join(format!("{}-{}", short_name(id, name), local_stamp(now)))
}

/// Dump the paused guest's memory into `dir`, then resume it (also when the dump failed,
/// as libvirt does: the guest was only paused for the dump).
pub async fn dump_and_resume(vm: Arc<Vm>, dir: PathBuf) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let path = dump_path(&dir, vm.id, &vm.name, now);
    match dump(&vm, &path).await {
        Ok(()) => tracing::info!(
            "domain '{}': watchdog fired; memory dumped to {}",
            vm.name,
            path.display()
        ),
        Err(e) => tracing::error!("domain '{}': watchdog dump failed: {e}", vm.name),
    }
    if let Err(e) = vm.command("cont", None).await {
        tracing::error!("domain '{}': resuming after the dump failed: {e}", vm.name);
    }
}

async fn dump(vm: &Vm, path: &Path) -> DriverResult<()> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        DriverError::Failed(format!("{what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the directory of", &e))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail("cannot create", &e))?;
    vm.qmp
        .execute_with_fd(
            "getfd",
            Some(json!({ "fdname": "vb-dump" })),
            file.into(),
            vm.timeout,
        )
        .await
        .map_err(|e| fail("cannot hand QEMU", &e))?;
    let args = json!({ "paging": false, "protocol": "fd:vb-dump", "format": "elf" });
    vm.qmp
        .execute("dump-guest-memory", Some(args), DUMP_LIMIT)
        .await
        .map_err(|e| fail("cannot dump the guest's memory to", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_libvirt() {
        let p = dump_path(Path::new("/d"), 7, "a-very-long-domain-name-indeed", 0);
        let s = p.to_string_lossy();
        assert!(s.starts_with("/d/7-a-very-long-domain-n-"), "{s}");
        // the stamp: YYYY-MM-DD-HH:MM:SS
        let stamp = &s["/d/7-a-very-long-domain-n-".len()..];
        assert_eq!(stamp.len(), 19, "{stamp}");
        assert_eq!(&stamp[4..5], "-");
        assert_eq!(&stamp[10..11], "-");
        assert_eq!(&stamp[13..14], ":");
    }
}
