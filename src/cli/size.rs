//! Sizes as people type them (`512M`, `10G`, `1.5GiB`, `100KB`), with libvirt's units: the
//! `KB`-style names are powers of 1000, the others powers of 1024, case ignored; no unit means
//! bytes. Checked here so that a bad size is a usage error naming the value.

/// The multiplier of a unit, or `None` for a name that is not one.
fn unit(u: &str) -> Option<u64> {
    let u = u.to_ascii_lowercase();
    let (exp, si) = match u.as_str() {
        "" | "b" | "byte" | "bytes" => return Some(1),
        "k" | "kib" => (1, false),
        "kb" => (1, true),
        "m" | "mib" => (2, false),
        "mb" => (2, true),
        "g" | "gib" => (3, false),
        "gb" => (3, true),
        "t" | "tib" => (4, false),
        "tb" => (4, true),
        "p" | "pib" => (5, false),
        "pb" => (5, true),
        "e" | "eib" => (6, false),
        "eb" => (6, true),
        _ => return None,
    };
    Some(if si {
        1000u64.pow(exp)
    } else {
        1024u64.pow(exp)
    })
}

/// The number of bytes `s` means.
pub fn parse(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size such as 1048576, 512M, 10G or 1.5GiB");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, u) = t.split_at(split);
    let mult = unit(u.trim()).ok_or_else(bad)?;
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut bytes = int * u128::from(mult);
    if !frac.is_empty() {
        if frac.len() > 18 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let f: u128 = frac.parse().map_err(|_| bad())?;
        let scale = 10u128.pow(frac.len() as u32);
        let part = f * u128::from(mult);
        if !part.is_multiple_of(scale) {
            return Err(format!("'{s}' is not a whole number of bytes"));
        }
        bytes += part / scale;
    }
    u64::try_from(bytes).map_err(|_| format!("'{s}' is more than 16 EiB"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn units_and_refusals() {
        assert_eq!(parse("512"), Ok(512));
        assert_eq!(parse("1k"), Ok(1024));
        assert_eq!(parse("1KB"), Ok(1000));
        assert_eq!(parse("10G"), Ok(10 << 30));
        assert_eq!(parse("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse("64 MiB"), Ok(64 << 20));
        assert!(parse("x").is_err());
        assert!(parse("12Q").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("1.5").is_err());
        assert!(parse("17E").is_err());
        assert!(parse("").is_err());
    }
}
