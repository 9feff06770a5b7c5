//! Key codes of the keyboards libvirt names (`virKeycodeSet`) and their translation to the
//! numbers QEMU's `send-key` takes ("qnum": PC scan code set 1, an `0xe0`-prefixed code
//! written with its top bit set instead).
//!
//! The table covers the keys of a standard 105-key PC keyboard. It was written from the
//! Linux input codes (a test checks every row against `<linux/input-event-codes.h>`), IBM's
//! scan code set 1 and the USB HID keyboard usage page. virsh resolves key names itself, so
//! the daemon only ever sees numbers with their code set.

use std::fmt;

/// libvirt's `virKeycodeSet`, by its wire number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codeset {
    Linux,
    /// libvirt's "xt": the same numbers as `atset1` (libvirt keeps it for compatibility).
    Xt,
    AtSet1,
    AtSet2,
    AtSet3,
    Osx,
    XtKbd,
    Usb,
    Win32,
    /// QEMU's numbers (also called "rfb", the name virsh still accepts).
    Qnum,
}

impl Codeset {
    /// The code set of wire number `n`.
    pub fn from_code(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::Linux,
            1 => Self::Xt,
            2 => Self::AtSet1,
            3 => Self::AtSet2,
            4 => Self::AtSet3,
            5 => Self::Osx,
            6 => Self::XtKbd,
            7 => Self::Usb,
            8 => Self::Win32,
            9 => Self::Qnum,
            _ => return None,
        })
    }

    /// libvirt's name for it, as its errors quote it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Xt => "xt",
            Self::AtSet1 => "atset1",
            Self::AtSet2 => "atset2",
            Self::AtSet3 => "atset3",
            Self::Osx => "os_x",
            Self::XtKbd => "xt_kbd",
            Self::Usb => "usb",
            Self::Win32 => "win32",
            Self::Qnum => "qnum",
        }
    }

    /// A key's number in this set; `None` for the sets virtbus has no table of.
    fn value(self, k: &Key) -> Option<u32> {
        match self {
            Self::Linux => Some(u32::from(k.linux)),
            Self::Xt | Self::AtSet1 => Some(u32::from(k.set1)),
            Self::Usb => Some(u32::from(k.usb)),
            Self::Qnum => Some(qnum(k.set1)),
            Self::AtSet2 | Self::AtSet3 | Self::Osx | Self::XtKbd | Self::Win32 => None,
        }
    }

    /// Whether keys of this set can be translated.
    pub fn supported(self) -> bool {
        self.value(&KEYS[0]).is_some()
    }
}

/// Why keys cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A code set number libvirt does not define.
    UnknownCodeset(u32),
    /// A code set virtbus has no table of.
    Unsupported(Codeset),
    /// A number that names no key of its set.
    Unknown { code: u32, set: Codeset },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCodeset(n) => write!(f, "unknown keycode set {n}"),
            Self::Unsupported(s) => write!(
                f,
                "keycode set '{}' is not supported (virtbus translates linux, xt, atset1, usb \
                 and qnum/rfb)",
                s.name()
            ),
            Self::Unknown { code, set } => {
                write!(f, "invalid keycode {code} of {} codeset", set.name())
            }
        }
    }
}

/// The code set of wire number `n`, refused unless virtbus can translate it.
pub fn codeset(n: u32) -> Result<Codeset, KeyError> {
    let set = Codeset::from_code(n).ok_or(KeyError::UnknownCodeset(n))?;
    if !set.supported() {
        return Err(KeyError::Unsupported(set));
    }
    Ok(set)
}

/// The key `code` of `set` names, as QEMU's number.
pub fn to_qnum(set: Codeset, code: u32) -> Result<u32, KeyError> {
    if !set.supported() {
        return Err(KeyError::Unsupported(set));
    }
    KEYS.iter()
        .find(|k| set.value(k) == Some(code))
        .map(|k| qnum(k.set1))
        .ok_or(KeyError::Unknown { code, set })
}

/// Set 1's `0xe0 XX` written as QEMU numbers it: `0x80 | XX`.
fn qnum(set1: u16) -> u32 {
    let v = u32::from(set1);
    if v >= 0xe000 { 0x80 | (v & 0x7f) } else { v }
}

/// One key: its Linux input name and code, its scan code in set 1 (`0xe0XX` for the
/// extended ones) and its USB HID usage (page 7).
struct Key {
    /// Read by the test that checks the table against the kernel's header.
    #[cfg_attr(not(test), allow(dead_code))]
    name: &'static str,
    linux: u16,
    set1: u16,
    usb: u16,
}

