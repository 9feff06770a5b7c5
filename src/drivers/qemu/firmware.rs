//! UEFI firmware: QEMU's firmware descriptors (`docs/interop/firmware.json`), libvirt's rules
//! for choosing one for `<os firmware='efi'>`, and the per-domain NVRAM variable store.
//!
//! As libvirt 9.0 does, the persistent definition keeps `firmware='efi'` (with its feature
//! wishes); the choice is made for each start and shows only in the live definition, which
//! names the loader, its NVRAM template and the domain's NVRAM file, with SMM turned on for
//! firmware that needs it. A definition naming its own read-only pflash loader without an
//! `<nvram>` gets the domain's NVRAM path at define, as libvirt's post-parse does.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{
    DomainDef, FeatureState, Firmware, FirmwareFeatureName, Loader, LoaderType, Nvram,
};

/// Where QEMU's firmware descriptors live, highest priority first (a file in an earlier
/// directory hides the file of the same name in a later one; an empty file hides it too).
pub const DESCRIPTOR_DIRS: &[&str] = &["/etc/qemu/firmware", "/usr/share/qemu/firmware"];

/// Why no firmware could be chosen, or why the definition's firmware is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    /// The definition contradicts itself (libvirt's define-time validation).
    #[error("{0}")]
    Invalid(String),
    /// No descriptor satisfies the definition, or the host lacks what it needs.
    #[error("{0}")]
    NotSupported(String),
}

type Result<T> = std::result::Result<T, FirmwareError>;

