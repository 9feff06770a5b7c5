//! Conversions of attribute and text values.
//!
//! Each converter returns `Err(reason)`; the strict reader turns that into
//! `XmlError::InvalidValue` with the path and the offending value.

use std::fmt;
use std::str::FromStr;

type Conv<T> = Result<T, String>;

/// "expected one of: a, b, c" — shared wording for enum errors.
pub(crate) fn one_of(allowed: &[&str]) -> String {
    format!("expected one of: {}", allowed.join(", "))
}

/// Declares a closed set of XML keywords: the enum, `as_str`, `ALL`,
/// `FromStr` (its error lists the allowed values) and `Display`.
macro_rules! xml_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $var:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vmeta])* $var ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The XML spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($text => Ok($name::$var),)+
                    _ => Err(crate::model::values::one_of(&[$($text),+])),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use xml_enum;

/// Parses any `FromStr<Err = String>` keyword (the enums above).
pub(crate) fn keyword<T: FromStr<Err = String>>(s: &str) -> Conv<T> {
    s.parse()
}

/// Decimal unsigned integer within `min..=max`.
pub(crate) fn uint_in(s: &str, min: u64, max: u64) -> Conv<u64> {
    let s = s.trim();
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match ok.then(|| s.parse::<u64>().ok()).flatten() {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected an integer in {min}..={max}")),
    }
}

pub(crate) fn u32_any(s: &str) -> Conv<u32> {
    uint_in(s, 0, u32::MAX.into()).map(|v| v as u32)
}

pub(crate) fn u32_pos(s: &str) -> Conv<u32> {
    uint_in(s, 1, u32::MAX.into()).map(|v| v as u32)
}

/// Decimal signed integer within `min..=max`.
pub(crate) fn int_in(s: &str, min: i64, max: i64) -> Conv<i64> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match ok.then(|| t.parse::<i64>().ok()).flatten() {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected an integer in {min}..={max}")),
    }
}

/// Decimal or `0x` hexadecimal, as libvirt accepts in addresses.
pub(crate) fn dec_or_hex(s: &str) -> Conv<u64> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(h, 16).ok()
        }
        Some(_) => None,
        None if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.parse().ok(),
        None => None,
    };
    parsed.ok_or_else(|| "expected a decimal or 0x-prefixed hexadecimal integer".to_string())
}

pub(crate) fn yes_no(s: &str) -> Conv<bool> {
    match s {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(one_of(&["yes", "no"])),
    }
}

pub(crate) fn on_off(s: &str) -> Conv<bool> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(one_of(&["on", "off"])),
    }
}

pub(crate) fn yes_no_str(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub(crate) fn on_off_str(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// A free-form string that must not be empty (paths, names of things).
pub(crate) fn non_empty(s: &str) -> Conv<String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// A token such as a model or machine name: ASCII letters, digits and
/// `-_.:+`. These end up on command lines, so no spaces or quotes.
pub(crate) fn token(s: &str) -> Conv<String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'+'));
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected 1-255 characters of letters, digits, '-', '_', '.', ':' or '+'".into())
    }
}

/// An absolute file system path (no NUL, which XML cannot carry anyway).
pub(crate) fn abs_path(s: &str) -> Conv<String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err("expected an absolute path".into())
    }
}

/// UUID in libvirt's forms: 32 hex digits, with `-` allowed between any
/// two bytes, surrounding whitespace ignored.
pub(crate) fn uuid(s: &str) -> Conv<uuid::Uuid> {
    let err = || "expected a UUID: 32 hex digits, optionally with dashes".to_string();
    let mut bytes = [0u8; 16];
    let mut nibbles = 0usize;
    for c in s.trim().chars() {
        if c == '-' && nibbles.is_multiple_of(2) && nibbles > 0 && nibbles < 32 {
            continue;
        }
        let d = c.to_digit(16).ok_or_else(err)? as u8;
        if nibbles >= 32 {
            return Err(err());
        }
        bytes[nibbles / 2] = (bytes[nibbles / 2] << 4) | d;
        nibbles += 1;
    }
    if nibbles == 32 {
        Ok(uuid::Uuid::from_bytes(bytes))
    } else {
        Err(err())
    }
}

