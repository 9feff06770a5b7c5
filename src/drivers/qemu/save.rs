//! Managed save: a guest's whole state (memory and devices) written to a file by QEMU's
//! migration to a descriptor, and read back by an incoming migration into a new QEMU started
//! with `-incoming defer`. The image is written beside itself and renamed into place once
//! complete and on disk, so a crash leaves either the old state or the new, never half.

use std::{
    fs::File,
    io,
    os::{fd::OwnedFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::monitor::Vm;
use crate::drivers::{DriverError, DriverResult};

/// The longest a save or restore may take (the guest's whole memory goes through).
const LIMIT: Duration = Duration::from_secs(1800);

/// How often the migration's status is read.
const POLL: Duration = Duration::from_millis(20);

/// Where the image of a domain lives: `<state>/qemu/save/<uuid>.save`.
pub fn image_path(save_dir: &Path, uuid: &Uuid) -> PathBuf {
    save_dir.join(format!("{uuid}.save"))
}

fn io_error(what: &str, path: &Path, e: io::Error) -> DriverError {
    DriverError::Failed(format!("{what} {}: {e}", path.display()))
}

/// Write the state of the guest in `vm` to `image`, leaving it paused; on failure the guest
/// runs again as it did and no image is left.
pub async fn save(vm: &Vm, image: &Path) -> DriverResult<()> {
    let dir = image.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    let part = image.with_extension("save.part");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&part)
        .map_err(|e| io_error("cannot create", &part, e))?;
    let status = vm.command("query-status", None).await?;
    let was_running = status.get("running").and_then(Value::as_bool) == Some(true);
    if was_running {
        vm.command_quiet("stop", None, &["STOP"]).await?;
    }
    let written = async {
        migrate(
            vm,
            "migrate",
            "vb-save",
            file.try_clone()
                .map_err(|e| io_error("cannot use", &part, e))?
                .into(),
        )
        .await?;
        let (file, part2, image2) = (file, part.clone(), image.to_owned());
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            file.sync_all()?;
            std::fs::rename(&part2, &image2)?;
            File::open(image2.parent().unwrap_or(Path::new("/")))?.sync_all()
        })
        .await
        .map_err(|e| DriverError::Failed(e.to_string()))?
        .map_err(|e| io_error("cannot write", image, e))
    };
    match written.await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            if was_running {
                let _ = vm.command_quiet("cont", None, &["RESUME"]).await;
            }
            Err(DriverError::Failed(format!(
                "cannot save domain '{}': {e}",
                vm.name
            )))
        }
    }
}

/// Read `image` from byte `offset` on (where the migration stream starts) into the QEMU of
/// `vm`, started with `-incoming defer` and still paused.
pub async fn restore(vm: &Vm, image: &Path, offset: u64) -> DriverResult<()> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(image).map_err(|e| io_error("cannot open", image, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error("cannot read", image, e))?;
    migrate(vm, "migrate-incoming", "vb-restore", file.into())
        .await
        .map_err(|e| {
            DriverError::Failed(format!(
                "cannot restore domain '{}' from {}: {e}",
                vm.name,
                image.display()
            ))
        })
}

/// Hand `fd` to QEMU as `fdname` and run `command` (`migrate` or `migrate-incoming`) over
/// it to its end.
pub(super) async fn migrate(vm: &Vm, command: &str, fdname: &str, fd: OwnedFd) -> DriverResult<()> {
    vm.qmp
        .execute_with_fd("getfd", Some(json!({ "fdname": fdname })), fd, vm.timeout)
        .await
        .map_err(|e| DriverError::Failed(format!("getfd: {e}")))?;
    vm.command(command, Some(json!({ "uri": format!("fd:{fdname}") })))
        .await?;
    let deadline = Instant::now() + LIMIT;
    loop {
        let st = vm.command("query-migrate", None).await?;
        match st.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(()),
            Some("failed") | Some("cancelled") => {
                let why = st
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("the migration stream failed");
                return Err(DriverError::Failed(why.to_owned()));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            let _ = vm.command("migrate_cancel", None).await;
            return Err(DriverError::Timeout(format!(
                "{command} did not finish within {LIMIT:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
