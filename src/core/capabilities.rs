//! The capabilities document: the host and what each enabled driver supports.

use std::fmt::Write as _;

use super::Core;

impl Core {
    pub fn capabilities_xml(&self) -> String {
        let mut s = String::from("<capabilities>\n  <host>\n");
        let _ = writeln!(s, "    <hostname>{}</hostname>", xml_text(&hostname()));
        let _ = writeln!(s, "    <arch>{}</arch>", std::env::consts::ARCH);
        let _ = writeln!(s, "    <cpus>{}</cpus>", available_cpus());
        s.push_str("  </host>\n");
        let mut seen = Vec::new();
        for (_, driver) in &self.inner.drivers {
            if seen.contains(&driver.name()) {
                continue;
            }
            seen.push(driver.name());
            let caps = driver.capabilities();
            let _ = writeln!(s, "  <driver name='{}'>", caps.name);
            for t in &caps.domain_types {
                let _ = writeln!(s, "    <domain type='{}'/>", t.as_str());
            }
            let yes = |b: bool| if b { "yes" } else { "no" };
            let _ = writeln!(
                s,
                "    <snapshots internal='{}' external='{}' quiesce='{}'/>",
                yes(caps.snapshot_internal),
                yes(caps.snapshot_external),
                yes(caps.quiesce)
            );
            s.push_str(&caps.details_xml);
            s.push_str("  </driver>\n");
        }
        s.push_str("</capabilities>\n");
        s
    }
}

/// The host's name, from the kernel.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub(crate) use crate::util::xml::text as xml_text;

/// libvirt's `<capabilities>` and `<domainCapabilities>` documents, which libvirt's clients
/// (virsh, virt-manager, Cockpit) parse: the host from [`super::host`], guests from what
/// each driver offers.
pub mod libvirt {
    use std::fmt::Write as _;

    use super::{super::Core, xml_text};
    use crate::{
        core::{Error, Result, host},
        drivers::{CapsSection, DomainCapsInfo},
        model::DomainType,
    };

