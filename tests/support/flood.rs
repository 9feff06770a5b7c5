//! A peer that floods the daemon with calls and never reads the replies, for the fairness
//! test and the benchmark that measures other peers' latency meanwhile.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    time::Duration,
};

use zbus::Message;

use super::{MANAGER, NAME};

/// A bus connection on a bare socket, past authentication and `Hello`, that reads nothing.
pub fn raw_client(address: &str) -> UnixStream {
    let path = address.strip_prefix("unix:path=").expect("unix path");
    let mut s = UnixStream::connect(path).expect("connect");
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .expect("auth");
    let mut line = String::new();
    BufReader::new(&mut s)
        .read_line(&mut line)
        .expect("auth reply");
    assert!(line.starts_with("OK "), "{line}");
    s.write_all(b"BEGIN\r\n").expect("begin");
    let hello = Message::method_call("/org/freedesktop/DBus", "Hello")
        .destination("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .build(&())
        .expect("build");
    s.write_all(hello.data().bytes()).expect("hello");
    s
}

pub fn managed_objects_call() -> Message {
    Message::method_call(MANAGER, "GetManagedObjects")
        .destination(NAME)
        .interface("org.freedesktop.DBus.ObjectManager")
        .build(&())
        .expect("build")
}

/// The daemon's resident memory, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The daemon's refusals (its `LimitsExceeded` replies, not the bus's) among everything
/// readable on `s` within `quiet`.
pub fn count_refusals(s: &mut UnixStream, quiet: Duration) -> usize {
    s.set_read_timeout(Some(quiet)).expect("timeout");
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let needle = b"read the replies before sending more";
    all.windows(needle.len()).filter(|w| w == needle).count()
}
