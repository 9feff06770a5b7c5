//! A tap's traffic shaping (`<interface><bandwidth>`), set with iproute2's `tc` exactly as
//! libvirt's `virNetDevBandwidthSet` does, so the kernel holds the same qdiscs, classes and
//! filters as under libvirtd. `tc` rather than netlink: libvirt's own netlink attempt was
//! given up ("tried and failed miserably"), and the htb/police option blobs (rate tables
//! computed by tc) would have to be rebuilt here byte for byte.
//!
//! A tap's host view is the guest's reversed: the guest's inbound traffic is what the tap
//! sends (shaped by an htb root qdisc), its outbound what the tap receives (policed on the
//! ingress qdisc).

use std::process::Command;

use crate::model::devices::{Bandwidth, Rate};

/// iproute2's traffic control program, found on `PATH` as libvirt finds it.
const TC: &str = "tc";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The commands that remove what [`set_commands`] adds (failures mean nothing was there).
pub fn clear_commands(tap: &str) -> Vec<Vec<String>> {
    vec![
        args(&["qdisc", "del", "dev", tap, "root"]),
        args(&["qdisc", "del", "dev", tap, "ingress"]),
    ]
}

/// libvirt's root qdisc for a tap without inbound shaping (`noqueue`: lockless transmit).
pub fn default_qdisc_command(tap: &str) -> Vec<String> {
    args(&[
        "qdisc", "add", "dev", tap, "root", "handle", "0:", "noqueue",
    ])
}

/// htb's quantum for `rate`: its bytes per second over one MTU, at least 1 (libvirt's).
fn quantum(rate: &Rate) -> u64 {
    (rate.average * 1024 / 8 / 1500).max(1)
}

/// The commands that shape `tap` as `bw` says (after [`clear_commands`]), in libvirt's order
/// and with libvirt's arguments.
pub fn set_commands(tap: &str, bw: &Bandwidth) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if let Some(tx) = bw.inbound.filter(|r| r.average != 0) {
        let average = format!("{}kbps", tx.average);
        out.push(args(&[
            "qdisc", "add", "dev", tap, "root", "handle", "1:", "htb", "default", "1",
        ]));
        let mut class = args(&[
            "class", "add", "dev", tap, "parent", "1:", "classid", "1:1", "htb", "rate", &average,
        ]);
        if tx.peak != 0 {
            class.extend(args(&["ceil", &format!("{}kbps", tx.peak)]));
        }
        if tx.burst != 0 {
            class.extend(args(&["burst", &format!("{}kb", tx.burst)]));
        }
        class.extend(args(&["quantum", &quantum(&tx).to_string()]));
        out.push(class);
        out.push(args(&[
            "qdisc", "add", "dev", tap, "parent", "1:1", "handle", "2:", "sfq", "perturb", "10",
        ]));
        out.push(args(&[
            "filter", "add", "dev", tap, "parent", "1:0", "protocol", "all", "prio", "1", "handle",
            "1", "fw", "flowid", "1",
        ]));
    }
    if let Some(rx) = bw.outbound {
        // tc keeps the burst in bytes in a u32: libvirt's default burst is capped to fit
        let burst = if rx.burst != 0 {
            rx.burst
        } else {
            rx.average.min(u64::from(u32::MAX) / 1024)
        };
        out.push(args(&["qdisc", "add", "dev", tap, "ingress"]));
        out.push(args(&[
            "filter",
            "add",
            "dev",
            tap,
            "parent",
            "ffff:",
            "protocol",
            "all",
            "u32",
            "match",
            "u32",
            "0",
            "0",
            "police",
            "rate",
            &format!("{}kbps", rx.average),
            "burst",
            &format!("{burst}kb"),
            "mtu",
            "64kb",
            "drop",
            "flowid",
            ":1",
        ]));
    }
    out
}

/// Run `tc` with `cmd`; a failure in libvirt's words (`virCommandRun`'s).
fn run(cmd: &[String]) -> Result<(), String> {
    let out = Command::new(TC)
        .args(cmd)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot execute binary {TC}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let status = match out.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "fatal signal".to_owned(),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    let sep = if err.is_empty() { "" } else { ": " };
    Err(format!(
        "Child process ({TC} {}) unexpected {status}{sep}{err}",
        cmd.join(" ")
    ))
}

/// libvirt's default root qdisc on a new tap; a failure is ignored as libvirt ignores it
/// (`noqueue` is only faster).
pub fn set_default_qdisc(tap: &str) {
    if let Err(e) = run(&default_qdisc_command(tap)) {
        tracing::debug!("{tap}: {e}");
    }
}

/// Shape `tap` as `bw` says, replacing what it had; with no inbound average the root qdisc
/// goes back to `noqueue`, as libvirt's QEMU driver leaves it.
pub fn apply(tap: &str, bw: Option<&Bandwidth>) -> Result<(), String> {
    for c in clear_commands(tap) {
        // nothing to delete is no error (libvirt ignores these exit codes too)
        let _ = run(&c);
    }
    if let Some(bw) = bw {
        for c in set_commands(tap, bw) {
            run(&c)?;
        }
    }
    if bw.is_none_or(|b| b.inbound.is_none_or(|r| r.average == 0)) {
        set_default_qdisc(tap);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(c: &[String]) -> String {
        c.join(" ")
    }

    #[test]
    fn libvirts_commands() {
        let bw = Bandwidth {
            inbound: Some(Rate {
                average: 1000,
                peak: 2000,
                burst: 1024,
                floor: 0,
            }),
            outbound: Some(Rate {
                average: 128,
                ..Rate::default()
            }),
        };
        let c: Vec<String> = set_commands("vnet0", &bw).iter().map(|c| line(c)).collect();
        assert_eq!(
            c,
            [
                "qdisc add dev vnet0 root handle 1: htb default 1",
                "class add dev vnet0 parent 1: classid 1:1 htb rate 1000kbps ceil 2000kbps \
                 burst 1024kb quantum 85",
                "qdisc add dev vnet0 parent 1:1 handle 2: sfq perturb 10",
                "filter add dev vnet0 parent 1:0 protocol all prio 1 handle 1 fw flowid 1",
                "qdisc add dev vnet0 ingress",
                "filter add dev vnet0 parent ffff: protocol all u32 match u32 0 0 police rate \
                 128kbps burst 128kb mtu 64kb drop flowid :1",
            ]
        );
        // a tiny rate still gets a quantum of 1; a huge one a burst tc can hold
        let small = Bandwidth {
            inbound: Some(Rate {
                average: 1,
                ..Rate::default()
            }),
            outbound: Some(Rate {
                average: u64::from(u32::MAX),
                ..Rate::default()
            }),
        };
        let c: Vec<String> = set_commands("t", &small).iter().map(|c| line(c)).collect();
        assert!(c[1].ends_with("rate 1kbps quantum 1"), "{}", c[1]);
        assert!(c[5].contains("burst 4194303kb"), "{}", c[5]);
    }
}
