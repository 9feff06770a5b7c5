//! `<domain>`: the top-level definition, its parser and formatter.

use crate::model::clock::Clock;
use crate::model::cpu::Cpu;
use crate::model::devices::Devices;
use crate::model::error::XmlError;
use crate::model::features::Features;
use crate::model::metadata;
use crate::model::names;
use crate::model::os::Os;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::{self, Elem};

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// Hypervisor driver a domain is defined for (`<domain type=...>`).
    pub enum DomainType {
        Test = "test",
        Qemu = "qemu",
        Kvm = "kvm",
        Lxc = "lxc",
    }
}

xml_enum! {
    /// What happens when the guest powers off, reboots or crashes.
    pub enum LifecycleAction {
        Destroy = "destroy",
        Restart = "restart",
        Preserve = "preserve",
        RenameRestart = "rename-restart",
        CoredumpDestroy = "coredump-destroy",
        CoredumpRestart = "coredump-restart",
    }
}

xml_enum! {
    /// `placement` of `<vcpu>`.
    pub enum VcpuPlacement {
        Static = "static",
        Auto = "auto",
    }
}

/// Choices that change how a definition is written, not what it says.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// Writes `id='N'` on `<domain>`; only running domains have one.
    pub id: Option<i32>,
    /// Includes secrets (graphics passwords); off for unprivileged callers.
    pub secure: bool,
}

/// `<pm>`: whether the guest may suspend to RAM or disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pm {
    pub suspend_to_mem: Option<bool>,
    pub suspend_to_disk: Option<bool>,
}

/// A domain definition, as `<domain>` XML describes it.
///
/// Memory sizes are in KiB whatever unit the input used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDef {
    pub domain_type: DomainType,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Verbatim source between `<metadata>` and `</metadata>`.
    pub metadata: Option<String>,
    pub memory_kib: u64,
    pub current_memory_kib: Option<u64>,
    /// `<maxMemory slots>`: room for memory devices.
    pub max_memory: Option<crate::model::devices::MaxMemory>,
    /// `<memory dumpCore>`: whether guest memory goes into QEMU core dumps.
    pub dump_core: Option<bool>,
    /// `<genid>`: the VM generation id (`<genid/>` asks for a new one, made at parse).
    pub genid: Option<uuid::Uuid>,
    pub max_vcpus: u32,
    pub current_vcpus: Option<u32>,
    pub vcpu_placement: Option<VcpuPlacement>,
    /// Host CPUs the vCPUs may run on, in libvirt's list syntax.
    pub cpuset: Option<String>,
    /// `<resource><partition>`: the cgroup partition (e.g. `/machine`).
    pub resource_partition: Option<String>,
    pub os: Os,
    /// `<idmap>`: a container's user namespace.
    pub idmap: Option<crate::model::idmap::IdMap>,
    pub features: Features,
    pub cpu: Option<Box<Cpu>>,
    pub clock: Option<Clock>,
    pub on_poweroff: Option<LifecycleAction>,
    pub on_reboot: Option<LifecycleAction>,
    pub on_crash: Option<LifecycleAction>,
    pub pm: Option<Pm>,
    /// `<perf>`: the perf events counted for the guest.
    pub perf: crate::model::perf::Perf,
    pub devices: Devices,
    /// `<seclabel>`s, one per security model.
    pub seclabels: Vec<crate::model::seclabel::SecLabel>,
    /// `<launchSecurity>`: memory encryption (AMD SEV).
    pub launch_security: Option<crate::model::launch_security::LaunchSecurity>,
    /// vCPU, I/O thread, NUMA and memory tuning.
    pub tuning: crate::model::tuning::Tuning,
    /// `<qemu:commandline>` (libvirt's QEMU namespace): passed to QEMU unchecked.
    pub qemu_commandline: Option<crate::model::qemu_ns::QemuCommandline>,
    /// `<qemu:capabilities>` and `<qemu:override>` (libvirt's QEMU namespace).
    pub qemu_tweaks: crate::model::qemu_ns::QemuTweaks,
}

