//! A disk's guest-visible shape and limits: `<geometry>`, `<blockio>` and `<iotune>`.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// BIOS CHS translation of `<geometry trans=...>`.
    pub enum GeometryTrans {
        None = "none",
        Auto = "auto",
        Lba = "lba",
    }
}

/// `<geometry cyls heads secs trans>`: the CHS geometry the guest BIOS sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub cyls: u32,
    pub heads: u32,
    pub secs: u32,
    pub trans: Option<GeometryTrans>,
}

impl Geometry {
    pub(crate) fn read(mut e: Elem) -> Result<Geometry> {
        let g = Geometry {
            cyls: e.req_attr_with("cyls", values::u32_pos)?,
            heads: e.req_attr_with("heads", values::u32_pos)?,
            secs: e.req_attr_with("secs", values::u32_pos)?,
            trans: e.attr_with("trans", values::keyword::<GeometryTrans>)?,
        };
        e.finish()?;
        Ok(g)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("geometry");
        w.attr_num("cyls", self.cyls);
        w.attr_num("heads", self.heads);
        w.attr_num("secs", self.secs);
        w.attr_opt("trans", self.trans.map(|t| t.as_str()));
        w.end();
    }
}

/// `<blockio>`: the block sizes the guest sees, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockIo {
    pub logical_block_size: Option<u32>,
    pub physical_block_size: Option<u32>,
}

impl BlockIo {
    /// `None` for an element without sizes (libvirt writes nothing then).
    pub(crate) fn read(mut e: Elem) -> Result<Option<BlockIo>> {
        let b = BlockIo {
            logical_block_size: e.attr_with("logical_block_size", block_size)?,
            physical_block_size: e.attr_with("physical_block_size", block_size)?,
        };
        e.finish()?;
        Ok((b != BlockIo::default()).then_some(b))
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("blockio");
        w.attr_num_opt("logical_block_size", self.logical_block_size);
        w.attr_num_opt("physical_block_size", self.physical_block_size);
        w.end();
    }
}

/// QEMU takes powers of two from 512 bytes to 2 MiB.
fn block_size(v: &str) -> std::result::Result<u32, String> {
    let n = values::u32_pos(v)?;
    if n.is_power_of_two() && (512..=2 * 1024 * 1024).contains(&n) {
        Ok(n)
    } else {
        Err("expected a power of two from 512 to 2097152".into())
    }
}

/// `<iotune>` limits in libvirt's output order, with QEMU's names for them. `group_name`
/// goes between `size_iops_sec` and the `_max_length` fields.
pub const IOTUNE_FIELDS: [(&str, &str); 19] = [
    ("total_bytes_sec", "bps"),
    ("read_bytes_sec", "bps_rd"),
    ("write_bytes_sec", "bps_wr"),
    ("total_iops_sec", "iops"),
    ("read_iops_sec", "iops_rd"),
    ("write_iops_sec", "iops_wr"),
    ("total_bytes_sec_max", "bps_max"),
    ("read_bytes_sec_max", "bps_rd_max"),
    ("write_bytes_sec_max", "bps_wr_max"),
    ("total_iops_sec_max", "iops_max"),
    ("read_iops_sec_max", "iops_rd_max"),
    ("write_iops_sec_max", "iops_wr_max"),
    ("size_iops_sec", "iops_size"),
    ("total_bytes_sec_max_length", "bps_max_length"),
    ("read_bytes_sec_max_length", "bps_rd_max_length"),
    ("write_bytes_sec_max_length", "bps_wr_max_length"),
    ("total_iops_sec_max_length", "iops_max_length"),
    ("read_iops_sec_max_length", "iops_rd_max_length"),
    ("write_iops_sec_max_length", "iops_wr_max_length"),
];

/// Index of the first `_max_length` field: `group_name` is written before it.
const GROUP_BEFORE: usize = 13;

/// `<iotune>`: I/O throttling. A zero limit is no limit, as in libvirt (which drops it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Iotune {
    /// Values of [`IOTUNE_FIELDS`], same order.
    pub limits: [u64; 19],
    /// Disks with the same group share one set of limits.
    pub group_name: Option<String>,
}

impl Iotune {
    pub fn get(&self, field: &str) -> u64 {
        IOTUNE_FIELDS
            .iter()
            .position(|(n, _)| *n == field)
            .map_or(0, |i| self.limits[i])
    }

    /// Whether any limit is set.
    pub fn has_limits(&self) -> bool {
        self.limits.iter().any(|v| *v != 0)
    }

    /// `None` when nothing in it survives (only zero limits).
    pub(crate) fn read(mut e: Elem) -> Result<Option<Iotune>> {
        let mut t = Iotune::default();
        for (i, (name, _)) in IOTUNE_FIELDS.iter().enumerate() {
            if let Some(v) = e.child_text_with(name, |v| values::uint_in(v, 0, u64::MAX))? {
                t.limits[i] = v;
            }
        }
        t.group_name = e.child_text_with("group_name", values::non_empty)?;
        let path = e.path();
        e.finish()?;
        for kind in ["bytes_sec", "iops_sec", "bytes_sec_max", "iops_sec_max"] {
            let total = t.get(&format!("total_{kind}"));
            if total != 0
                && (t.get(&format!("read_{kind}")) != 0 || t.get(&format!("write_{kind}")) != 0)
            {
                return Err(XmlError::invalid(
                    format!("{path}/total_{kind}"),
                    &total.to_string(),
                    format!("total and read/write {kind} cannot be set at the same time"),
                ));
            }
        }
        Ok((t.has_limits() || t.group_name.is_some()).then_some(t))
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("iotune");
        for (i, (name, _)) in IOTUNE_FIELDS.iter().enumerate() {
            if i == GROUP_BEFORE {
                w.leaf_opt("group_name", self.group_name.as_deref());
            }
            if self.limits[i] != 0 {
                w.leaf(name, &self.limits[i].to_string());
            }
        }
        w.end();
    }
}
