//! Scaled sizes as storage XML writes them: `<capacity unit='G'>10</capacity>`.
//!
//! The units are libvirt's (`virScaleInteger`): `KB`-style names are powers of 1000, the
//! others powers of 1024, case ignored; no unit means bytes. Output is always in bytes.

use crate::model::{XmlError, xml::Elem};

/// Reads a sized element (its `unit` and its number) into bytes.
pub(crate) fn read_scaled(mut e: Elem) -> Result<u64, XmlError> {
    let mult = e
        .attr_with("unit", crate::model::values::scale_unit)?
        .unwrap_or(1);
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
        crate::model::values::scale_unit(unit)?
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
