//! `<os>`: guest type, firmware and boot configuration.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// Text of `<os><type>`: full virtualisation, a container init, or Xen PV.
    pub enum OsType {
        Hvm = "hvm",
        Exe = "exe",
        Linux = "linux",
        Xen = "xen",
    }
}

xml_enum! {
    /// `<boot dev=...>`.
    pub enum BootDev {
        Hd = "hd",
        Cdrom = "cdrom",
        Fd = "fd",
        Network = "network",
    }
}

xml_enum! {
    /// `firmware` of `<os>` (automatic firmware selection).
    pub enum Firmware {
        Bios = "bios",
        Efi = "efi",
    }
}

xml_enum! {
    /// `type` of `<loader>`.
    pub enum LoaderType {
        Rom = "rom",
        Pflash = "pflash",
    }
}

xml_enum! {
    /// Firmware capability requested from automatic firmware selection.
    pub enum FirmwareFeatureName {
        EnrolledKeys = "enrolled-keys",
        SecureBoot = "secure-boot",
    }
}

/// `<firmware><feature enabled=.. name=../></firmware>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareFeature {
    pub name: FirmwareFeatureName,
    pub enabled: bool,
}

/// `<loader>`: firmware image (path may be left to automatic selection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loader {
    pub path: Option<String>,
    pub readonly: Option<bool>,
    pub secure: Option<bool>,
    /// `stateless='yes'`: firmware without a variable store (no `<nvram>`, no pflash1).
    pub stateless: Option<bool>,
    pub loader_type: Option<LoaderType>,
}

/// `<nvram>`: per-domain UEFI variable store and its template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nvram {
    pub path: Option<String>,
    pub template: Option<String>,
    /// Written in libvirt's newer form, `<nvram type='file'><source file=…/></nvram>`, as
    /// the user wrote it (a store on the network is refused).
    pub source_form: bool,
}

/// `<bootmenu enable=.. timeout=..>` (timeout in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootMenu {
    pub enable: bool,
    pub timeout: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Os {
    pub os_type: OsType,
    pub arch: Option<String>,
    pub machine: Option<String>,
    pub firmware: Option<Firmware>,
    /// Constraints for automatic firmware selection.
    pub firmware_features: Vec<FirmwareFeature>,
    pub loader: Option<Box<Loader>>,
    pub nvram: Option<Box<Nvram>>,
    /// Container init program and its arguments (LXC).
    pub init: Option<String>,
    pub init_args: Vec<String>,
    /// `<initenv name=..>value</initenv>`: the init's environment, in order.
    pub init_env: Vec<(String, String)>,
    /// `<initdir>`, `<inituser>`, `<initgroup>`: where and as whom the init runs.
    pub init_dir: Option<String>,
    pub init_user: Option<String>,
    pub init_group: Option<String>,
    /// Direct kernel boot.
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub boot: Vec<BootDev>,
    pub bootmenu: Option<BootMenu>,
    /// `<bios useserial rebootTimeout>`: BIOS output on the serial port (QEMU's `sga`), and
    /// milliseconds before a failed boot retries (-1: never).
    pub bios_useserial: Option<bool>,
    pub bios_reboot_timeout: Option<i32>,
}