/// A unicast Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random locally-used address in QEMU's `52:54:00` range, the
    /// prefix libvirt uses when a definition names none.
    pub fn random_qemu() -> MacAddr {
        let r = uuid::Uuid::new_v4();
        let b = r.as_bytes();
        MacAddr([0x52, 0x54, 0x00, b[0], b[1], b[2]])
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Conv<MacAddr> {
        let err = || "expected a MAC address xx:xx:xx:xx:xx:xx".to_string();
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        if out[0] & 1 != 0 {
            return Err("expected a unicast MAC address, found a multicast one".into());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Bytes per unit for libvirt's memory `unit` attribute: the `KB`-style
/// names are decimal, the others binary. Matching ignores case, as
/// libvirt does.
pub(crate) fn memory_unit(unit: &str) -> Conv<u64> {
    // memory sizes go up to tebibytes; storage sizes (`scale_unit`) further
    scale_in(&SCALE_UNITS[..14], unit)
}

/// libvirt's scaled units (`virScaleInteger`), bytes per unit: the `KB`-style names are
/// decimal, the others binary.
const SCALE_UNITS: &[(&str, u64)] = &[
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

/// Bytes per unit for a storage size's `unit` (up to exbibytes); case ignored.
pub(crate) fn scale_unit(unit: &str) -> Conv<u64> {
    scale_in(SCALE_UNITS, unit)
}

fn scale_in(units: &[(&str, u64)], unit: &str) -> Conv<u64> {
    units
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, mult)| mult)
        .ok_or_else(|| one_of(&units.iter().map(|(n, _)| *n).collect::<Vec<_>>()))
}

/// `value` of `unit_bytes`-sized units in KiB, rounded up; never zero.
pub(crate) fn memory_kib(value: &str, unit_bytes: u64) -> Conv<u64> {
    let n = uint_in(value, 1, u64::MAX).map_err(|_| "expected a positive integer".to_string())?;
    let bytes = u128::from(n) * u128::from(unit_bytes);
    let kib = bytes.div_ceil(1024);
    u64::try_from(kib)
        .ok()
        .filter(|k| *k < (u64::MAX >> 10))
        .ok_or_else(|| "memory size too large".to_string())
}

/// Highest host CPU number accepted in a cpuset, matching libvirt's bitmap.
const CPUSET_MAX: u64 = 16_383;

/// libvirt's cpuset syntax: `0-3,^2,8`. Kept as written.
pub(crate) fn cpuset(s: &str) -> Conv<String> {
    let err = || format!("expected a CPU list such as '0-3,^2,8' with CPUs 0..={CPUSET_MAX}");
    let num = |t: &str| uint_in(t, 0, CPUSET_MAX).map_err(|_| err());
    let mut any_positive = false;
    for item in s.split(',') {
        let item = item.trim();
        if let Some(neg) = item.strip_prefix('^') {
            num(neg)?;
        } else if let Some((a, b)) = item.split_once('-') {
            if num(a)? > num(b)? {
                return Err(err());
            }
            any_positive = true;
        } else {
            num(item)?;
            any_positive = true;
        }
    }
    if any_positive {
        Ok(s.to_string())
    } else {
        Err(err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    xml_enum! {
        /// Test enum.
        pub enum Color { Red = "red", Dark = "dark-blue" }
    }

    #[test]
    fn enums() {
        assert_eq!("dark-blue".parse::<Color>(), Ok(Color::Dark));
        assert_eq!(
            "green".parse::<Color>(),
            Err("expected one of: red, dark-blue".to_string())
        );
        assert_eq!(Color::Red.to_string(), "red");
        assert_eq!(Color::ALL.len(), 2);
    }

    #[test]
    fn integers() {
        assert_eq!(uint_in("42", 1, 100), Ok(42));
        assert!(uint_in("0", 1, 100).is_err());
        assert!(uint_in("+4", 0, 100).is_err());
        assert!(uint_in("", 0, 100).is_err());
        assert!(uint_in("99999999999999999999999", 0, u64::MAX).is_err());
        assert_eq!(int_in("-1", -1, 10), Ok(-1));
        assert!(int_in("-2", -1, 10).is_err());
        assert!(int_in("-", -1, 10).is_err());
        assert_eq!(dec_or_hex("0x1f"), Ok(31));
        assert_eq!(dec_or_hex("12"), Ok(12));
        assert!(dec_or_hex("0x").is_err());
        assert!(dec_or_hex("1f").is_err());
    }

    #[test]
    fn uuids() {
        let want = uuid("c7a5fdbd-edaf-9455-926a-d65c16db1809");
        assert!(want.is_ok());
        assert_eq!(uuid("c7a5fdbdedaf9455926ad65c16db1809"), want);
        assert_eq!(uuid(" c7a5-fdbd-edaf-9455-926a-d65c-16db-1809 "), want);
        assert_eq!(uuid("C7A5FDBD-EDAF-9455-926A-D65C16DB1809"), want);
        assert!(uuid("c7a5fdbd-edaf-9455-926a-d65c16db180").is_err());
        assert!(uuid("c7a5fdbd-edaf-9455-926a-d65c16db18099").is_err());
        assert!(uuid("c-7a5fdbdedaf9455926ad65c16db1809").is_err());
        assert!(uuid("-c7a5fdbdedaf9455926ad65c16db1809").is_err());
        assert!(uuid("c7a5fdbdedaf9455926ad65c16db1809-").is_err());
        assert!(uuid("g7a5fdbdedaf9455926ad65c16db1809").is_err());
    }

    #[test]
    fn macs() {
        let m: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap_or(MacAddr([0; 6]));
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert!("01:00:5e:00:00:01".parse::<MacAddr>().is_err());
        assert!("ff:ff:ff:ff:ff:ff".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:0f:11".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:0g".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:100".parse::<MacAddr>().is_err());
        let r = MacAddr::random_qemu();
        assert_eq!(&r.0[..3], &[0x52, 0x54, 0x00]);
        assert_eq!(r.to_string().parse::<MacAddr>(), Ok(r));
    }

    #[test]
    fn memory() {
        let kib = |v: &str, u: &str| memory_unit(u).and_then(|m| memory_kib(v, m));
        assert_eq!(kib("1024", "KiB"), Ok(1024));
        assert_eq!(kib("1", "k"), Ok(1));
        assert_eq!(kib("1", "KB"), Ok(1));
        assert_eq!(kib("1024", "KB"), Ok(1000));
        assert_eq!(kib("2", "MiB"), Ok(2048));
        assert_eq!(kib("1", "M"), Ok(1024));
        assert_eq!(kib("1", "MB"), Ok(977));
        assert_eq!(kib("1", "GiB"), Ok(1 << 20));
        assert_eq!(kib("1", "GB"), Ok(976_563));
        assert_eq!(kib("1", "TiB"), Ok(1 << 30));
        assert_eq!(kib("1", "b"), Ok(1));
        assert_eq!(kib("1025", "bytes"), Ok(2));
        assert_eq!(kib("1", "gib"), Ok(1 << 20));
        assert!(kib("0", "KiB").is_err());
        assert!(kib("1", "PiB").is_err());
        assert!(kib("18446744073709551615", "TiB").is_err());
    }

    #[test]
    fn cpusets() {
        assert!(cpuset("0-3,^2,8").is_ok());
        assert!(cpuset("1-4,8-20,525").is_ok());
        assert!(cpuset("^1").is_err());
        assert!(cpuset("3-1").is_err());
        assert!(cpuset("").is_err());
        assert!(cpuset("a").is_err());
        assert!(cpuset("99999").is_err());
    }

    #[test]
    fn tokens_and_paths() {
        assert!(token("pc-q35-8.2").is_ok());
        assert!(token("a b").is_err());
        assert!(token("").is_err());
        assert!(abs_path("/x").is_ok());
        assert!(abs_path("x").is_err());
    }
}
