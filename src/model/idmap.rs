//! `<idmap>`: the user namespace of a container, as ranges of container ids mapped onto
//! host ids (`<uid start target count/>`, `<gid .../>`).

use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// One range: container ids `start..start+count` are host ids `target..target+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub target: u32,
    pub count: u32,
}

impl IdRange {
    /// The host id of container id `id`, if this range maps it.
    pub fn host_id(&self, id: u32) -> Option<u32> {
        let off = id.checked_sub(self.start)?;
        (off < self.count).then(|| self.target + off)
    }

    /// The line of `/proc/PID/uid_map` (and `gid_map`) for this range.
    pub fn map_line(&self) -> String {
        format!("{} {} {}\n", self.start, self.target, self.count)
    }
}

/// `<idmap>`: both lists are sorted by `start`, as libvirt keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uid: Vec<IdRange>,
    pub gid: Vec<IdRange>,
}

impl IdMap {
    /// The host uid and gid the container's root runs as.
    pub fn root(&self) -> (u32, u32) {
        let first = |v: &[IdRange]| v.first().and_then(|r| r.host_id(0)).unwrap_or(0);
        (first(&self.uid), first(&self.gid))
    }

    pub(crate) fn read(mut e: Elem) -> Result<IdMap> {
        let path = e.path();
        let mut uid = Vec::new();
        let mut gid = Vec::new();
        e.each("uid", |r| read_range(r, &mut uid))?;
        e.each("gid", |r| read_range(r, &mut gid))?;
        e.finish()?;
        for (name, list) in [("uid", &mut uid), ("gid", &mut gid)] {
            list.sort_by_key(|r| r.start);
            check_overlaps(&path, name, list)?;
        }
        // libvirt's rules: both lists or none, and the container's root mapped
        match (uid.is_empty(), gid.is_empty()) {
            (false, true) => {
                return Err(XmlError::Missing {
                    path: format!("{path}/gid"),
                });
            }
            (true, false) => {
                return Err(XmlError::Missing {
                    path: format!("{path}/uid"),
                });
            }
            _ => {}
        }
        for (name, list) in [("uid", &uid), ("gid", &gid)] {
            if let Some(r) = list.first()
                && r.start != 0
            {
                return Err(XmlError::invalid(
                    format!("{path}/{name}/@start"),
                    &r.start.to_string(),
                    "the container's root (id 0) must be mapped",
                ));
            }
        }
        Ok(IdMap { uid, gid })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        if self.uid.is_empty() {
            return;
        }
        w.start("idmap");
        for (name, list) in [("uid", &self.uid), ("gid", &self.gid)] {
            for r in list {
                w.start(name);
                w.attr_num("start", r.start);
                w.attr_num("target", r.target);
                w.attr_num("count", r.count);
                w.end();
            }
        }
        w.end();
    }
}

fn read_range(mut r: Elem, out: &mut Vec<IdRange>) -> Result<()> {
    let range = IdRange {
        start: r.req_attr_with("start", values::u32_any)?,
        target: r.req_attr_with("target", values::u32_any)?,
        count: r.req_attr_with("count", values::u32_pos)?,
    };
    for (attr, base) in [("start", range.start), ("target", range.target)] {
        if u64::from(base) + u64::from(range.count) > u64::from(u32::MAX) {
            return Err(r.attr_invalid(
                "count",
                &range.count.to_string(),
                format!("{attr} + count exceeds the largest id"),
            ));
        }
    }
    r.finish()?;
    out.push(range);
    Ok(())
}

/// Ranges may overlap neither in the container nor on the host (the kernel refuses such a
/// map); `list` is sorted by `start`.
fn check_overlaps(path: &str, name: &str, list: &[IdRange]) -> Result<()> {
    for (i, a) in list.iter().enumerate() {
        for b in &list[i + 1..] {
            let inside = a.start + a.count > b.start;
            let host = a.target < b.target + b.count && b.target < a.target + a.count;
            if inside || host {
                let side = if inside { "container" } else { "host" };
                return Err(XmlError::invalid(
                    format!("{path}/{name}"),
                    &format!("start={} target={} count={}", b.start, b.target, b.count),
                    format!(
                        "overlaps the {side} ids of start={} target={} count={}",
                        a.start, a.target, a.count
                    ),
                ));
            }
        }
    }
    Ok(())
}