impl DomainDef {
    /// Parses and validates a `<domain>` document.
    pub fn from_xml(xml: &str) -> Result<DomainDef> {
        let doc = xml::parse_document(xml)?;
        let root = xml::root(&doc, "domain")?;
        DomainDef::read(root)
    }

    /// [`DomainDef::from_xml`] for a stored file, read with the larger
    /// [`super::MAX_STORED_XML_BYTES`] limit.
    pub fn from_stored_xml(xml: &str) -> Result<DomainDef> {
        let doc = xml::parse_document_within(xml, super::MAX_STORED_XML_BYTES)?;
        let root = xml::root(&doc, "domain")?;
        DomainDef::read(root)
    }

    /// Canonical XML: two-space indentation, libvirt's element order.
    pub fn to_xml(&self, opts: &FormatOptions) -> String {
        let mut w = Writer::new(0);
        self.write(&mut w, "domain", opts.id, opts);
        w.finish()
    }

    /// Checks a definition built or edited in code against every rule the
    /// parser enforces, by writing it out and reading it back; call it
    /// before storing a definition that did not come from `from_xml`.
    pub fn validate(&self) -> Result<()> {
        let opts = FormatOptions {
            id: None,
            secure: true,
        };
        DomainDef::from_xml(&self.to_xml(&opts)).map(|_| ())
    }

    /// The vCPUs the guest runs with: `current`, else the maximum.
    pub fn vcpus(&self) -> u32 {
        self.current_vcpus.unwrap_or(self.max_vcpus)
    }

    /// Memory the guest runs with in KiB: `currentMemory`, else `memory`.
    pub fn current_memory(&self) -> u64 {
        self.current_memory_kib.unwrap_or(self.memory_kib)
    }

    /// UID of the user owning the domain (`<virtbus:owner uid=.../>` in
    /// metadata), used for access control.
    pub fn owner_uid(&self) -> Option<u32> {
        metadata::owner_uid(self.metadata.as_deref())
    }

    /// Adds, replaces or (with `None`) removes the owner element, keeping
    /// the rest of the metadata byte-identical.
    pub fn set_owner_uid(&mut self, uid: Option<u32>) {
        metadata::set_owner_uid(&mut self.metadata, uid);
    }

    /// Verbatim source of the metadata element in namespace `ns_uri`.
    pub fn metadata_element(&self, ns_uri: &str) -> Option<String> {
        metadata::get_element(self.metadata.as_deref(), ns_uri)
    }

    /// Sets (or with `None` removes) the metadata element in namespace
    /// `ns_uri`. `element` must be one well-formed element in that
    /// namespace that declares its own prefix.
    pub fn set_metadata_element(&mut self, ns_uri: &str, element: Option<&str>) -> Result<()> {
        metadata::set_element(&mut self.metadata, ns_uri, element)
    }

    /// The metadata element in namespace `ns_uri` as libvirt returns it: without its prefix
    /// and namespace declaration; an error when the stored metadata cannot be read back.
    pub fn metadata_element_plain(&self, ns_uri: &str) -> Result<Option<String>> {
        metadata::plain(self.metadata.as_deref(), ns_uri)
    }

    /// Sets (or with `None` removes) an application's metadata element as libvirt does:
    /// `element` (names without namespace) is put in namespace `ns_uri` under prefix `key`.
    pub fn set_metadata_namespaced(
        &mut self,
        ns_uri: &str,
        key: &str,
        element: Option<&str>,
    ) -> Result<()> {
        let stored = element
            .map(|e| metadata::namespaced(e, key, ns_uri))
            .transpose()?;
        metadata::set_element(&mut self.metadata, ns_uri, stored.as_deref())
    }

