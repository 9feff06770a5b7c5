//! libvirt's QEMU monitor events (`virsh qemu-monitor-event`): callbacks a `qemu://`
//! connection registers for every raw QMP event of one domain or all, optionally only those
//! whose name matches (exactly, ignoring case, or a regular expression).
//!
//! libvirt compiles the expression with GLib (PCRE); here it is a POSIX extended expression
//! (libc's `regcomp`), which agrees on what event names need: literals, classes, `.*`, `^`,
//! `$`, alternation.

use std::ffi::{CStr, CString};

use super::{
    Shared,
    dispatch::{Session, ok},
    error::{RpcError, RpcResult},
    events::Family,
    proto::{CallbackIdArgs, CallbackIdRet, Dom},
    xdr::{Reader, xdr_struct},
};
use crate::{
    compat::{errors::Code, flags::Flavor},
    core::ops::Operation,
    server::authz::Details,
};

/// `VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_REGEX` and `_NOCASE`.
const REGEX: u32 = 1;
const NOCASE: u32 = 2;

xdr_struct! {
    RegisterArgs { dom: Option<Dom>, event: Option<String>, flags: u32 }
}

/// Which event names a callback wants.
pub enum NameFilter {
    Exact(String),
    NoCase(String),
    Regex(PosixRegex),
}

impl NameFilter {
    /// The filter of `event` under `flags`, or libvirt's error for bad flags or expressions.
    pub fn new(event: &str, flags: u32) -> Result<NameFilter, String> {
        if flags & REGEX != 0 {
            PosixRegex::new(event, flags & NOCASE != 0)
                .map(NameFilter::Regex)
                .map_err(|why| format!("failed to compile regex '{event}': {why}"))
        } else if flags & NOCASE != 0 {
            Ok(NameFilter::NoCase(event.to_owned()))
        } else {
            Ok(NameFilter::Exact(event.to_owned()))
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(e) => e == name,
            Self::NoCase(e) => e.eq_ignore_ascii_case(name),
            Self::Regex(r) => r.is_match(name),
        }
    }
}

/// A compiled POSIX extended regular expression (searched, not anchored, as GLib's match).
pub struct PosixRegex(Box<libc::regex_t>);

// SAFETY: regexec only reads a compiled expression; POSIX makes it safe from many threads.
unsafe impl Send for PosixRegex {}
// SAFETY: as above: nothing mutates the expression after regcomp.
unsafe impl Sync for PosixRegex {}

impl PosixRegex {
    pub fn new(pattern: &str, nocase: bool) -> Result<PosixRegex, String> {
        let c = CString::new(pattern).map_err(|_| "the expression holds a NUL byte".to_owned())?;
        // SAFETY: regex_t is plain data that regcomp initializes.
        let mut re: Box<libc::regex_t> = Box::new(unsafe { std::mem::zeroed() });
        let mut cflags = libc::REG_EXTENDED | libc::REG_NOSUB;
        if nocase {
            cflags |= libc::REG_ICASE;
        }
        // SAFETY: `re` is valid for writing and `c` is NUL-terminated.
        let rc = unsafe { libc::regcomp(&mut *re, c.as_ptr(), cflags) };
        if rc != 0 {
            let mut buf = [0u8; 256];
            // SAFETY: regerror writes at most buf.len() bytes, NUL-terminated.
            unsafe { libc::regerror(rc, &*re, buf.as_mut_ptr().cast(), buf.len()) };
            let msg = CStr::from_bytes_until_nul(&buf)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(msg);
        }
        Ok(PosixRegex(re))
    }

    pub fn is_match(&self, s: &str) -> bool {
        let Ok(c) = CString::new(s) else {
            return false;
        };
        // SAFETY: the expression was compiled by regcomp; no match offsets are asked for.
        unsafe { libc::regexec(&*self.0, c.as_ptr(), 0, std::ptr::null_mut(), 0) == 0 }
    }
}

impl Drop for PosixRegex {
    fn drop(&mut self) {
        // SAFETY: compiled by regcomp, freed once.
        unsafe { libc::regfree(&mut *self.0) };
    }
}

/// `QEMU_PROC_CONNECT_DOMAIN_MONITOR_EVENT_REGISTER`: a callback for the monitor events of
/// one domain or all, when polkit allows QEMU passthrough (on that domain, or at all).
pub(super) async fn register(shared: &Shared, s: &Session, body: &[u8]) -> RpcResult<Vec<u8>> {
    const API: &str = "virConnectDomainQemuMonitorEventRegister";
    let a: RegisterArgs = Reader::decode(body)?;
    // libvirtd's order: the domain, the read-only connection, the permission, the flags
    let dom = a.dom.as_ref().map(|d| s.domain(d)).transpose()?;
    if s.readonly {
        return Err(RpcError::read_only(&format!(
            "read only access prevents {API}"
        )));
    }
    let only = match &dom {
        Some(dom) => {
            s.authorize(shared, Operation::QemuMonitorCommand, dom)
                .await?;
            Some(dom.uuid())
        }
        None => {
            s.exec(shared)
                .authorize_as(
                    &s.caller,
                    Operation::QemuMonitorCommand,
                    &Details::default(),
                )
                .await
                .map_err(|e| RpcError::denied(e, s.flavor()))?;
            None
        }
    };
    let bad = a.flags & !(REGEX | NOCASE);
    if bad != 0 {
        return Err(s.error(
            Code::InvalidArg,
            &format!(
                "unsupported flags (0x{bad:x}) in function virDomainQemuMonitorEventStateRegisterID"
            ),
        ));
    }
    let filter = match &a.event {
        Some(e) => Some(NameFilter::new(e, a.flags).map_err(|m| s.error(Code::InvalidArg, &m))?),
        None => None,
    };
    let callback_id = s.listener.register_monitor(only, filter);
    s.view.hub.listen(&s.listener);
    ok(CallbackIdRet { callback_id })
}

/// `QEMU_PROC_CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER`.
pub(super) fn deregister(s: &Session, body: &[u8]) -> RpcResult<Vec<u8>> {
    let a: CallbackIdArgs = Reader::decode(body)?;
    if s.readonly {
        return Err(RpcError::read_only(
            "read only access prevents virConnectDomainQemuMonitorEventDeregister",
        ));
    }
    s.listener
        .deregister(Family::Monitor, a.callback_id)
        .map_err(|_| {
            s.error(
                Code::Internal,
                &format!(
                    "qemu monitor event callback {} not registered",
                    a.callback_id
                ),
            )
        })?;
    ok(())
}

/// Whether the QEMU program serves monitor events on this connection's flavor.
pub(super) fn served(flavor: Flavor) -> bool {
    match flavor {
        Flavor::Qemu => true,
        Flavor::Test | Flavor::Lxc => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_filter_as_libvirt_filters_them() {
        let f = NameFilter::new("RTC_CHANGE", 0).unwrap();
        assert!(f.matches("RTC_CHANGE") && !f.matches("rtc_change"));
        let f = NameFilter::new("rtc_change", NOCASE).unwrap();
        assert!(f.matches("RTC_CHANGE"));
        let f = NameFilter::new("^vnc_", REGEX | NOCASE).unwrap();
        assert!(f.matches("VNC_CONNECTED") && !f.matches("SPICE_VNC_"));
        let f = NameFilter::new("CHANGE", REGEX).unwrap();
        assert!(f.matches("BALLOON_CHANGE") && !f.matches("change"));
        let e = NameFilter::new("(", REGEX).err().expect("refused");
        assert!(e.starts_with("failed to compile regex '(': "), "{e}");
    }
}
