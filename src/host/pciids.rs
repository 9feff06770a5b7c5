//! Vendor and product names from the PCI and USB ID repositories (Debian's `pci.ids` and
//! `usb.ids` packages), as libvirt gets them from libpciaccess and udev's hwdb. Each file is
//! read once, on first use; without it names are left out, as libvirt leaves them.

use std::{collections::HashMap, sync::OnceLock};

/// Vendor id -> (vendor name, product id -> product name).
type Table = HashMap<u16, (String, HashMap<u16, String>)>;

const PCI: &[&str] = &["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];
const USB: &[&str] = &["/usr/share/misc/usb.ids", "/usr/share/hwdata/usb.ids"];

fn load(paths: &[&str]) -> Table {
    paths
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .map(|b| parse(&String::from_utf8_lossy(&b)))
        .unwrap_or_default()
}

/// The vendor section of an ID file: `vvvv  Name`, then `\tpppp  Name` per product; the
/// sections after the vendors (classes, languages…) start with a letter and a space.
fn parse(text: &str) -> Table {
    let mut t = Table::new();
    let mut vendor: Option<u16> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            if rest.starts_with('\t') {
                continue; // subsystems and interfaces
            }
            if let (Some(v), Some((id, name))) = (vendor, split(rest))
                && let Some(e) = t.get_mut(&v)
            {
                e.1.insert(id, name.to_owned());
            }
            continue;
        }
        match split(line) {
            Some((id, name)) => {
                vendor = Some(id);
                t.insert(id, (name.to_owned(), HashMap::new()));
            }
            None => {
                if line.as_bytes().get(1) == Some(&b' ') {
                    break; // "C 00 …": the class section follows the vendors
                }
                vendor = None;
            }
        }
    }
    t
}

fn split(line: &str) -> Option<(u16, &str)> {
    let (id, name) = line.split_once("  ")?;
    if id.len() != 4 {
        return None;
    }
    Some((u16::from_str_radix(id, 16).ok()?, name.trim()))
}

fn names(t: &Table, vendor: u16, product: u16) -> (Option<String>, Option<String>) {
    match t.get(&vendor) {
        Some((v, products)) => (Some(v.clone()), products.get(&product).cloned()),
        None => (None, None),
    }
}

/// The PCI vendor and product names.
pub fn pci(vendor: u16, product: u16) -> (Option<String>, Option<String>) {
    static T: OnceLock<Table> = OnceLock::new();
    names(T.get_or_init(|| load(PCI)), vendor, product)
}

/// The USB vendor and product names.
pub fn usb(vendor: u16, product: u16) -> (Option<String>, Option<String>) {
    static T: OnceLock<Table> = OnceLock::new();
    names(T.get_or_init(|| load(USB)), vendor, product)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_section_only() {
        let t = parse(
            "# comment\n1af4  Red Hat, Inc.\n\t1041  Virtio 1.0 network device\n\t\t1af4 1100  QEMU\n\
             8086  Intel Corporation\n\t0d57  Some bridge\nC 00  Unclassified device\n\t00  Non-VGA\n",
        );
        assert_eq!(
            names(&t, 0x1af4, 0x1041),
            (
                Some("Red Hat, Inc.".into()),
                Some("Virtio 1.0 network device".into())
            )
        );
        assert_eq!(
            names(&t, 0x8086, 0x1234),
            (Some("Intel Corporation".into()), None)
        );
        assert_eq!(names(&t, 0x1234, 0x1), (None, None));
    }

    #[test]
    fn debian_pci_ids_name_virtio() {
        assert_eq!(
            pci(0x1af4, 0x1042).1.as_deref(),
            Some("Virtio 1.0 block device")
        );
    }
}