const fn k(name: &'static str, linux: u16, set1: u16, usb: u16) -> Key {
    Key {
        name,
        linux,
        set1,
        usb,
    }
}

/// The keys of a 105-key PC keyboard.
const KEYS: &[Key] = &[
    k("KEY_ESC", 1, 0x01, 0x29),
    k("KEY_1", 2, 0x02, 0x1e),
    k("KEY_2", 3, 0x03, 0x1f),
    k("KEY_3", 4, 0x04, 0x20),
    k("KEY_4", 5, 0x05, 0x21),
    k("KEY_5", 6, 0x06, 0x22),
    k("KEY_6", 7, 0x07, 0x23),
    k("KEY_7", 8, 0x08, 0x24),
    k("KEY_8", 9, 0x09, 0x25),
    k("KEY_9", 10, 0x0a, 0x26),
    k("KEY_0", 11, 0x0b, 0x27),
    k("KEY_MINUS", 12, 0x0c, 0x2d),
    k("KEY_EQUAL", 13, 0x0d, 0x2e),
    k("KEY_BACKSPACE", 14, 0x0e, 0x2a),
    k("KEY_TAB", 15, 0x0f, 0x2b),
    k("KEY_Q", 16, 0x10, 0x14),
    k("KEY_W", 17, 0x11, 0x1a),
    k("KEY_E", 18, 0x12, 0x08),
    k("KEY_R", 19, 0x13, 0x15),
    k("KEY_T", 20, 0x14, 0x17),
    k("KEY_Y", 21, 0x15, 0x1c),
    k("KEY_U", 22, 0x16, 0x18),
    k("KEY_I", 23, 0x17, 0x0c),
    k("KEY_O", 24, 0x18, 0x12),
    k("KEY_P", 25, 0x19, 0x13),
    k("KEY_LEFTBRACE", 26, 0x1a, 0x2f),
    k("KEY_RIGHTBRACE", 27, 0x1b, 0x30),
    k("KEY_ENTER", 28, 0x1c, 0x28),
    k("KEY_LEFTCTRL", 29, 0x1d, 0xe0),
    k("KEY_A", 30, 0x1e, 0x04),
    k("KEY_S", 31, 0x1f, 0x16),
    k("KEY_D", 32, 0x20, 0x07),
    k("KEY_F", 33, 0x21, 0x09),
    k("KEY_G", 34, 0x22, 0x0a),
    k("KEY_H", 35, 0x23, 0x0b),
    k("KEY_J", 36, 0x24, 0x0d),
    k("KEY_K", 37, 0x25, 0x0e),
    k("KEY_L", 38, 0x26, 0x0f),
    k("KEY_SEMICOLON", 39, 0x27, 0x33),
    k("KEY_APOSTROPHE", 40, 0x28, 0x34),
    k("KEY_GRAVE", 41, 0x29, 0x35),
    k("KEY_LEFTSHIFT", 42, 0x2a, 0xe1),
    k("KEY_BACKSLASH", 43, 0x2b, 0x31),
    k("KEY_Z", 44, 0x2c, 0x1d),
    k("KEY_X", 45, 0x2d, 0x1b),
    k("KEY_C", 46, 0x2e, 0x06),
    k("KEY_V", 47, 0x2f, 0x19),
    k("KEY_B", 48, 0x30, 0x05),
    k("KEY_N", 49, 0x31, 0x11),
    k("KEY_M", 50, 0x32, 0x10),
    k("KEY_COMMA", 51, 0x33, 0x36),
    k("KEY_DOT", 52, 0x34, 0x37),
    k("KEY_SLASH", 53, 0x35, 0x38),
    k("KEY_RIGHTSHIFT", 54, 0x36, 0xe5),
    k("KEY_KPASTERISK", 55, 0x37, 0x55),
    k("KEY_LEFTALT", 56, 0x38, 0xe2),
    k("KEY_SPACE", 57, 0x39, 0x2c),
    k("KEY_CAPSLOCK", 58, 0x3a, 0x39),
    k("KEY_F1", 59, 0x3b, 0x3a),
    k("KEY_F2", 60, 0x3c, 0x3b),
    k("KEY_F3", 61, 0x3d, 0x3c),
    k("KEY_F4", 62, 0x3e, 0x3d),
    k("KEY_F5", 63, 0x3f, 0x3e),
    k("KEY_F6", 64, 0x40, 0x3f),
    k("KEY_F7", 65, 0x41, 0x40),
    k("KEY_F8", 66, 0x42, 0x41),
    k("KEY_F9", 67, 0x43, 0x42),
    k("KEY_F10", 68, 0x44, 0x43),
    k("KEY_NUMLOCK", 69, 0x45, 0x53),
    k("KEY_SCROLLLOCK", 70, 0x46, 0x47),
    k("KEY_KP7", 71, 0x47, 0x5f),
    k("KEY_KP8", 72, 0x48, 0x60),
    k("KEY_KP9", 73, 0x49, 0x61),
    k("KEY_KPMINUS", 74, 0x4a, 0x56),
    k("KEY_KP4", 75, 0x4b, 0x5c),
    k("KEY_KP5", 76, 0x4c, 0x5d),
    k("KEY_KP6", 77, 0x4d, 0x5e),
    k("KEY_KPPLUS", 78, 0x4e, 0x57),
    k("KEY_KP1", 79, 0x4f, 0x59),
    k("KEY_KP2", 80, 0x50, 0x5a),
    k("KEY_KP3", 81, 0x51, 0x5b),
    k("KEY_KP0", 82, 0x52, 0x62),
    k("KEY_KPDOT", 83, 0x53, 0x63),
    k("KEY_102ND", 86, 0x56, 0x64),
    k("KEY_F11", 87, 0x57, 0x44),
    k("KEY_F12", 88, 0x58, 0x45),
    k("KEY_KPENTER", 96, 0xe01c, 0x58),
    k("KEY_RIGHTCTRL", 97, 0xe01d, 0xe4),
    k("KEY_KPSLASH", 98, 0xe035, 0x54),
    k("KEY_SYSRQ", 99, 0x54, 0x46),
    k("KEY_RIGHTALT", 100, 0xe038, 0xe6),
    k("KEY_HOME", 102, 0xe047, 0x4a),
    k("KEY_UP", 103, 0xe048, 0x52),
    k("KEY_PAGEUP", 104, 0xe049, 0x4b),
    k("KEY_LEFT", 105, 0xe04b, 0x50),
    k("KEY_RIGHT", 106, 0xe04d, 0x4f),
    k("KEY_END", 107, 0xe04f, 0x4d),
    k("KEY_DOWN", 108, 0xe050, 0x51),
    k("KEY_PAGEDOWN", 109, 0xe051, 0x4e),
    k("KEY_INSERT", 110, 0xe052, 0x49),
    k("KEY_DELETE", 111, 0xe053, 0x4c),
    k("KEY_PAUSE", 119, 0xe046, 0x48),
    k("KEY_LEFTMETA", 125, 0xe05b, 0xe3),
    k("KEY_RIGHTMETA", 126, 0xe05c, 0xe7),
    k("KEY_COMPOSE", 127, 0xe05d, 0x65),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_codes_are_the_kernels() {
        let header = std::fs::read_to_string("/usr/include/linux/input-event-codes.h")
            .expect("<linux/input-event-codes.h> (package linux-libc-dev)");
        for key in KEYS {
            let value = header.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("#define") && w.next() == Some(key.name))
                    .then(|| w.next())
                    .flatten()
            });
            assert_eq!(
                value.and_then(|v| v.parse::<u16>().ok()),
                Some(key.linux),
                "{}",
                key.name
            );
        }
    }

    #[test]
    fn every_set_names_each_key_once() {
        for set in [Codeset::Linux, Codeset::AtSet1, Codeset::Usb, Codeset::Qnum] {
            let mut v: Vec<u32> = KEYS.iter().filter_map(|k| set.value(k)).collect();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), KEYS.len(), "{set:?}");
        }
    }

    #[test]
    fn translations_to_qemus_numbers() {
        // KEY_A: set 1 0x1e, USB usage 4
        assert_eq!(to_qnum(Codeset::Linux, 30), Ok(0x1e));
        assert_eq!(to_qnum(Codeset::Usb, 4), Ok(0x1e));
        // the arrow up is extended (e0 48): QEMU's 0xc8
        assert_eq!(to_qnum(Codeset::Linux, 103), Ok(0xc8));
        assert_eq!(to_qnum(Codeset::Xt, 0xe048), Ok(0xc8));
        assert_eq!(to_qnum(Codeset::Qnum, 0xc8), Ok(0xc8));
        assert_eq!(
            to_qnum(Codeset::Linux, 999),
            Err(KeyError::Unknown {
                code: 999,
                set: Codeset::Linux
            })
        );
        assert_eq!(codeset(3), Err(KeyError::Unsupported(Codeset::AtSet2)));
        assert_eq!(codeset(10), Err(KeyError::UnknownCodeset(10)));
        assert!(
            KeyError::Unsupported(Codeset::Win32)
                .to_string()
                .contains("'win32'")
        );
    }
}