    /// Reads a `<domain>` (or `<inactiveDomain>`) element anywhere in a
    /// document; errors carry the element's full path.
    pub(crate) fn read(mut e: Elem) -> Result<DomainDef> {
        let domain_type = e.req_attr_with("type", values::keyword::<DomainType>)?;
        // `virsh dumpxml` of a running domain carries its id; accepted so
        // such output can be fed back, but it is not part of a definition.
        e.attr_with("id", |v| values::int_in(v, -1, i32::MAX.into()))?;

        let name = match e.child("name")? {
            None => return Err(e.missing_child("name")),
            Some(mut n) => {
                let name = n.text_with_raw(|t| names::check_name(t).map(|_| t.to_string()))?;
                n.finish()?;
                name
            }
        };
        let uuid = e
            .child_text_with("uuid", values::uuid)?
            .unwrap_or_else(uuid::Uuid::new_v4);
        let genid = match e.child("genid")? {
            None => None,
            Some(mut g) => {
                let text = g.text().trim().to_owned();
                let id = if text.is_empty() {
                    uuid::Uuid::new_v4()
                } else {
                    values::uuid(&text).map_err(|r| g.invalid(&text, r))?
                };
                g.finish()?;
                Some(id)
            }
        };
        let title = match e.child("title")? {
            None => None,
            Some(mut t) => {
                let title = t.text_with_raw(|s| {
                    if s.contains('\n') {
                        Err("title must not contain newlines".into())
                    } else {
                        Ok(s.to_string())
                    }
                })?;
                t.finish()?;
                Some(title)
            }
        };
        let description = e.child_text("description")?;
        let metadata = e
            .child("metadata")?
            .map(metadata::read_metadata)
            .transpose()?;

        let max_memory = e
            .child("maxMemory")?
            .map(crate::model::devices::MaxMemory::read)
            .transpose()?;
        let mut memory_el = e.child("memory")?;
        let dump_core = match memory_el.as_mut() {
            Some(m) => m.attr_with("dumpCore", values::on_off)?,
            None => None,
        };
        let has_numa = e
            .node()
            .children()
            .filter(|c| c.has_tag_name("cpu"))
            .any(|c| c.children().any(|n| n.has_tag_name("numa")));
        let mut memory_kib = match memory_el {
            Some(m) => read_memory(m)?,
            // the NUMA cells then give the size
            None if has_numa => 0,
            None => return Err(e.missing_child("memory")),
        };
        let current_memory_kib = match e.child("currentMemory")? {
            None => None,
            Some(m) => {
                let path = m.path();
                let kib = read_memory(m)?;
                // with NUMA cells their sum is the size, and libvirt clamps to it
                if kib > memory_kib && !has_numa {
                    return Err(XmlError::invalid(
                        path,
                        &kib.to_string(),
                        "currentMemory (KiB) exceeds memory",
                    ));
                }
                Some(kib)
            }
        };

        let mut max_vcpus = 1;
        let mut current_vcpus = None;
        let mut vcpu_placement = None;
        let mut cpuset = None;
        if let Some(mut v) = e.child("vcpu")? {
            vcpu_placement = v.attr_with("placement", values::keyword::<VcpuPlacement>)?;
            cpuset = v.attr_with("cpuset", values::cpuset)?;
            current_vcpus = v.attr_with("current", values::u32_pos)?;
            max_vcpus = v.text_with(values::u32_pos)?;
            if let Some(c) = current_vcpus.filter(|c| *c > max_vcpus) {
                return Err(v.attr_invalid(
                    "current",
                    &c.to_string(),
                    format!("current vCPUs exceed the maximum of {max_vcpus}"),
                ));
            }
            v.finish()?;
        }

        let resource_partition = match e.child("resource")? {
            None => None,
            Some(mut r) => {
                let p = r
                    .child_text_with("partition", values::abs_path)?
                    .ok_or_else(|| r.missing_child("partition"))?;
                r.finish()?;
                Some(p)
            }
        };

        let os = Os::read(e.req_child("os")?)?;
        let idmap = e
            .child("idmap")?
            .map(crate::model::idmap::IdMap::read)
            .transpose()?;
        let features = e
            .child("features")?
            .map(Features::read)
            .transpose()?
            .unwrap_or_default();
        let cpu = match e.child("cpu")? {
            None => None,
            Some(c) => Some(Box::new(Cpu::read(c, max_vcpus)?)),
        };
        let tuning = {
            let cells = cpu.as_ref().map(|c| c.numa.as_slice()).unwrap_or_default();
            if !cells.is_empty() {
                // as libvirt, the cells' sum is the memory size
                memory_kib = cells.iter().map(|c| c.memory_kib).sum();
            }
            let ctx = crate::model::tuning::Ctx {
                max_vcpus,
                placement_static: vcpu_placement != Some(VcpuPlacement::Auto),
                cells,
            };
            crate::model::tuning::Tuning::read(&mut e, &ctx)?
        };
        if let Some(n) = tuning.enabled_vcpus() {
            current_vcpus = (n < max_vcpus).then_some(n);
        }
        if vcpu_placement.is_none() && tuning.implies_auto_placement(cpuset.is_some()) {
            vcpu_placement = Some(VcpuPlacement::Auto);
        }
        let clock = e.child("clock")?.map(Clock::read).transpose()?;
        let on_poweroff = read_lifecycle(&mut e, "on_poweroff")?;
        let on_reboot = read_lifecycle(&mut e, "on_reboot")?;
        let on_crash = read_lifecycle(&mut e, "on_crash")?;
        let pm = e.child("pm")?.map(read_pm).transpose()?;
        let perf = e
            .child("perf")?
            .map(crate::model::perf::Perf::read)
            .transpose()?
            .unwrap_or_default();

        let devices = match e.child("devices")? {
            None => Devices::default(),
            Some(d) => Devices::read(d)?,
        };
        memory_kib =
            crate::model::devices::memory_total(&e, memory_kib, has_numa, max_memory, &devices)?;
        let mut seclabels = Vec::new();
        e.each("seclabel", |s| {
            seclabels.push(crate::model::seclabel::SecLabel::read(s)?);
            Ok(())
        })?;
        let launch_security = e
            .child("launchSecurity")?
            .map(crate::model::launch_security::LaunchSecurity::read)
            .transpose()?;
        let qemu_commandline = e
            .child_ns(crate::model::qemu_ns::QEMU_NS, "commandline")?
            .map(crate::model::qemu_ns::QemuCommandline::read)
            .transpose()?;
        let qemu_tweaks = crate::model::qemu_ns::QemuTweaks::read(&mut e)?;
        if let Some(first) = os.boot.first()
            && devices.has_boot_order()
        {
            return Err(XmlError::invalid(
                format!("{}/os/boot", e.path()),
                first.as_str(),
                "per-device <boot order> cannot be combined with <os><boot>",
            ));
        }
        e.finish()?;

        Ok(DomainDef {
            domain_type,
            name,
            uuid,
            title,
            description,
            metadata,
            memory_kib,
            current_memory_kib,
            max_memory,
            dump_core,
            genid,
            max_vcpus,
            current_vcpus,
            vcpu_placement,
            cpuset,
            resource_partition,
            os,
            idmap,
            features,
            cpu,
            clock,
            on_poweroff,
            on_reboot,
            on_crash,
            pm,
            perf,
            devices,
            seclabels,
            launch_security,
            tuning,
            qemu_commandline,
            qemu_tweaks,
        })
    }