    /// The architectures a guest on this host can have.
    fn guest_arches() -> Vec<&'static str> {
        match std::env::consts::ARCH {
            "x86_64" => vec!["i686", "x86_64"],
            a => vec![a],
        }
    }

    fn wordsize(arch: &str) -> u32 {
        if arch.ends_with("64") || arch == "s390x" {
            64
        } else {
            32
        }
    }

    impl Core {
        /// What drivers of `types` offer on `arch`, with the type that offers it.
        fn offers(
            &self,
            types: &[DomainType],
            arch: &str,
            machine: Option<&str>,
        ) -> Vec<(DomainType, DomainCapsInfo)> {
            types
                .iter()
                .filter_map(|t| {
                    let d = self.driver_for(*t)?;
                    d.domain_caps(*t, arch, machine).map(|c| (*t, c))
                })
                .collect()
        }

        /// The hypervisor version of the first driver of `types` that knows it.
        pub fn hypervisor_version(&self, types: &[DomainType]) -> u64 {
            types
                .iter()
                .filter_map(|t| self.driver_for(*t))
                .map(|d| d.hypervisor_version())
                .find(|v| *v > 0)
                .unwrap_or(0)
        }

        /// CPU models the drivers of `types` can give guests of `arch`.
        pub fn cpu_models(&self, types: &[DomainType], arch: &str) -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for (_, c) in self.offers(types, arch, None) {
                for m in c.cpu_models {
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
            }
            out
        }

        /// libvirt's `<capabilities>` for the domains of `types`.
        pub fn libvirt_capabilities(&self, types: &[DomainType]) -> Result<String> {
            let h = host::info().map_err(|e| Error::Failed(format!("cannot read host: {e}")))?;
            let mut s = String::from("<capabilities>\n\n  <host>\n");
            let _ = writeln!(s, "    <uuid>{}</uuid>", h.uuid);
            s.push_str("    <cpu>\n");
            let _ = writeln!(s, "      <arch>{}</arch>", h.arch);
            if !h.cpu_vendor.is_empty() {
                let _ = writeln!(s, "      <vendor>{}</vendor>", xml_text(&h.cpu_vendor));
            }
            let _ = writeln!(
                s,
                "      <topology sockets='{}' dies='1' cores='{}' threads='{}'/>",
                h.sockets, h.cores, h.threads
            );
            for f in &h.cpu_flags {
                let _ = writeln!(s, "      <feature name='{}'/>", crate::util::xml::attr(f));
            }
            s.push_str("      <pages unit='KiB' size='4'/>\n");
            for size in huge_page_sizes() {
                let _ = writeln!(s, "      <pages unit='KiB' size='{size}'/>");
            }
            s.push_str("    </cpu>\n    <power_management/>\n    <iommu support='no'/>\n");
            s.push_str(&topology_xml(&h));
            s.push_str("    <secmodel>\n      <model>none</model>\n      <doi>0</doi>\n");
            s.push_str("    </secmodel>\n  </host>\n\n");
            for arch in guest_arches() {
                let offers = self.offers(types, arch, None);
                let Some((_, first)) = offers.first() else {
                    continue;
                };
                // containers run programs, not machines (libvirt's LXC driver says `exe`)
                let exe = offers.iter().all(|(t, _)| *t == DomainType::Lxc);
                let os_type = if exe { "exe" } else { "hvm" };
                let _ = write!(s, "  <guest>\n    <os_type>{os_type}</os_type>\n");
                let _ = writeln!(s, "    <arch name='{arch}'>");
                let _ = writeln!(s, "      <wordsize>{}</wordsize>", wordsize(arch));
                if let Some(e) = &first.emulator {
                    let _ = writeln!(s, "      <emulator>{}</emulator>", xml_text(e));
                }
                for m in &first.machines {
                    let _ = writeln!(
                        s,
                        "      <machine maxCpus='{}'>{}</machine>",
                        first.max_vcpus,
                        xml_text(m)
                    );
                }
                for (t, _) in &offers {
                    let _ = writeln!(s, "      <domain type='{}'/>", t.as_str());
                }
                if exe {
                    s.push_str("    </arch>\n  </guest>\n\n");
                    continue;
                }
                s.push_str("    </arch>\n    <features>\n");
                s.push_str("      <acpi default='on' toggle='yes'/>\n");
                s.push_str("      <apic default='on' toggle='no'/>\n");
                s.push_str("    </features>\n  </guest>\n\n");
            }
            s.push_str("</capabilities>\n");
            Ok(s)
        }

        /// libvirt's `<domainCapabilities>`: what a guest of `virttype` (the first of
        /// `types` a driver offers when `None`) on `arch` (the host's when `None`) can use.
        pub fn libvirt_domain_capabilities(
            &self,
            types: &[DomainType],
            virttype: Option<DomainType>,
            arch: Option<&str>,
            machine: Option<&str>,
        ) -> Result<String> {
            let arch = arch.unwrap_or(std::env::consts::ARCH);
            let candidates: Vec<DomainType> = match virttype {
                Some(t) if types.contains(&t) => vec![t],
                Some(t) => {
                    return Err(Error::NotSupported(format!(
                        "domains of type '{}' are not served here",
                        t.as_str()
                    )));
                }
                None => types.to_vec(),
            };
            let (t, c) = self
                .offers(&candidates, arch, machine)
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Error::NotSupported(format!(
                        "no enabled driver runs domains of type {} on architecture '{arch}'",
                        candidates
                            .iter()
                            .map(|t| format!("'{}'", t.as_str()))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ))
                })?;
            let machine = match machine {
                Some(m) if !c.machines.iter().any(|x| x == m) => {
                    return Err(Error::InvalidArgument(format!(
                        "the machine type '{m}' is not offered for {arch} guests"
                    )));
                }
                // the full name when the driver knows it (`q35` is `pc-q35-7.2`)
                Some(m) => c.machine.clone().or_else(|| Some(m.to_owned())),
                None => c.machine.clone().or_else(|| c.machines.first().cloned()),
            };
            let h = host::info().map_err(|e| Error::Failed(format!("cannot read host: {e}")))?;
            let mut s = String::from("<domainCapabilities>\n");
            if let Some(e) = &c.emulator {
                let _ = writeln!(s, "  <path>{}</path>", xml_text(e));
            }
            let _ = writeln!(s, "  <domain>{}</domain>", t.as_str());
            if let Some(m) = &machine {
                let _ = writeln!(s, "  <machine>{}</machine>", xml_text(m));
            }
            let _ = writeln!(s, "  <arch>{arch}</arch>");
            let _ = writeln!(s, "  <vcpu max='{}'/>", c.max_vcpus);
            s.push_str("  <iothreads supported='yes'/>\n");
            s.push_str("  <os supported='yes'>\n");
            enum_xml(&mut s, 4, "firmware", &c.firmware);
            let efi = !c.loaders.is_empty();
            let _ = writeln!(
                s,
                "    <loader supported='{}'>",
                if efi { "yes" } else { "no" }
            );
            if efi {
                for l in &c.loaders {
                    let _ = writeln!(s, "      <value>{}</value>", xml_text(l));
                }
                enum_xml(&mut s, 6, "type", &["rom".into(), "pflash".into()]);
                enum_xml(&mut s, 6, "readonly", &["yes".into(), "no".into()]);
                let secure: Vec<String> = if c.secure_boot {
                    vec!["yes".into(), "no".into()]
                } else {
                    vec!["no".into()]
                };
                enum_xml(&mut s, 6, "secure", &secure);
            }
            s.push_str("    </loader>\n  </os>\n  <cpu>\n");
            let yes = |b: bool| if b { "yes" } else { "no" };
            let _ = writeln!(
                s,
                "    <mode name='host-passthrough' supported='{}'/>",
                yes(c.host_passthrough)
            );
            if c.maximum_cpu {
                s.push_str("    <mode name='maximum' supported='yes'>\n");
                enum_xml(&mut s, 6, "maximumMigratable", &["on".into(), "off".into()]);
                s.push_str("    </mode>\n");
            } else {
                s.push_str("    <mode name='maximum' supported='no'/>\n");
            }
            if c.host_passthrough && !h.cpu_vendor.is_empty() {
                s.push_str("    <mode name='host-model' supported='yes'>\n");
                let _ = writeln!(s, "      <vendor>{}</vendor>", xml_text(&h.cpu_vendor));
                s.push_str("    </mode>\n");
            } else {
                s.push_str("    <mode name='host-model' supported='no'/>\n");
            }
            let _ = writeln!(
                s,
                "    <mode name='custom' supported='{}'>",
                yes(!c.cpu_models.is_empty())
            );
            for m in &c.cpu_models {
                let _ = writeln!(s, "      <model usable='unknown'>{}</model>", xml_text(m));
            }
            s.push_str("    </mode>\n  </cpu>\n");
            if !c.memory_sources.is_empty() {
                s.push_str("  <memoryBacking supported='yes'>\n");
                enum_xml(&mut s, 4, "sourceType", &c.memory_sources);
                s.push_str("  </memoryBacking>\n");
            }
            s.push_str("  <devices>\n    <disk supported='yes'>\n");
            let disk_devices = if c.disk_devices.is_empty() {
                vec!["disk".into(), "cdrom".into(), "floppy".into()]
            } else {
                c.disk_devices.clone()
            };
            enum_xml(&mut s, 6, "diskDevice", &disk_devices);
            enum_xml(&mut s, 6, "bus", &c.disk_buses);
            s.push_str("    </disk>\n");
            let _ = writeln!(
                s,
                "    <graphics supported='{}'>",
                yes(!c.graphics.is_empty())
            );
            enum_xml(&mut s, 6, "type", &c.graphics);
            s.push_str("    </graphics>\n");
            let _ = writeln!(
                s,
                "    <video supported='{}'>",
                yes(!c.video_models.is_empty())
            );
            enum_xml(&mut s, 6, "modelType", &c.video_models);
            s.push_str("    </video>\n");
            for d in &c.devices {
                section_xml(&mut s, d);
            }
            s.push_str("  </devices>\n  <features>\n");
            if c.features.is_empty() {
                s.push_str("    <gic supported='no'/>\n    <sev supported='no'/>\n");
            }
            for f in &c.features {
                section_xml(&mut s, f);
            }
            s.push_str("  </features>\n</domainCapabilities>\n");
            Ok(s)
        }
    }

    /// One `<devices>` or `<features>` element at depth 2.
    fn section_xml(s: &mut String, c: &CapsSection) {
        let yes = if c.supported { "yes" } else { "no" };
        if c.enums.is_empty() || !c.supported {
            let _ = writeln!(s, "    <{} supported='{yes}'/>", c.name);
            return;
        }
        let _ = writeln!(s, "    <{} supported='{yes}'>", c.name);
        for (name, values) in &c.enums {
            enum_xml(s, 6, name, values);
        }
        let _ = writeln!(s, "    </{}>", c.name);
    }

    fn enum_xml(s: &mut String, indent: usize, name: &str, values: &[String]) {
        let pad = " ".repeat(indent);
        let _ = writeln!(s, "{pad}<enum name='{name}'>");
        for v in values {
            let _ = writeln!(s, "{pad}  <value>{}</value>", xml_text(v));
        }
        let _ = writeln!(s, "{pad}</enum>");
    }

    /// Sizes (KiB) of the huge pages the kernel offers.
    fn huge_page_sizes() -> Vec<u64> {
        let mut v: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
            .map(|rd| {
                rd.filter_map(|e| {
                    let n = e.ok()?.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()
                })
                .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// `<topology>`: each NUMA node's memory and CPUs.
    fn topology_xml(h: &host::HostInfo) -> String {
        let read = |p: String| std::fs::read_to_string(p).map(|s| s.trim().to_owned());
        // the numbers a sysfs list such as `0-3,8` names; none when it cannot be read
        let listed = |p: String| -> Vec<usize> {
            read(p)
                .map(|l| {
                    host::parse_cpuset(&l, usize::MAX)
                        .iter()
                        .enumerate()
                        .filter(|(_, on)| **on)
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default()
        };
        let nodes = listed("/sys/devices/system/node/online".into());
        let mut s = String::from("    <topology>\n");
        let _ = writeln!(s, "      <cells num='{}'>", nodes.len().max(1));
        if nodes.is_empty() {
            let _ = writeln!(
                s,
                "        <cell id='0'>\n          <memory unit='KiB'>{}</memory>\n        </cell>",
                h.memory_kib
            );
        }
        for n in nodes {
            let mem = host::memory_stats(Some(n as u32))
                .ok()
                .and_then(|m| m.first().map(|(_, v)| *v))
                .unwrap_or(0);
            let cpus = listed(format!("/sys/devices/system/node/node{n}/cpulist"));
            let _ = writeln!(s, "        <cell id='{n}'>");
            let _ = writeln!(s, "          <memory unit='KiB'>{mem}</memory>");
            let _ = writeln!(s, "          <cpus num='{}'>", cpus.len());
            for c in cpus {
                let topo = format!("/sys/devices/system/cpu/cpu{c}/topology");
                let socket = read(format!("{topo}/physical_package_id")).unwrap_or_default();
                let core = read(format!("{topo}/core_id")).unwrap_or_default();
                let siblings = read(format!("{topo}/thread_siblings_list")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "            <cpu id='{c}' socket_id='{socket}' die_id='0' core_id='{core}' \
                     siblings='{siblings}'/>"
                );
            }
            s.push_str("          </cpus>\n        </cell>\n");
        }
        s.push_str("      </cells>\n    </topology>\n");
        s
    }

    #[cfg(test)]
    mod tests {
        use std::sync::Arc;

        use super::*;
        use crate::{core::store::Store, drivers::test::TestDriver};

        #[test]
        fn documents_parse_and_name_the_test_driver() {
            let core = Core::new(
                vec![(DomainType::Test, Arc::new(TestDriver::new()))],
                Store::memory(),
            );
            let caps = core
                .libvirt_capabilities(&[DomainType::Test])
                .expect("caps");
            let doc = roxmltree::Document::parse(&caps).expect("well-formed");
            assert!(
                doc.descendants()
                    .any(|n| n.has_tag_name("domain") && n.attribute("type") == Some("test"))
            );
            let dc = core
                .libvirt_domain_capabilities(&[DomainType::Test], None, None, None)
                .expect("domcaps");
            let doc = roxmltree::Document::parse(&dc).expect("well-formed");
            let max = doc
                .descendants()
                .find(|n| n.has_tag_name("vcpu"))
                .and_then(|n| n.attribute("max"));
            assert_eq!(max, Some("255"));
            assert!(
                core.libvirt_domain_capabilities(&[DomainType::Kvm], None, None, None)
                    .is_err()
            );
            assert!(
                core.libvirt_domain_capabilities(&[DomainType::Test], None, None, Some("q35"))
                    .is_err()
            );
            assert!(core.cpu_models(&[DomainType::Test], "x86_64").len() > 10);
            assert_eq!(core.hypervisor_version(&[DomainType::Test]), 2);
        }
    }
}
