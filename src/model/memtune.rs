//! `<memtune>`: memory limits of a domain's cgroup (hard, soft and memory+swap limits;
//! `min_guarantee` is VMware's), as libvirt reads and writes them.

use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// libvirt's "unlimited" (`VIR_DOMAIN_MEMORY_PARAM_UNLIMITED`), in KiB.
pub const UNLIMITED_KIB: u64 = 9_007_199_254_740_991;

/// The limits in KiB; unset, 0 and libvirt's "unlimited" are all no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memtune {
    pub hard_limit_kib: Option<u64>,
    pub soft_limit_kib: Option<u64>,
    pub min_guarantee_kib: Option<u64>,
    pub swap_hard_limit_kib: Option<u64>,
}

fn limit(e: &mut Elem, name: &'static str) -> Result<Option<u64>> {
    let Some(mut c) = e.child(name)? else {
        return Ok(None);
    };
    let unit = c.attr_with("unit", values::memory_unit)?.unwrap_or(1024);
    let kib = c.text_with(|t| {
        if t.trim() == "0" {
            Ok(0)
        } else {
            values::memory_kib(t, unit)
        }
    })?;
    c.finish()?;
    Ok(Some(kib).filter(|k| *k != 0 && *k < UNLIMITED_KIB))
}

impl Memtune {
    pub(crate) fn read(mut e: Elem) -> Result<Memtune> {
        let m = Memtune {
            hard_limit_kib: limit(&mut e, "hard_limit")?,
            soft_limit_kib: limit(&mut e, "soft_limit")?,
            min_guarantee_kib: limit(&mut e, "min_guarantee")?,
            swap_hard_limit_kib: limit(&mut e, "swap_hard_limit")?,
        };
        if let (Some(h), Some(s)) = (m.hard_limit_kib, m.swap_hard_limit_kib)
            && s < h
        {
            return Err(XmlError::invalid(
                format!("{}/swap_hard_limit", e.path()),
                &s.to_string(),
                format!("swap_hard_limit must be at least hard_limit ({h} KiB)"),
            ));
        }
        e.finish()?;
        Ok(m)
    }

    pub fn is_set(&self) -> bool {
        self != &Memtune::default()
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        if !self.is_set() {
            return;
        }
        w.start("memtune");
        for (name, v) in [
            ("hard_limit", self.hard_limit_kib),
            ("soft_limit", self.soft_limit_kib),
            ("min_guarantee", self.min_guarantee_kib),
            ("swap_hard_limit", self.swap_hard_limit_kib),
        ] {
            if let Some(v) = v {
                w.start(name);
                w.attr("unit", "KiB");
                w.end_with_text(&v.to_string());
            }
        }
        w.end();
    }
}