    /// Writes the definition as element `root` at the writer's depth.
    pub(crate) fn write(
        &self,
        w: &mut Writer,
        root: &'static str,
        id: Option<i32>,
        opts: &FormatOptions,
    ) {
        w.start(root);
        w.attr("type", self.domain_type.as_str());
        w.attr_num_opt("id", id);
        if self.qemu_commandline.is_some() || !self.qemu_tweaks.is_empty() {
            w.attr("xmlns:qemu", crate::model::qemu_ns::QEMU_NS);
        }
        w.leaf("name", &self.name);
        w.leaf("uuid", &self.uuid.hyphenated().to_string());
        if let Some(g) = self.genid {
            w.leaf("genid", &g.hyphenated().to_string());
        }
        w.leaf_opt("title", self.title.as_deref());
        w.leaf_opt("description", self.description.as_deref());
        if let Some(m) = &self.metadata {
            w.start("metadata");
            w.end_with_raw(m);
        }
        if let Some(m) = &self.max_memory {
            m.write(w);
        }
        w.start("memory");
        w.attr_opt("dumpCore", self.dump_core.map(values::on_off_str));
        w.attr("unit", "KiB");
        w.end_with_text(&self.memory_kib.to_string());
        if let Some(c) = self.current_memory_kib {
            write_memory(w, "currentMemory", c);
        }
        self.tuning.blkiotune.write(w);
        self.tuning.memtune.write(w);
        self.tuning.write_memory_backing(w);
        w.start("vcpu");
        w.attr_opt("placement", self.vcpu_placement.map(|p| p.as_str()));
        w.attr_opt("cpuset", self.cpuset.as_deref());
        w.attr_num_opt("current", self.current_vcpus);
        w.end_with_text(&self.max_vcpus.to_string());
        self.tuning.write_after_vcpu(w);
        if let Some(p) = &self.resource_partition {
            w.start("resource");
            w.leaf("partition", p);
            w.end();
        }
        self.os.write(w);
        if let Some(m) = &self.idmap {
            m.write(w);
        }
        self.features.write(w);
        if let Some(c) = &self.cpu {
            c.write(w);
        }
        if let Some(c) = &self.clock {
            c.write(w);
        }
        for (name, action) in [
            ("on_poweroff", self.on_poweroff),
            ("on_reboot", self.on_reboot),
            ("on_crash", self.on_crash),
        ] {
            if let Some(a) = action {
                w.leaf(name, a.as_str());
            }
        }
        if let Some(pm) = &self.pm {
            w.start("pm");
            for (name, v) in [
                ("suspend-to-mem", pm.suspend_to_mem),
                ("suspend-to-disk", pm.suspend_to_disk),
            ] {
                if let Some(on) = v {
                    w.leaf_attr(name, "enabled", values::yes_no_str(on));
                }
            }
            w.end();
        }
        self.perf.write(w);
        self.devices.write(w, opts);
        for s in &self.seclabels {
            s.write(w);
        }
        if let Some(l) = &self.launch_security {
            l.write(w);
        }
        if let Some(q) = &self.qemu_commandline {
            q.write(w);
        }
        self.qemu_tweaks.write(w);
        w.end();
    }
}