/// One firmware descriptor, with what selection needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The file it was read from (for messages).
    pub file: PathBuf,
    pub interfaces: Vec<String>,
    /// `flash`, `memory` or `kernel`.
    pub device: String,
    /// `split` (executable + variable store) or `stateless` (flash only).
    pub mode: String,
    pub executable: Option<Image>,
    pub nvram_template: Option<Image>,
    pub targets: Vec<Target>,
    pub features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Image {
    pub filename: String,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Target {
    pub architecture: String,
    #[serde(default)]
    pub machines: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawDescriptor {
    #[serde(default)]
    interface_types: Vec<String>,
    mapping: RawMapping,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMapping {
    device: String,
    mode: Option<String>,
    executable: Option<Image>,
    nvram_template: Option<Image>,
    filename: Option<String>,
}

impl Descriptor {
    /// Parse one descriptor (its `mapping` may name the image directly, as `memory`
    /// descriptors do).
    pub fn parse(file: &Path, text: &str) -> std::result::Result<Descriptor, String> {
        let raw: RawDescriptor =
            serde_json::from_str(text).map_err(|e| format!("{}: {e}", file.display()))?;
        let m = raw.mapping;
        let executable = m.executable.or_else(|| {
            m.filename.map(|f| Image {
                filename: f,
                format: "raw".into(),
            })
        });
        Ok(Descriptor {
            file: file.to_owned(),
            interfaces: raw.interface_types,
            device: m.device,
            mode: m.mode.unwrap_or_else(|| "split".into()),
            executable,
            nvram_template: m.nvram_template,
            targets: raw.targets,
            features: raw.features,
        })
    }

    fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Whether it runs guests of `arch` on machine type `machine` (the descriptor's
    /// machines are glob patterns such as `pc-q35-*`).
    pub fn matches_machine(&self, machine: &str, arch: &str) -> bool {
        let arch = qemu_arch(arch);
        self.targets
            .iter()
            .any(|t| t.architecture == arch && t.machines.iter().any(|pat| glob(pat, machine)))
    }
}

/// libvirt's architecture names that differ from QEMU's.
fn qemu_arch(arch: &str) -> &str {
    match arch {
        "i686" => "i386",
        a => a,
    }
}

/// Shell-style matching of `*` and `?`, which is all descriptors use.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// The descriptors of `dirs` in priority order: by file name, a name in an earlier
/// directory hiding the same name in later ones (an empty file hides it and adds nothing).
/// Unreadable or malformed files are skipped with a warning rather than hiding the others.
pub fn load(dirs: &[&str]) -> Vec<Descriptor> {
    let mut files: std::collections::BTreeMap<String, PathBuf> = Default::default();
    for dir in dirs.iter().rev() {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                files.insert(name, e.path());
            }
        }
    }
    let mut out = Vec::new();
    for path in files.values() {
        let text = match std::fs::read_to_string(path) {
            Ok(t) if t.trim().is_empty() => continue,
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("firmware descriptor {}: {e}", path.display());
                continue;
            }
        };
        match Descriptor::parse(path, &text) {
            Ok(d) => out.push(d),
            Err(e) => tracing::warn!("firmware descriptor skipped: {e}"),
        }
    }
    out
}

/// libvirt's define-time checks of `<os>`'s firmware settings.
pub fn validate(def: &DomainDef) -> Result<()> {
    let os = &def.os;
    let invalid = |m: &str| Err(FirmwareError::Invalid(m.to_owned()));
    if is_stateless(def) && os.nvram.is_some() {
        return invalid("/domain/os/nvram cannot be used with <loader stateless='yes'>");
    }
    let uefi = os.firmware == Some(Firmware::Efi)
        || os
            .loader
            .as_ref()
            .is_some_and(|l| l.loader_type == Some(LoaderType::Pflash));
    let x86 = matches!(os.arch.as_deref(), None | Some("x86_64" | "i686"));
    if uefi && x86 && !def.features.acpi {
        return Err(FirmwareError::NotSupported(
            "UEFI requires ACPI on this architecture: add <features><acpi/>".into(),
        ));
    }
    if let Some(fw) = os.firmware {
        if let Some(l) = &os.loader {
            if l.readonly.is_some() {
                return invalid(
                    "/domain/os/loader/@readonly cannot be specified when firmware \
                     autoselection (<os firmware>) is enabled",
                );
            }
            if l.loader_type.is_some() {
                return invalid(
                    "/domain/os/loader/@type cannot be specified when firmware autoselection \
                     (<os firmware>) is enabled",
                );
            }
            if l.path.is_some() {
                return invalid(
                    "a /domain/os/loader path cannot be specified when firmware \
                     autoselection (<os firmware>) is enabled",
                );
            }
            if l.secure == Some(false) {
                return invalid(
                    "/domain/os/loader/@secure cannot be specified when firmware \
                     autoselection (<os firmware>) is enabled",
                );
            }
        }
        if let Some(n) = &os.nvram {
            if n.template.is_some() {
                return invalid(
                    "/domain/os/nvram/@template cannot be specified when firmware \
                     autoselection (<os firmware>) is enabled",
                );
            }
            if fw != Firmware::Efi {
                return invalid(&format!(
                    "firmware type '{fw}' does not support /domain/os/nvram"
                ));
            }
        }
        let want = |n| {
            os.firmware_features
                .iter()
                .find(|f| f.name == n)
                .map(|f| f.enabled)
        };
        if want(FirmwareFeatureName::EnrolledKeys) == Some(true)
            && want(FirmwareFeatureName::SecureBoot) == Some(false)
        {
            return invalid(
                "firmware feature 'enrolled-keys' cannot be enabled when firmware feature \
                 'secure-boot' is disabled",
            );
        }
    } else {
        // (a live definition keeps the features its firmware was chosen by)
        if !os.firmware_features.is_empty() && !is_old_style_uefi(def) {
            return invalid(
                "/domain/os/firmware features need firmware autoselection (<os firmware='efi'>)",
            );
        }
        if let Some(l) = &os.loader
            && l.path.is_none()
        {
            return invalid(
                "/domain/os/loader has no path and firmware autoselection (<os firmware>) is \
                 disabled",
            );
        }
        if os.nvram.is_some() && !is_old_style_uefi(def) {
            return invalid(
                "/domain/os/nvram needs a read-only pflash <loader readonly='yes' \
                 type='pflash'> or <os firmware='efi'>",
            );
        }
    }
    Ok(())
}

/// A read-only pflash loader named by path: UEFI chosen by hand.
pub fn is_old_style_uefi(def: &DomainDef) -> bool {
    def.os.loader.as_ref().is_some_and(|l| {
        l.path.is_some() && l.readonly == Some(true) && l.loader_type == Some(LoaderType::Pflash)
    })
}

/// `<loader stateless='yes'>`: firmware that keeps no variables.
pub fn is_stateless(def: &DomainDef) -> bool {
    def.os.loader.as_ref().and_then(|l| l.stateless) == Some(true)
}

/// libvirt's NVRAM file name for a domain: `<dir>/<name>_VARS.fd`.
pub fn nvram_path(nvram_dir: &Path, def: &DomainDef) -> String {
    nvram_dir
        .join(format!("{}_VARS.fd", def.name))
        .display()
        .to_string()
}

/// Post-parse default: a hand-chosen UEFI loader without `<nvram>` gets the domain's file.
pub fn post_parse(def: &mut DomainDef, nvram_dir: &Path) {
    if is_old_style_uefi(def)
        && !is_stateless(def)
        && def.os.nvram.as_ref().is_none_or(|n| n.path.is_none())
    {
        let path = nvram_path(nvram_dir, def);
        def.os.nvram.get_or_insert_with(Default::default).path = Some(path);
    }
}

/// Whether `d` can boot `def` (libvirt's qemuFirmwareMatchDomain, for what virtbus models).
fn matches(def: &DomainDef, d: &Descriptor, machine: &str, arch: &str) -> bool {
    let want = match def.os.firmware {
        Some(Firmware::Efi) => "uefi",
        Some(Firmware::Bios) => "bios",
        None => {
            // a hand-chosen loader: the descriptor of that very image, for its template
            let path = def.os.loader.as_ref().and_then(|l| l.path.as_deref());
            if d.device != "flash" || d.executable.as_ref().map(|e| e.filename.as_str()) != path {
                return false;
            }
            "uefi"
        }
    };
    if !d.interfaces.iter().any(|i| i == want) || !d.matches_machine(machine, arch) {
        return false;
    }
    if let Some(pm) = &def.pm
        && (pm.suspend_to_mem == Some(true) && !d.has("acpi-s3")
            || pm.suspend_to_disk == Some(true) && !d.has("acpi-s4"))
    {
        return false;
    }
    for f in &def.os.firmware_features {
        let has = match f.name {
            FirmwareFeatureName::SecureBoot => d.has("secure-boot"),
            FirmwareFeatureName::EnrolledKeys => d.has("enrolled-keys"),
        };
        if has != f.enabled {
            return false;
        }
    }
    if def.os.loader.as_ref().and_then(|l| l.secure) == Some(true) && !d.has("requires-smm") {
        return false;
    }
    // a stateless loader wants firmware that runs without a variable store
    let mode = if is_stateless(def) {
        "stateless"
    } else {
        "split"
    };
    d.device != "flash" || d.mode == mode
}

/// The definition QEMU runs: `firmware='efi'` replaced by the chosen descriptor's loader,
/// NVRAM template and the domain's NVRAM file (under `nvram_dir`), SMM enabled for firmware
/// that requires it; a hand-chosen loader without a template gets the one its descriptor
/// names. Other definitions are returned as they are.
pub fn resolve(
    def: &DomainDef,
    descriptors: &[Descriptor],
    machine: &str,
    arch: &str,
    nvram_dir: &Path,
) -> Result<DomainDef> {
    validate(def)?;
    let mut out = def.clone();
    let hand_chosen = def.os.firmware.is_none();
    if hand_chosen
        && (!is_old_style_uefi(def)
            || is_stateless(def)
            || def.os.nvram.as_ref().is_some_and(|n| n.template.is_some()))
    {
        return Ok(out);
    }
    let Some(d) = descriptors.iter().find(|d| matches(def, d, machine, arch)) else {
        if hand_chosen {
            // no template known: the NVRAM file must exist already (checked at start)
            return Ok(out);
        }
        return Err(FirmwareError::NotSupported(format!(
            "no firmware descriptor (in {}) satisfies <os firmware='{}'>{} on machine \
             '{machine}' ({arch})",
            DESCRIPTOR_DIRS.join(", "),
            def.os.firmware.map(|f| f.as_str()).unwrap_or("efi"),
            feature_list(def),
        )));
    };
    if d.device != "flash" {
        return Err(FirmwareError::NotSupported(format!(
            "firmware descriptor {}: device '{}' (only flash firmware is supported)",
            d.file.display(),
            d.device
        )));
    }
    if is_stateless(def) {
        let Some(exe) = &d.executable else {
            return Err(FirmwareError::NotSupported(format!(
                "firmware descriptor {} names no executable",
                d.file.display()
            )));
        };
        let loader = out
            .os
            .loader
            .get_or_insert_with(|| Box::new(Loader::default()));
        loader.loader_type = Some(LoaderType::Pflash);
        loader.readonly = Some(true);
        loader.path = Some(exe.filename.clone());
        out.os.firmware = None;
        return Ok(out);
    }
    let (Some(exe), Some(tmpl)) = (&d.executable, &d.nvram_template) else {
        return Err(FirmwareError::NotSupported(format!(
            "firmware descriptor {} names no executable or NVRAM template",
            d.file.display()
        )));
    };
    for img in [exe, tmpl] {
        if img.format != "raw" {
            return Err(FirmwareError::NotSupported(format!(
                "firmware descriptor {}: image format '{}' of {} (only raw)",
                d.file.display(),
                img.format,
                img.filename
            )));
        }
    }
    if d.has("requires-smm") {
        match out.features.smm {
            Some(FeatureState::Off) => {
                return Err(FirmwareError::Invalid(format!(
                    "<features><smm state='off'/> but the chosen firmware {} requires SMM",
                    exe.filename
                )));
            }
            Some(_) => {}
            None => out.features.smm = Some(FeatureState::On),
        }
    }
    let loader = out
        .os
        .loader
        .get_or_insert_with(|| Box::new(Loader::default()));
    loader.loader_type = Some(LoaderType::Pflash);
    loader.readonly = Some(true);
    loader.path = Some(exe.filename.clone());
    if d.has("requires-smm") {
        loader.secure = Some(true);
    }
    let nvram = out
        .os
        .nvram
        .get_or_insert_with(|| Box::new(Nvram::default()));
    nvram.template = Some(tmpl.filename.clone());
    if nvram.path.is_none() {
        nvram.path = Some(nvram_path(nvram_dir, def));
    }
    out.os.firmware = None;
    Ok(out)
}

fn feature_list(def: &DomainDef) -> String {
    if def.os.firmware_features.is_empty() {
        return String::new();
    }
    let f: Vec<String> = def
        .os
        .firmware_features
        .iter()
        .map(|f| format!("{}={}", f.name, if f.enabled { "yes" } else { "no" }))
        .collect();
    format!(" with features {}", f.join(", "))
}

/// Make the domain's NVRAM file from its template if it does not exist yet, atomically. The
/// copy is private to root: it holds the guest's secure boot keys.
pub fn prepare_nvram(def: &DomainDef) -> std::result::Result<(), String> {
    let Some(n) = &def.os.nvram else {
        return Ok(());
    };
    let Some(path) = n.path.as_deref() else {
        return Ok(());
    };
    let path = Path::new(path);
    if path.exists() {
        return Ok(());
    }
    let Some(tmpl) = n.template.as_deref() else {
        return Err(format!(
            "NVRAM file {} does not exist and no template is known for loader {}; name one \
             with <nvram template='...'>",
            path.display(),
            def.os
                .loader
                .as_ref()
                .and_then(|l| l.path.as_deref())
                .unwrap_or("?")
        ));
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let data =
        std::fs::read(tmpl).map_err(|e| format!("cannot read NVRAM template {tmpl}: {e}"))?;
    let tmp = path.with_extension("fd.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        f.write_all(&data)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// The NVRAM file undefine deals with: the definition's, or for automatic selection the one
/// a start would have made.
pub fn nvram_file(def: &DomainDef, nvram_dir: &Path) -> Option<PathBuf> {
    if let Some(p) = def.os.nvram.as_ref().and_then(|n| n.path.as_deref()) {
        return Some(PathBuf::from(p));
    }
    (def.os.firmware == Some(Firmware::Efi)).then(|| PathBuf::from(nvram_path(nvram_dir, def)))
}

/// Loader images, whether secure boot firmware exists, and the `<os firmware>` kinds
/// (`bios`, `efi`) that can be chosen automatically, for domain capabilities: the
/// descriptors that run `arch` on any of `machines`, each executable once.
pub fn offered(
    descriptors: &[Descriptor],
    arch: &str,
    machines: &[String],
) -> (Vec<String>, bool, Vec<String>) {
    let mut loaders = Vec::new();
    let mut secure = false;
    let mut kinds = Vec::new();
    for d in descriptors {
        if !machines.iter().any(|m| d.matches_machine(m, arch)) {
            continue;
        }
        secure |= d.has("requires-smm");
        for (interface, kind) in [("bios", "bios"), ("uefi", "efi")] {
            if d.interfaces.iter().any(|i| i == interface) && !kinds.iter().any(|k| k == kind) {
                kinds.push(kind.to_owned());
            }
        }
        if let Some(e) = &d.executable
            && !loaders.contains(&e.filename)
        {
            loaders.push(e.filename.clone());
        }
    }
    (loaders, secure, kinds)
}

#[cfg(test)]
mod tests;
