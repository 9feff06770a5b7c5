//! `qemu-img`: probing, creating, converting and resizing images.
//!
//! Every call passes paths after `--`-free positional arguments only once they are absolute
//! (a pool path always is), so no file name can pass for an option.

use std::path::Path;

use serde::Deserialize;
use tokio::process::Command;

use super::vol_xml::VolFormat;
use crate::core::{Error, Result};

const QEMU_IMG: &str = "qemu-img";

/// What `qemu-img info --output=json` tells of one image (its backing file is not opened).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    pub format: String,
    pub virtual_size: u64,
    #[serde(default)]
    pub cluster_size: Option<u64>,
    #[serde(default)]
    pub backing_filename: Option<String>,
    #[serde(default)]
    pub full_backing_filename: Option<String>,
    #[serde(default)]
    pub backing_filename_format: Option<String>,
    #[serde(default)]
    pub format_specific: Option<FormatSpecific>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FormatSpecific {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Qcow2Data,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Qcow2Data {
    #[serde(default)]
    pub compat: Option<String>,
    #[serde(default)]
    pub lazy_refcounts: Option<bool>,
    #[serde(default)]
    pub extended_l2: Option<bool>,
}

/// How much of a new image to allocate up front (`qemu-img create -o preallocation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prealloc {
    Off,
    Metadata,
    Falloc,
    Full,
}

impl Prealloc {
    pub fn parse(s: &str) -> Result<Prealloc> {
        Ok(match s {
            "off" => Self::Off,
            "metadata" => Self::Metadata,
            "falloc" => Self::Falloc,
            "full" => Self::Full,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "preallocation '{s}': expected one of off, metadata, falloc, full"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Metadata => "metadata",
            Self::Falloc => "falloc",
            Self::Full => "full",
        }
    }
}

/// Options of a new qcow2 image.
#[derive(Debug, Clone, Default)]
pub struct Qcow2Options {
    pub prealloc: Option<Prealloc>,
    pub compat: Option<String>,
    pub lazy_refcounts: bool,
    pub extended_l2: bool,
    pub cluster_size: Option<u64>,
    pub backing: Option<(String, VolFormat)>,
}

async fn run(args: &[&str], what: &str) -> Result<Vec<u8>> {
    tracing::debug!("qemu-img {}", args.join(" "));
    let out = Command::new(QEMU_IMG)
        .args(args)
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Failed(format!("cannot run {QEMU_IMG} to {what}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Failed(format!(
            "{QEMU_IMG} could not {what}: {}",
            err.trim()
        )));
    }
    Ok(out.stdout)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().filter(|s| s.starts_with('/')).ok_or_else(|| {
        Error::InvalidArgument(format!("'{}' is not an absolute UTF-8 path", p.display()))
    })
}

/// Probes `path`'s format and sizes, sharing it with whoever has it open (a running guest).
pub async fn info(path: &Path) -> Result<ImageInfo> {
    let p = path_str(path)?;
    let out = run(&["info", "--output=json", "-U", p], &format!("read '{p}'")).await?;
    serde_json::from_slice(&out).map_err(|e| {
        Error::Failed(format!(
            "unexpected output of {QEMU_IMG} info for '{p}': {e}"
        ))
    })
}

/// Creates a qcow2 image of `capacity` bytes.
pub async fn create_qcow2(path: &Path, capacity: u64, o: &Qcow2Options) -> Result<()> {
    let p = path_str(path)?;
    // libvirt's default level is 0.10 (qcow2 version 2), readable by the oldest QEMU
    let mut opts = vec![format!("compat={}", o.compat.as_deref().unwrap_or("0.10"))];
    if let Some(pre) = o.prealloc {
        opts.push(format!("preallocation={}", pre.as_str()));
    }
    if o.lazy_refcounts {
        opts.push("lazy_refcounts=on".into());
    }
    if o.extended_l2 {
        opts.push("extended_l2=on".into());
    }
    if let Some(c) = o.cluster_size {
        opts.push(format!("cluster_size={c}"));
    }
    let opts = opts.join(",");
    let mut args = vec!["create", "-q", "-f", "qcow2", "-o", &opts];
    if let Some((b, f)) = &o.backing {
        args.extend(["-b", b.as_str(), "-F", f.as_str()]);
    }
    let size = capacity.to_string();
    args.push(p);
    args.push(&size);
    run(&args, &format!("create '{p}'")).await.map(|_| ())
}

/// Copies `src` (of `src_fmt`) into a new image `dst` of `dst_fmt`.
pub async fn convert(
    src: &Path,
    src_fmt: VolFormat,
    dst: &Path,
    dst_fmt: VolFormat,
    prealloc: Option<Prealloc>,
) -> Result<()> {
    let (s, d) = (path_str(src)?, path_str(dst)?);
    let mut args = vec![
        "convert",
        "-q",
        "-U",
        "-f",
        src_fmt.as_str(),
        "-O",
        dst_fmt.as_str(),
    ];
    let pre;
    if let Some(p) = prealloc {
        pre = format!("preallocation={}", p.as_str());
        args.extend(["-o", &pre]);
    }
    args.extend([s, d]);
    run(&args, &format!("copy '{s}' to '{d}'"))
        .await
        .map(|_| ())
}

/// Changes the virtual size of a non-raw image.
pub async fn resize(path: &Path, fmt: VolFormat, size: u64, shrink: bool) -> Result<()> {
    let p = path_str(path)?;
    let size = size.to_string();
    let mut args = vec!["resize", "-q", "-f", fmt.as_str()];
    if shrink {
        args.push("--shrink");
    }
    args.extend([p, &size]);
    run(&args, &format!("resize '{p}'")).await.map(|_| ())
}