/// `<memory unit='..'>N</memory>` normalised to KiB (default unit KiB).
pub(crate) fn read_memory(mut e: Elem) -> Result<u64> {
    let unit = e.attr_with("unit", values::memory_unit)?.unwrap_or(1024);
    let kib = e.text_with(|t| values::memory_kib(t, unit))?;
    e.finish()?;
    Ok(kib)
}

fn write_memory(w: &mut Writer, name: &'static str, kib: u64) {
    w.start(name);
    w.attr("unit", "KiB");
    w.end_with_text(&kib.to_string());
}

fn read_lifecycle(e: &mut Elem, name: &'static str) -> Result<Option<LifecycleAction>> {
    e.child_text_with(name, |t| {
        let a: LifecycleAction = t.parse()?;
        // Core dumps only make sense after a crash (libvirt's rule too).
        let coredump = matches!(
            a,
            LifecycleAction::CoredumpDestroy | LifecycleAction::CoredumpRestart
        );
        if coredump && name != "on_crash" {
            Err(format!("{} is only allowed in on_crash", a.as_str()))
        } else {
            Ok(a)
        }
    })
}

fn read_pm(mut e: Elem) -> Result<Pm> {
    let suspend_to_mem = e.child_attr_with("suspend-to-mem", "enabled", values::yes_no)?;
    let suspend_to_disk = e.child_attr_with("suspend-to-disk", "enabled", values::yes_no)?;
    e.finish()?;
    Ok(Pm {
        suspend_to_mem,
        suspend_to_disk,
    })
}
