//! `qemu-img`, for what touches images of a guest that is not running: internal snapshots
//! of shut-off domains and new overlay files.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// How long one `qemu-img` run may take (a snapshot of a large image copies nothing, but a
/// slow disk still has to write the metadata).
const RUN_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ImgError {
    #[error("qemu-img is not installed (package qemu-utils); looked in {0}")]
    Missing(String),
    #[error("cannot run {prog}: {source}")]
    Spawn {
        prog: PathBuf,
        source: std::io::Error,
    },
    #[error("qemu-img {args} did not finish within {RUN_LIMIT:?}")]
    Timeout { args: String },
    #[error("qemu-img {args}: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("qemu-img info {path}: unexpected output: {why}")]
    Output { path: String, why: String },
}

/// What `qemu-img info` says about one image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageInfo {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "backing-filename", default)]
    pub backing: Option<String>,
    #[serde(rename = "full-backing-filename", default)]
    pub full_backing: Option<String>,
    #[serde(default)]
    pub snapshots: Vec<ImageSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageSnapshot {
    pub name: String,
}

impl ImageInfo {
    pub fn has_snapshot(&self, tag: &str) -> bool {
        self.snapshots.iter().any(|s| s.name == tag)
    }
}

/// The `qemu-img` program.
#[derive(Debug, Clone)]
pub struct QemuImg {
    prog: Option<PathBuf>,
    searched: String,
}

impl QemuImg {
    /// Find `qemu-img` in `dirs`; not finding it is reported when it is needed.
    pub fn find(dirs: &[PathBuf]) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let prog = dirs.iter().map(|d| d.join("qemu-img")).find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
        Self {
            prog,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    pub fn available(&self) -> bool {
        self.prog.is_some()
    }

    async fn run(&self, args: &[&str]) -> Result<String, ImgError> {
        let prog = self
            .prog
            .as_ref()
            .ok_or_else(|| ImgError::Missing(self.searched.clone()))?;
        let shown = args.join(" ");
        tracing::debug!("qemu-img {shown}");
        let child = tokio::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(RUN_LIMIT, child).await {
            Err(_) => return Err(ImgError::Timeout { args: shown }),
            Ok(r) => r.map_err(|source| ImgError::Spawn {
                prog: prog.clone(),
                source,
            })?,
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(ImgError::Failed {
                args: shown,
                stderr: stderr
                    .strip_prefix("qemu-img: ")
                    .unwrap_or(&stderr)
                    .to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The image's format, size, backing file and internal snapshots. `-U`: the image may be
    /// open elsewhere (reading its header is safe).
    pub async fn info(&self, path: &Path) -> Result<ImageInfo, ImgError> {
        let p = path.display().to_string();
        let out = self.run(&["info", "-U", "--output=json", &p]).await?;
        serde_json::from_str(&out).map_err(|e| ImgError::Output {
            path: p,
            why: e.to_string(),
        })
    }

    /// Take internal snapshot `tag` of a qcow2 image.
    pub async fn snapshot_create(&self, path: &Path, tag: &str) -> Result<(), ImgError> {
        self.run(&["snapshot", "-c", tag, &path.display().to_string()])
            .await
            .map(drop)
    }

    /// Bring a qcow2 image back to its internal snapshot `tag`.
    pub async fn snapshot_apply(&self, path: &Path, tag: &str) -> Result<(), ImgError> {
        self.run(&["snapshot", "-a", tag, &path.display().to_string()])
            .await
            .map(drop)
    }

    pub async fn snapshot_delete(&self, path: &Path, tag: &str) -> Result<(), ImgError> {
        self.run(&["snapshot", "-d", tag, &path.display().to_string()])
            .await
            .map(drop)
    }

    /// Commit `top` into its backing file (`top` is left as it is: it goes next).
    pub async fn commit(&self, top: &Path) -> Result<(), ImgError> {
        self.run(&["commit", "-q", "-d", &top.display().to_string()])
            .await
            .map(drop)
    }

    /// Point `image` at `backing` (format `backing_fmt`) without touching the data: the
    /// data seen through it is the same (it was merged into `backing`).
    pub async fn rebase_unsafe(
        &self,
        image: &Path,
        backing: &str,
        backing_fmt: &str,
    ) -> Result<(), ImgError> {
        self.run(&[
            "rebase",
            "-q",
            "-u",
            "-b",
            backing,
            "-F",
            backing_fmt,
            &image.display().to_string(),
        ])
        .await
        .map(drop)
    }

    /// A new qcow2 overlay over `backing` (of format `backing_fmt`). With `size` the backing
    /// file is not opened (it may be in use by a running guest); without, qemu-img reads
    /// its size and so checks that it can be opened.
    pub async fn create_overlay(
        &self,
        path: &Path,
        backing: &str,
        backing_fmt: &str,
        size: Option<u64>,
    ) -> Result<(), ImgError> {
        let p = path.display().to_string();
        let size = size.map(|s| s.to_string());
        let mut args = vec![
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            backing,
            "-F",
            backing_fmt,
        ];
        if size.is_some() {
            args.push("-u");
        }
        args.push(&p);
        if let Some(s) = &size {
            args.push(s);
        }
        self.run(&args).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::super::run_qemu_img;
    use super::*;

    fn img() -> Option<QemuImg> {
        let q = QemuImg::find(&crate::drivers::qemu::caps::search_dirs(&[]));
        q.available().then_some(q)
    }

    #[tokio::test]
    async fn snapshots_and_overlays_of_real_images() {
        let Some(q) = img() else {
            eprintln!("qemu-img not installed; skipped");
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("base.qcow2");
        run_qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            &base.display().to_string(),
            "1M",
        ]);
        q.snapshot_create(&base, "s1").await.expect("create");
        let info = q.info(&base).await.expect("info");
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.virtual_size, 1 << 20);
        assert!(info.has_snapshot("s1") && !info.has_snapshot("s2"));
        q.snapshot_apply(&base, "s1").await.expect("apply");
        let e = q.snapshot_apply(&base, "s2").await.expect_err("no s2");
        assert!(e.to_string().contains("s2"), "{e}");
        q.snapshot_delete(&base, "s1").await.expect("delete");
        assert!(!q.info(&base).await.expect("info").has_snapshot("s1"));

        let top = dir.path().join("top.qcow2");
        let b = base.display().to_string();
        q.create_overlay(&top, &b, "qcow2", None)
            .await
            .expect("overlay");
        let info = q.info(&top).await.expect("info");
        assert_eq!(info.backing.as_deref(), Some(b.as_str()));
        assert_eq!(info.virtual_size, 1 << 20);
        let top2 = dir.path().join("top2.qcow2");
        q.create_overlay(&top2, "/nonexistent/x.qcow2", "qcow2", Some(4096))
            .await
            .expect("-u does not open the backing file");
        let e = q
            .create_overlay(
                &dir.path().join("t3.qcow2"),
                "/nonexistent/x.qcow2",
                "qcow2",
                None,
            )
            .await
            .expect_err("without a size the backing file must exist");
        assert!(matches!(e, ImgError::Failed { .. }), "{e}");
    }

    #[tokio::test]
    async fn missing_program_is_a_clear_error() {
        let q = QemuImg::find(&[PathBuf::from("/nonexistent")]);
        assert!(!q.available());
        let e = q.info(Path::new("/x")).await.expect_err("missing");
        assert!(e.to_string().contains("qemu-utils"), "{e}");
    }
}
