//! Emulator discovery and what each emulator offers (machine types, accelerators, devices),
//! probed once over QMP and cached on disk keyed by the binary's path, size and mtime, so a
//! daemon start does not launch every emulator again.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::qmp::Qmp;

/// Bump when [`Caps`] changes shape, so that old cache files are ignored.
const CACHE_FORMAT: u32 = 4;

/// How long a probe may take in all.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("no emulator for architecture '{arch}': looked for qemu-system-{arch} in {searched}")]
    NoEmulator { arch: String, searched: String },
    #[error("cannot read emulator {path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot probe emulator {path}: {why}")]
    Probe { path: PathBuf, why: String },
}

/// A machine type as `query-machines` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub name: String,
    pub alias: Option<String>,
    pub default: bool,
    /// The most vCPUs a guest of this machine type may have.
    pub cpu_max: u32,
    /// The CPU model a guest of this machine type gets when it names none (`qemu64`).
    #[serde(default)]
    pub default_cpu: Option<String>,
}

/// What one emulator binary offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    pub emulator: PathBuf,
    /// `major.minor.micro`.
    pub version: String,
    pub package: String,
    /// The guest architecture (QEMU's target name, e.g. `x86_64`).
    pub arch: String,
    pub machines: Vec<Machine>,
    /// Accelerators compiled in, as `-accel` names them (`tcg`, `kvm`).
    pub accels: Vec<String>,
    /// Device type names, sorted.
    pub devices: Vec<String>,
    pub spice: bool,
    /// Local display backends whose modules are installed (`-display help`), e.g. `dbus`.
    #[serde(default)]
    pub displays: Vec<String>,
}

impl Caps {
    /// A machine type by name or alias.
    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.machines
            .iter()
            .find(|m| m.name == name || m.alias.as_deref() == Some(name))
    }

    pub fn default_machine(&self) -> Option<&Machine> {
        self.machines.iter().find(|m| m.default)
    }

    pub fn has_device(&self, name: &str) -> bool {
        self.devices
            .binary_search_by(|d| d.as_str().cmp(name))
            .is_ok()
    }

    pub fn has_accel(&self, name: &str) -> bool {
        self.accels.iter().any(|a| a == name)
    }
}

/// Identity of a binary for the cache: a new build at the same path has another size or mtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryKey {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

