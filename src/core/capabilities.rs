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

pub(crate) fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