impl Os {
    pub(crate) fn read(mut e: Elem) -> Result<Os> {
        let firmware = e.attr_with("firmware", values::keyword::<Firmware>)?;
        let mut t = e.req_child("type")?;
        let arch = t.attr_with("arch", values::token)?;
        let machine = t.attr_with("machine", values::token)?;
        let os_type = t.text_with(values::keyword::<OsType>)?;
        t.finish()?;

        let mut firmware_features = Vec::new();
        if let Some(mut f) = e.child("firmware")? {
            f.each("feature", |mut ff| {
                let enabled = ff.req_attr_with("enabled", values::yes_no)?;
                let name = ff.req_attr_with("name", values::keyword::<FirmwareFeatureName>)?;
                ff.finish()?;
                firmware_features.push(FirmwareFeature { name, enabled });
                Ok(())
            })?;
            f.finish()?;
        }
        let loader = match e.child("loader")? {
            None => None,
            Some(mut l) => {
                let loader = Loader {
                    readonly: l.attr_with("readonly", values::yes_no)?,
                    secure: l.attr_with("secure", values::yes_no)?,
                    stateless: l.attr_with("stateless", values::yes_no)?,
                    loader_type: l.attr_with("type", values::keyword::<LoaderType>)?,
                    path: opt_path(&mut l)?,
                };
                l.finish()?;
                Some(Box::new(loader))
            }
        };
        let nvram = match e.child("nvram")? {
            None => None,
            Some(mut n) => {
                let template = n.attr_with("template", values::abs_path)?;
                let nvram = match n.attr("type") {
                    None => Nvram {
                        template,
                        path: opt_path(&mut n)?,
                        source_form: false,
                    },
                    Some("file") => {
                        let mut src = n.req_child("source")?;
                        let path = src.attr_with("file", values::abs_path)?;
                        src.finish()?;
                        Nvram {
                            template,
                            path,
                            source_form: true,
                        }
                    }
                    Some(other) => {
                        return Err(n.attr_invalid(
                            "type",
                            other,
                            "this driver keeps UEFI variables in a file ('file')",
                        ));
                    }
                };
                n.finish()?;
                Some(Box::new(nvram))
            }
        };
        let init = e.child_text_with("init", values::abs_path)?;
        let mut init_args = Vec::new();
        e.each("initarg", |mut a| {
            init_args.push(a.text().into_owned());
            a.finish()
        })?;
        let mut init_env = Vec::new();
        e.each("initenv", |mut a| {
            let name = a.req_attr_with("name", env_name)?;
            let value = a.text().into_owned();
            a.finish()?;
            init_env.push((name, value));
            Ok(())
        })?;
        let init_dir = e.child_text_with("initdir", values::abs_path)?;
        let init_user = e.child_text_with("inituser", values::non_empty)?;
        let init_group = e.child_text_with("initgroup", values::non_empty)?;
        let kernel = e.child_text_with("kernel", values::abs_path)?;
        let initrd = e.child_text_with("initrd", values::abs_path)?;
        let cmdline = e.child_text("cmdline")?;
        let mut boot = Vec::new();
        e.each("boot", |mut b| {
            boot.push(b.req_attr_with("dev", values::keyword::<BootDev>)?);
            b.finish()
        })?;
        let bootmenu = match e.child("bootmenu")? {
            None => None,
            Some(mut b) => {
                let m = BootMenu {
                    enable: b.req_attr_with("enable", values::yes_no)?,
                    timeout: b
                        .attr_with("timeout", |v| values::uint_in(v, 0, 65535))?
                        .map(|t| t as u32),
                };
                b.finish()?;
                Some(m)
            }
        };
        let (mut bios_useserial, mut bios_reboot_timeout) = (None, None);
        if let Some(mut b) = e.child("bios")? {
            bios_useserial = b.attr_with("useserial", values::yes_no)?;
            bios_reboot_timeout = b.attr_with("rebootTimeout", |v| {
                values::int_in(v, -1, 65535).map(|t| t as i32)
            })?;
            b.finish()?;
        }
        e.finish()?;
        Ok(Os {
            os_type,
            arch,
            machine,
            firmware,
            firmware_features,
            loader,
            nvram,
            init,
            init_args,
            init_env,
            init_dir,
            init_user,
            init_group,
            kernel,
            initrd,
            cmdline,
            boot,
            bootmenu,
            bios_useserial,
            bios_reboot_timeout,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("os");
        w.attr_opt("firmware", self.firmware.map(|f| f.as_str()));
        w.start("type");
        w.attr_opt("arch", self.arch.as_deref());
        w.attr_opt("machine", self.machine.as_deref());
        w.end_with_text(self.os_type.as_str());
        if !self.firmware_features.is_empty() {
            w.start("firmware");
            for f in &self.firmware_features {
                w.start("feature");
                w.attr("enabled", values::yes_no_str(f.enabled));
                w.attr("name", f.name.as_str());
                w.end();
            }
            w.end();
        }
        w.leaf_opt("init", self.init.as_deref());
        for a in &self.init_args {
            w.leaf("initarg", a);
        }
        for (name, value) in &self.init_env {
            w.start("initenv");
            w.attr("name", name);
            w.end_with_text(value);
        }
        w.leaf_opt("initdir", self.init_dir.as_deref());
        w.leaf_opt("inituser", self.init_user.as_deref());
        w.leaf_opt("initgroup", self.init_group.as_deref());
        if let Some(l) = &self.loader {
            w.start("loader");
            w.attr_opt("readonly", l.readonly.map(values::yes_no_str));
            w.attr_opt("secure", l.secure.map(values::yes_no_str));
            w.attr_opt("stateless", l.stateless.map(values::yes_no_str));
            w.attr_opt("type", l.loader_type.map(|t| t.as_str()));
            end_opt_text(w, l.path.as_deref());
        }
        if let Some(n) = &self.nvram {
            w.start("nvram");
            w.attr_opt("template", n.template.as_deref());
            if n.source_form {
                w.attr("type", "file");
                w.start("source");
                w.attr_opt("file", n.path.as_deref());
                w.end();
                w.end();
            } else {
                end_opt_text(w, n.path.as_deref());
            }
        }
        w.leaf_opt("kernel", self.kernel.as_deref());
        w.leaf_opt("initrd", self.initrd.as_deref());
        w.leaf_opt("cmdline", self.cmdline.as_deref());
        for b in &self.boot {
            w.leaf_attr("boot", "dev", b.as_str());
        }
        if let Some(m) = &self.bootmenu {
            w.start("bootmenu");
            w.attr("enable", values::yes_no_str(m.enable));
            w.attr_num_opt("timeout", m.timeout);
            w.end();
        }
        if self.bios_useserial.is_some() || self.bios_reboot_timeout.is_some() {
            w.start("bios");
            w.attr_opt("useserial", self.bios_useserial.map(values::yes_no_str));
            w.attr_num_opt("rebootTimeout", self.bios_reboot_timeout);
            w.end();
        }
        w.end();
    }
}

impl Os {
    /// libvirt's generic post-parse of `<os>`: enrolled keys imply secure boot, features
    /// in libvirt's order, and a loader named by path alone is a ROM.
    pub(crate) fn apply_defaults(&mut self) {
        let has = |v: &[FirmwareFeature], n| v.iter().any(|f| f.name == n);
        let wants_keys = self
            .firmware_features
            .iter()
            .any(|f| f.name == FirmwareFeatureName::EnrolledKeys && f.enabled);
        if wants_keys && !has(&self.firmware_features, FirmwareFeatureName::SecureBoot) {
            self.firmware_features.push(FirmwareFeature {
                name: FirmwareFeatureName::SecureBoot,
                enabled: true,
            });
        }
        self.firmware_features.sort_by_key(|f| f.name as u8);
        if let Some(l) = &mut self.loader
            && l.path.is_some()
            && l.loader_type.is_none()
        {
            l.loader_type = Some(LoaderType::Rom);
        }
    }
}

/// `name` of `<initenv>`: libvirt's schema allows letters, digits and `_`, not starting
/// with a digit.
fn env_name(v: &str) -> std::result::Result<String, String> {
    let ok = v
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(v.to_owned())
    } else {
        Err("expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into())
    }
}

/// Text content that is either empty or an absolute path.
fn opt_path(e: &mut Elem) -> Result<Option<String>> {
    e.text_with(|t| {
        if t.is_empty() {
            Ok(None)
        } else {
            values::abs_path(t).map(Some)
        }
    })
}

fn end_opt_text(w: &mut Writer, text: Option<&str>) {
    match text {
        Some(t) => w.end_with_text(t),
        None => w.end(),
    }
}
