//! Scaled sizes as storage XML writes them: `<capacity unit='G'>10</capacity>`.
//!
//! The units are libvirt's (`virScaleInteger`): `KB`-style names are powers of 1000, the
//! others powers of 1024, case ignored; no unit means bytes. Output is always in bytes.

use crate::model::{XmlError, xml::Elem};

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("bytes", 1),
    ("KB", 1_000),
    ("k", 1 << 10),
    ("KiB", 1 << 10),
    ("MB", 1_000_000),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
    ("TB", 1_000_000_000_000),
    ("T", 1 << 40),
    ("TiB", 1 << 40),
    ("PB", 1_000_000_000_000_000),
    ("P", 1 << 50),
    ("PiB", 1 << 50),
    ("EB", 1_000_000_000_000_000_000),
    ("E", 1 << 60),
    ("EiB", 1 << 60),
];

fn unit_bytes(unit: &str) -> Result<u64, String> {
    UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, m)| m)
        .ok_or_else(|| {
            crate::model::values::one_of(&UNITS.iter().map(|(n, _)| *n).collect::<Vec<_>>())
        })
}

/// Reads a sized element (its `unit` and its number) into bytes.
pub(crate) fn read_scaled(mut e: Elem) -> Result<u64, XmlError> {
    let mult = e.attr_with("unit", unit_bytes)?.unwrap_or(1);
    let n = e.text_with(|t| {
        t.parse::<u64>()
            .map_err(|_| "expected a non-negative integer".to_string())
            .and_then(|n| {
                n.checked_mul(mult)
                    .ok_or_else(|| "size overflows 64 bits of bytes".to_string())
            })
    })?;
    e.finish()?;
    Ok(n)
}

/// Parses `10G`-style input of the native API: a number with an optional unit suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 1048576, 512M or 10G"))?;
    let mult = if unit.is_empty() {
        1
    } else {
        unit_bytes(unit)?
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' overflows 64 bits of bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("17E").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("1Q").is_err());
    }
}