impl BinaryKey {
    pub fn of(path: &Path) -> Result<Self, CapsError> {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(path).map_err(|source| CapsError::Stat {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            size: md.size(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    key: BinaryKey,
    caps: Caps,
}

/// The cache file of one binary: its name is derived from the path, its content says which
/// binary (size, mtime) it describes.
pub fn cache_path(dir: &Path, emulator: &Path) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in emulator.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let base = emulator
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!("{base}-{h:016x}.json"))
}

/// The cached capabilities of `key`'s binary, if the cache describes exactly that binary.
pub fn load_cached(dir: &Path, key: &BinaryKey) -> Option<Caps> {
    let text = std::fs::read(cache_path(dir, &key.path)).ok()?;
    let file: CacheFile = serde_json::from_slice(&text).ok()?;
    (file.format == CACHE_FORMAT && file.key == *key).then_some(file.caps)
}

pub fn store_cached(dir: &Path, key: &BinaryKey, caps: &Caps) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = CacheFile {
        format: CACHE_FORMAT,
        key: key.clone(),
        caps: caps.clone(),
    };
    let text = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    crate::util::fs::write_atomic(&cache_path(dir, &key.path), &text, 0o644)
}

/// Capabilities of `emulator`: from the cache when it matches, else probed and cached.
pub async fn get(emulator: &Path, cache_dir: &Path, scratch: &Path) -> Result<Caps, CapsError> {
    let key = BinaryKey::of(emulator)?;
    if let Some(c) = load_cached(cache_dir, &key) {
        return Ok(c);
    }
    let caps = probe(emulator, scratch).await?;
    if let Err(e) = store_cached(cache_dir, &key, &caps) {
        tracing::warn!(
            "cannot cache the capabilities of {}: {e}",
            emulator.display()
        );
    }
    Ok(caps)
}

/// Where to look for `qemu-system-<arch>`: the configured directories, else `PATH` and the
/// usual install locations.
pub fn search_dirs(configured: &[PathBuf]) -> Vec<PathBuf> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/bin", "/usr/local/bin", "/usr/libexec"] {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// The emulator for `arch` in `dirs`.
pub fn find_emulator(arch: &str, dirs: &[PathBuf]) -> Result<PathBuf, CapsError> {
    use std::os::unix::fs::PermissionsExt;
    let name = format!("qemu-system-{arch}");
    for d in dirs {
        let p = d.join(&name);
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(p);
        }
    }
    Err(CapsError::NoEmulator {
        arch: arch.to_owned(),
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Launch the emulator without a machine and ask it over QMP.
async fn probe(emulator: &Path, scratch: &Path) -> Result<Caps, CapsError> {
    let fail = |why: String| CapsError::Probe {
        path: emulator.to_owned(),
        why,
    };
    std::fs::create_dir_all(scratch).map_err(|e| fail(format!("{}: {e}", scratch.display())))?;
    let sock = scratch.join(format!("probe-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let mut child = tokio::process::Command::new(emulator)
        .args(["-machine", "none", "-nodefaults", "-nographic", "-S"])
        .args(["-no-user-config", "-accel", "tcg", "-qmp"])
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let result = tokio::time::timeout(PROBE_TIMEOUT, ask(&sock, &mut child)).await;
    let _ = child.start_kill();
    let stderr = match child.wait_with_output().await {
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        Err(_) => String::new(),
    };
    let _ = std::fs::remove_file(&sock);
    match result {
        Ok(Ok(mut caps)) => {
            caps.emulator = emulator.to_owned();
            caps.displays = displays(emulator).await;
            Ok(caps)
        }
        Ok(Err(why)) if stderr.is_empty() => Err(fail(why)),
        Ok(Err(why)) => Err(fail(format!("{why}: {stderr}"))),
        Err(_) => Err(fail(format!("no answer within {PROBE_TIMEOUT:?}"))),
    }
}

/// The display backends QEMU can load: `-display help` tries each module (QMP's schema
/// names the ones built, not the ones installed). None when it does not answer.
async fn displays(emulator: &Path) -> Vec<String> {
    let run = tokio::process::Command::new(emulator)
        .args(["-display", "help"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(Ok(out)) => parse_displays(&String::from_utf8_lossy(&out.stdout)),
        _ => Vec::new(),
    }
}

/// The names under `-display help`'s heading.
pub fn parse_displays(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Available display backend types"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn ask(sock: &Path, child: &mut tokio::process::Child) -> Result<Caps, String> {
    let t = Duration::from_secs(10);
    let (qmp, _events) = loop {
        match Qmp::connect(sock, t).await {
            Ok(c) => break c,
            Err(e) => {
                if let Ok(Some(st)) = child.try_wait() {
                    return Err(format!("it exited ({st})"));
                }
                tracing::trace!("probe connect: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let raw = |cmd: &'static str, args: Option<Value>| {
        let qmp = &qmp;
        async move {
            qmp.execute_raw(cmd, args, t)
                .await
                .map_err(|e| format!("{cmd}: {e}"))
        }
    };
    let v = qmp.version().clone();
    let target = raw("query-target", None).await?;
    // raw: the qapi crate's MachineInfo does not fit 7.2's reply
    let machines = raw("query-machines", None).await?;
    let accels = raw("qom-list-types", Some(json!({"implements": "accel"}))).await?;
    let devices = raw(
        "qom-list-types",
        Some(json!({"implements": "device", "abstract": false})),
    )
    .await?;
    let commands = raw("query-commands", None).await?;
    let _ = qmp.execute_raw("quit", None, t).await;
    Ok(parse(
        &format!("{}.{}.{}", v.qemu.major, v.qemu.minor, v.qemu.micro),
        &v.package,
        &target,
        &machines,
        &accels,
        &devices,
        &commands,
    ))
}

/// Capabilities from the raw QMP replies.
pub fn parse(
    version: &str,
    package: &str,
    target: &Value,
    machines: &Value,
    accels: &Value,
    devices: &Value,
    commands: &Value,
) -> Caps {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut ms: Vec<Machine> = machines
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some(Machine {
                        name: m.get("name")?.as_str()?.to_owned(),
                        alias: m.get("alias").and_then(Value::as_str).map(str::to_owned),
                        default: m
                            .get("is-default")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        cpu_max: m
                            .get("cpu-max")
                            .and_then(Value::as_u64)
                            .and_then(|n| u32::try_from(n).ok())
                            .unwrap_or(1),
                        // QOM type names end in "-<arch>-cpu"
                        default_cpu: m
                            .get("default-cpu-type")
                            .and_then(Value::as_str)
                            .map(|t| t.rsplitn(3, '-').last().unwrap_or(t).to_owned()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ms.sort_by(|a, b| a.name.cmp(&b.name));
    let mut accel_names: Vec<String> = names(accels)
        .into_iter()
        .filter_map(|n| n.strip_suffix("-accel").map(str::to_owned))
        .collect();
    accel_names.sort();
    let mut device_names = names(devices);
    device_names.sort();
    device_names.dedup();
    let spice = names(commands).iter().any(|c| c == "query-spice");
    Caps {
        emulator: PathBuf::new(),
        version: version.to_owned(),
        package: package.to_owned(),
        arch: target
            .get("arch")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        machines: ms,
        accels: accel_names,
        devices: device_names,
        spice,
        displays: Vec::new(),
    }
}

/// Capabilities by emulator path, probed as needed.
#[derive(Default)]
pub struct CapsCache {
    known: std::sync::Mutex<HashMap<PathBuf, (BinaryKey, Caps)>>,
}

impl CapsCache {
    /// Capabilities of `emulator` as they stand: re-probed when the binary changed.
    pub async fn get(
        &self,
        emulator: &Path,
        cache_dir: &Path,
        scratch: &Path,
    ) -> Result<Caps, CapsError> {
        let key = BinaryKey::of(emulator)?;
        if let Some((k, c)) = crate::util::lock(&self.known).get(emulator)
            && *k == key
        {
            return Ok(c.clone());
        }
        let caps = get(emulator, cache_dir, scratch).await?;
        crate::util::lock(&self.known).insert(emulator.to_owned(), (key, caps.clone()));
        Ok(caps)
    }

    /// Take `caps` as probed for its emulator, which must exist (tests without QEMU).
    #[cfg(test)]
    pub fn insert(&self, caps: Caps) -> Result<(), CapsError> {
        let key = BinaryKey::of(&caps.emulator)?;
        crate::util::lock(&self.known).insert(caps.emulator.clone(), (key, caps));
        Ok(())
    }

    /// Every emulator probed so far.
    pub fn all(&self) -> Vec<Caps> {
        let mut v: Vec<Caps> = crate::util::lock(&self.known)
            .values()
            .map(|(_, c)| c.clone())
            .collect();
        v.sort_by(|a, b| a.emulator.cmp(&b.emulator));
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Capabilities as QEMU 7.2 for x86_64 reports them (trimmed), for command-line tests.
    pub(crate) fn x86_64() -> Caps {
        let devices = [
            "AC97",
            "ES1370",
            "ich9-intel-hda",
            "intel-hda",
            "sb16",
            "usb-audio",
            "floppy",
            "ich9-ahci",
            "cirrus-vga",
            "e1000",
            "e1000e",
            "i6300esb",
            "ib700",
            "ich9-usb-ehci1",
            "ich9-usb-uhci1",
            "ich9-usb-uhci2",
            "ich9-usb-uhci3",
            "nec-usb-xhci",
            "piix4-usb-uhci",
            "usb-hub",
            "usb-redir",
            "intel-iommu",
            "ivshmem-doorbell",
            "ivshmem-plain",
            "ide-cd",
            "ide-hd",
            "isa-fdc",
            "isa-serial",
            "isa-parallel",
            "usb-ccid",
            "ccid-card-emulated",
            "ccid-card-passthru",
            "lsi53c895a",
            "pci-serial",
            "pcie-root-port",
            "pcie-pci-bridge",
            "pci-bridge",
            "i82801b11-bridge",
            "ioh3420",
            "x3130-upstream",
            "xio3130-downstream",
            "pxb",
            "pxb-pcie",
            "usb-ehci",
            "virtio-blk-pci-transitional",
            "virtio-net-pci-transitional",
            "virtio-rng-pci-transitional",
            "virtio-balloon-pci-transitional",
            "virtio-serial-pci-transitional",
            "virtio-scsi-pci-transitional",
            "virtio-9p-pci-transitional",
            "vhost-vsock-pci-transitional",
            "piix3-usb-uhci",
            "pvpanic",
            "qemu-xhci",
            "qxl-vga",
            "rtl8139",
            "scsi-cd",
            "scsi-hd",
            "usb-kbd",
            "usb-mouse",
            "usb-tablet",
            "VGA",
            "vhost-user-fs-pci",
            "virtconsole",
            "virtio-9p-pci",
            "virtio-balloon-pci",
            "virtio-blk-pci",
            "vhost-vsock-pci",
            "virtio-gpu-pci",
            "virtio-iommu-pci",
            "virtio-keyboard-pci",
            "virtio-net-pci",
            "virtio-rng-pci",
            "virtio-scsi-pci",
            "virtio-serial-pci",
            "virtio-tablet-pci",
            "virtio-vga",
            "virtio-gpu-gl-pci",
            "virtio-vga-gl",
            "usb-storage",
            "virtserialport",
        ];
        let mut devices: Vec<String> = devices.iter().map(|s| s.to_string()).collect();
        devices.sort();
        Caps {
            emulator: PathBuf::from("/usr/bin/qemu-system-x86_64"),
            version: "7.2.0".into(),
            package: "Debian 1:7.2+dfsg-7".into(),
            arch: "x86_64".into(),
            machines: vec![
                Machine {
                    name: "pc-i440fx-7.2".into(),
                    alias: Some("pc".into()),
                    default: true,
                    cpu_max: 255,
                    default_cpu: Some("qemu64".into()),
                },
                Machine {
                    name: "pc-q35-7.2".into(),
                    alias: Some("q35".into()),
                    default: false,
                    cpu_max: 288,
                    default_cpu: Some("qemu64".into()),
                },
            ],
            accels: vec!["kvm".into(), "tcg".into()],
            devices,
            spice: true,
            displays: vec!["none".into(), "egl-headless".into(), "dbus".into()],
        }
    }

    #[test]
    fn display_help() {
        let help = "Available display backend types:\nnone\negl-headless\ncurses\ndbus\n";
        assert_eq!(
            parse_displays(help),
            ["none", "egl-headless", "curses", "dbus"]
        );
        assert!(parse_displays("").is_empty());
    }

    #[test]
    fn parse_replies() {
        let c = parse(
            "7.2.0",
            "Debian",
            &json!({"arch": "x86_64"}),
            &json!([{"name": "pc-q35-7.2", "alias": "q35", "hotpluggable-cpus": true},
                    {"name": "pc-i440fx-7.2", "alias": "pc", "is-default": true, "cpu-max": 255},
                    {"name": "none"}]),
            &json!([{"name": "tcg-accel", "parent": "accel"}, {"name": "kvm-accel"}]),
            &json!([{"name": "virtio-blk-pci"}, {"name": "VGA"}, {"name": "VGA"}]),
            &json!([{"name": "query-spice"}, {"name": "cont"}]),
        );
        assert_eq!(c.arch, "x86_64");
        assert_eq!(c.accels, ["kvm", "tcg"]);
        assert_eq!(c.devices, ["VGA", "virtio-blk-pci"]);
        assert!(c.spice);
        assert_eq!(
            c.machine("pc").map(|m| m.name.as_str()),
            Some("pc-i440fx-7.2")
        );
        assert_eq!(c.machine("pc-q35-7.2").map(|m| m.default), Some(false));
        assert_eq!(c.machine("pc").map(|m| m.cpu_max), Some(255));
        assert_eq!(
            c.default_machine().map(|m| m.name.as_str()),
            Some("pc-i440fx-7.2")
        );
        assert!(c.has_device("VGA") && !c.has_device("qxl-vga"));
    }

    #[test]
    fn cache_is_keyed_by_path_size_and_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("qemu-system-x86_64");
        std::fs::write(&bin, b"one").expect("write");
        let key = BinaryKey::of(&bin).expect("key");
        let mut caps = x86_64();
        caps.emulator = bin.clone();
        store_cached(dir.path(), &key, &caps).expect("store");
        assert_eq!(load_cached(dir.path(), &key), Some(caps.clone()));

        // another size: a different binary
        std::fs::write(&bin, b"longer").expect("rewrite");
        let key2 = BinaryKey::of(&bin).expect("key");
        assert_ne!(key, key2);
        assert_eq!(load_cached(dir.path(), &key2), None);

        // same size, another mtime
        let key3 = BinaryKey {
            mtime_ns: key.mtime_ns + 1,
            ..key.clone()
        };
        assert_eq!(load_cached(dir.path(), &key3), None);

        // another path never reads this file
        let other = dir.path().join("qemu-system-aarch64");
        assert_ne!(cache_path(dir.path(), &bin), cache_path(dir.path(), &other));
        let key4 = BinaryKey {
            path: other,
            ..key.clone()
        };
        assert_eq!(load_cached(dir.path(), &key4), None);

        // a corrupt cache file is ignored
        std::fs::write(cache_path(dir.path(), &bin), b"{").expect("corrupt");
        assert_eq!(load_cached(dir.path(), &key), None);
    }

    #[test]
    fn emulator_search() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = find_emulator("nosucharch", &[dir.path().to_owned()]).expect_err("none");
        assert!(e.to_string().contains("qemu-system-nosucharch"), "{e}");
        let bin = dir.path().join("qemu-system-toy");
        std::fs::write(&bin, b"#!/bin/sh\n").expect("write");
        assert!(
            find_emulator("toy", &[dir.path().to_owned()]).is_err(),
            "not executable"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(
            find_emulator("toy", &[dir.path().to_owned()]).expect("found"),
            bin
        );
    }
}
