//! `<blkiotune>`: block I/O weights and per-device throttles of a domain's cgroup, as
//! libvirt reads and writes them (0 is "unset"; a device with nothing set is not written).

use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// `<device>`: one host block device's weight and limits (0: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioDevice {
    pub path: String,
    pub weight: u32,
    pub read_iops: u32,
    pub write_iops: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

impl BlkioDevice {
    pub fn is_set(&self) -> bool {
        self.weight != 0
            || self.read_iops != 0
            || self.write_iops != 0
            || self.read_bytes != 0
            || self.write_bytes != 0
    }

    fn read(mut e: Elem) -> Result<BlkioDevice> {
        let path = e
            .child_text_with("path", |t| values::abs_path(t.trim()))?
            .ok_or_else(|| e.missing_child("path"))?;
        let u32v = |t: &str| values::u32_any(t);
        let u64v = |t: &str| values::uint_in(t, 0, u64::MAX);
        let d = BlkioDevice {
            path,
            weight: e.child_text_with("weight", u32v)?.unwrap_or(0),
            read_iops: e.child_text_with("read_iops_sec", u32v)?.unwrap_or(0),
            write_iops: e.child_text_with("write_iops_sec", u32v)?.unwrap_or(0),
            read_bytes: e.child_text_with("read_bytes_sec", u64v)?.unwrap_or(0),
            write_bytes: e.child_text_with("write_bytes_sec", u64v)?.unwrap_or(0),
        };
        e.finish()?;
        Ok(d)
    }
}

/// The whole element; unset is `Blkiotune::default()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blkiotune {
    /// `<weight>` (0: unset).
    pub weight: u32,
    pub devices: Vec<BlkioDevice>,
}

impl Blkiotune {
    pub(crate) fn read(mut e: Elem) -> Result<Blkiotune> {
        let weight = e.child_text_with("weight", values::u32_any)?.unwrap_or(0);
        let mut devices: Vec<BlkioDevice> = Vec::new();
        let path = e.path();
        e.each("device", |d| {
            let d = BlkioDevice::read(d)?;
            if devices.iter().any(|o| o.path == d.path) {
                return Err(XmlError::invalid(
                    format!("{path}/device/path"),
                    &d.path,
                    "names a device another <device> names",
                ));
            }
            devices.push(d);
            Ok(())
        })?;
        e.finish()?;
        Ok(Blkiotune { weight, devices })
    }

    pub fn is_set(&self) -> bool {
        self.weight != 0 || self.devices.iter().any(BlkioDevice::is_set)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        if !self.is_set() {
            return;
        }
        w.start("blkiotune");
        if self.weight != 0 {
            w.leaf("weight", &self.weight.to_string());
        }
        for d in self.devices.iter().filter(|d| d.is_set()) {
            w.start("device");
            w.leaf("path", &d.path);
            for (name, v) in [
                ("weight", u64::from(d.weight)),
                ("read_iops_sec", u64::from(d.read_iops)),
                ("write_iops_sec", u64::from(d.write_iops)),
                ("read_bytes_sec", d.read_bytes),
                ("write_bytes_sec", d.write_bytes),
            ] {
                if v != 0 {
                    w.leaf(name, &v.to_string());
                }
            }
            w.end_block();
        }
        w.end_block();
    }
}

#[cfg(test)]
mod tests {
    use crate::model::DomainDef;

    fn dom(tune: &str) -> String {
        format!(
            "<domain type='lxc'><name>b</name><memory>65536</memory><os><type>exe</type>\
             <init>/bin/sh</init></os>{tune}</domain>"
        )
    }

    #[test]
    fn it_round_trips_in_libvirts_order() {
        let d = DomainDef::from_xml(&dom(
            "<blkiotune><weight>500</weight><device><write_bytes_sec>9</write_bytes_sec>\
             <path>/dev/loop0</path><read_iops_sec>7</read_iops_sec></device>\
             <device><path>/dev/loop1</path><weight>0</weight></device></blkiotune>",
        ))
        .expect("parses");
        let x = d.to_xml(&crate::model::FormatOptions::default());
        let want = "<blkiotune>\n    <weight>500</weight>\n    <device>\n      \
                    <path>/dev/loop0</path>\n      <read_iops_sec>7</read_iops_sec>\n      \
                    <write_bytes_sec>9</write_bytes_sec>\n    </device>\n  </blkiotune>";
        assert!(x.contains(want), "{x}");
        assert!(!x.contains("loop1"), "an empty device is not written: {x}");
    }

    #[test]
    fn bad_values_are_refused_by_path() {
        for (tune, path) in [
            (
                "<blkiotune><weight>x</weight></blkiotune>",
                "/domain/blkiotune/weight",
            ),
            (
                "<blkiotune><device><weight>1</weight></device></blkiotune>",
                "path",
            ),
            (
                "<blkiotune><device><path>/dev/a</path></device>\
                 <device><path>/dev/a</path></device></blkiotune>",
                "/domain/blkiotune/device/path",
            ),
            ("<blkiotune><bogus/></blkiotune>", "/domain/blkiotune/bogus"),
        ] {
            let e = DomainDef::from_xml(&dom(tune)).expect_err(tune).to_string();
            assert!(e.contains(path), "{tune}: {e}");
        }
    }
}
