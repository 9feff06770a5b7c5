//! The CPU model names libvirt's CPU drivers know for an architecture
//! (`virConnectGetCPUModelNames`), read from libvirt's CPU map (`/usr/share/libvirt/cpu_map`,
//! shipped by Debian's `libvirt0`, which virsh and every libvirt client depend on): the models
//! of the map's `<arch>` section, in the order its `index.xml` includes them.

use std::{fs, path::Path};

/// Where Debian's libvirt0 installs the CPU map.
pub const CPU_MAP: &str = "/usr/share/libvirt/cpu_map";

/// Every architecture name libvirt 9.0 knows (`virArchFromString`), `none` excepted.
pub(crate) const ARCHES: &[&str] = &[
    "alpha",
    "armv6l",
    "armv7l",
    "armv7b",
    "aarch64",
    "cris",
    "i686",
    "ia64",
    "lm32",
    "m68k",
    "microblaze",
    "microblazeel",
    "mips",
    "mipsel",
    "mips64",
    "mips64el",
    "openrisc",
    "parisc",
    "parisc64",
    "ppc",
    "ppcle",
    "ppc64",
    "ppc64le",
    "ppcemb",
    "riscv32",
    "riscv64",
    "s390",
    "s390x",
    "sh4",
    "sh4eb",
    "sparc",
    "sparc64",
    "unicore32",
    "x86_64",
    "xtensa",
    "xtensaeb",
];

/// Why no model list was given, by libvirt's error kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `VIR_ERR_INVALID_ARG`: no such architecture.
    #[error("cannot find architecture {0}")]
    UnknownArch(String),
    /// `VIR_ERR_NO_SUPPORT`: an architecture without a CPU driver.
    #[error("'{0}' architecture is not supported by CPU driver")]
    NoDriver(String),
    /// `VIR_ERR_INTERNAL_ERROR`: the map cannot be read.
    #[error("{0}")]
    Map(String),
}

/// The CPU model names of architecture `arch` from the map under `map_dir`.
pub fn models(map_dir: &Path, arch: &str) -> Result<Vec<String>, Refusal> {
    if !ARCHES.contains(&arch) {
        return Err(Refusal::UnknownArch(arch.into()));
    }
    let section = match arch {
        "i686" | "x86_64" => "x86",
        "ppc64" | "ppc64le" => "ppc64",
        // libvirt's ARM and s390 drivers list no models: every model is accepted
        "armv6l" | "armv7b" | "armv7l" | "aarch64" | "s390" | "s390x" => return Ok(Vec::new()),
        _ => return Err(Refusal::NoDriver(arch.into())),
    };
    let read = |name: &str| {
        let path = map_dir.join(name);
        fs::read_to_string(&path)
            .map_err(|e| Refusal::Map(format!("cannot read the CPU map '{}': {e}", path.display())))
    };
    let index = read("index.xml")?;
    let doc = roxmltree::Document::parse(&index)
        .map_err(|e| Refusal::Map(format!("cannot parse the CPU map 'index.xml': {e}")))?;
    let mut out = Vec::new();
    let Some(sec) = doc
        .descendants()
        .find(|n| n.has_tag_name("arch") && n.attribute("name") == Some(section))
    else {
        return Ok(out);
    };
    for inc in sec.descendants().filter(|n| n.has_tag_name("include")) {
        let Some(file) = inc.attribute("filename") else {
            continue;
        };
        let text = read(file)?;
        let d = roxmltree::Document::parse(&text)
            .map_err(|e| Refusal::Map(format!("cannot parse the CPU map '{file}': {e}")))?;
        out.extend(
            d.root_element()
                .children()
                .filter(|n| n.has_tag_name("model"))
                .filter_map(|n| n.attribute("name").map(str::to_owned)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_follow_the_index_and_archs_are_libvirts() {
        let t = tempfile::tempdir().expect("tempdir");
        fs::write(
            t.path().join("index.xml"),
            "<cpus><arch name='x86'><include filename='v.xml'/><include filename='b.xml'/>\
             <include filename='a.xml'/></arch></cpus>",
        )
        .expect("index");
        fs::write(t.path().join("v.xml"), "<cpus><vendor name='I'/></cpus>").expect("v");
        fs::write(t.path().join("b.xml"), "<cpus><model name='B'/></cpus>").expect("b");
        fs::write(t.path().join("a.xml"), "<cpus><model name='A'/></cpus>").expect("a");
        assert_eq!(models(t.path(), "x86_64"), Ok(vec!["B".into(), "A".into()]));
        assert_eq!(models(t.path(), "aarch64"), Ok(vec![]));
        assert_eq!(
            models(t.path(), "none"),
            Err(Refusal::UnknownArch("none".into()))
        );
        assert_eq!(
            models(t.path(), "riscv64"),
            Err(Refusal::NoDriver("riscv64".into()))
        );
    }
}
