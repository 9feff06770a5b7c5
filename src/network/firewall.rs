//! A network's firewall: one nftables table per network (`inet virtbus_<bridge>`), loaded
//! and removed whole through `nft -f -`. The rules follow what libvirt 9.0 adds with
//! iptables (src/network/bridge_driver_linux.c): DHCP and DNS accepted from the guests,
//! traffic between the bridge's ports allowed, NAT or routed traffic allowed for the subnet
//! and rejected otherwise, masquerading (no masquerade to multicast/broadcast) for NAT.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::def::{ForwardMode, NetworkDef};

/// The table of the network whose bridge is `bridge`; bridge names are unique among
/// networks, and nft identifiers take only letters, digits and `_`.
pub fn table_name(bridge: &str) -> String {
    let mut t = String::from("virtbus_");
    for c in bridge.chars() {
        t.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    t
}

/// A quoted nft string (interface names are checked, but quote anyway).
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace(['"', '\\'], ""))
}

/// The nft script creating the table (after deleting any stale one of the same name), or
/// `None` for networks libvirt adds no rules for (open and host-bridge ones).
pub fn script(def: &NetworkDef, bridge: &str) -> Option<String> {
    let mode = def.mode();
    if matches!(mode, Some(ForwardMode::Open | ForwardMode::Bridge)) {
        return None;
    }
    let t = table_name(bridge);
    let br = q(bridge);
    let dev = def
        .forward
        .as_ref()
        .and_then(|f| f.dev.as_deref())
        .map(|d| format!(" oifname {}", q(d)));
    let dev_in = def
        .forward
        .as_ref()
        .and_then(|f| f.dev.as_deref())
        .map(|d| format!(" iifname {}", q(d)));
    let mut s = String::new();
    // `add` then `delete` makes the delete succeed whether or not a stale table exists
    let _ = writeln!(
        s,
        "add table inet {t}\ndelete table inet {t}\ntable inet {t} {{"
    );
    // input: DHCP, DNS (and DHCPv6) from the guests
    let _ = writeln!(
        s,
        "  chain input {{\n    type filter hook input priority filter; policy accept;\n    \
         iifname {br} udp dport {{ 53, 67, 547 }} accept\n    \
         iifname {br} tcp dport 53 accept\n  }}"
    );
    let _ = writeln!(
        s,
        "  chain output {{\n    type filter hook output priority filter; policy accept;\n    \
         oifname {br} udp dport {{ 68, 546 }} accept\n  }}"
    );
    let _ = writeln!(
        s,
        "  chain forward {{\n    type filter hook forward priority filter; policy accept;"
    );
    if matches!(mode, Some(ForwardMode::Nat | ForwardMode::Route)) {
        for ip in &def.ips {
            // NAT is IPv4 only; IPv6 subnets of a NAT network are routed
            let fam = if ip.is_ipv4() { "ip" } else { "ip6" };
            let net = ip.subnet().cidr();
            let related = if mode == Some(ForwardMode::Nat) && ip.is_ipv4() {
                " ct state related,established"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "    iifname {br}{} {fam} saddr {net} accept",
                dev.as_deref().unwrap_or("")
            );
            let _ = writeln!(
                s,
                "    oifname {br}{} {fam} daddr {net}{related} accept",
                dev_in.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        s,
        "    iifname {br} oifname {br} accept\n    \
         iifname {br} reject\n    \
         oifname {br} reject\n  }}"
    );
    if mode == Some(ForwardMode::Nat) {
        let _ = writeln!(
            s,
            "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;"
        );
        let nat = def.forward.as_ref().and_then(|f| f.nat.as_ref());
        let ports = nat
            .and_then(|n| n.port)
            .map(|(a, b)| (a, b.unwrap_or(a)))
            .unwrap_or((1024, 65535));
        for ip in def.ips.iter().filter(|i| i.is_ipv4()) {
            let net = ip.subnet().cidr();
            let out = dev.as_deref().unwrap_or("");
            let _ = writeln!(s, "    ip saddr {net} ip daddr 224.0.0.0/24 return");
            let _ = writeln!(s, "    ip saddr {net} ip daddr 255.255.255.255 return");
            match nat.and_then(|n| n.address) {
                Some((start, end)) => {
                    let range = match end {
                        Some(e) if e != start => format!("{start}-{e}"),
                        _ => start.to_string(),
                    };
                    let _ = writeln!(
                        s,
                        "   {out} ip saddr {net} ip daddr != {net} meta l4proto {{ tcp, udp }} \
                         snat ip to {range}:{}-{}",
                        ports.0, ports.1
                    );
                    let _ = writeln!(
                        s,
                        "   {out} ip saddr {net} ip daddr != {net} snat ip to {range}"
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "   {out} ip saddr {net} ip daddr != {net} meta l4proto {{ tcp, udp }} \
                         masquerade to :{}-{}",
                        ports.0, ports.1
                    );
                    let _ = writeln!(s, "   {out} ip saddr {net} ip daddr != {net} masquerade");
                }
            }
        }
        let _ = writeln!(s, "  }}");
    }
    let _ = writeln!(s, "}}");
    Some(s)
}

/// The script removing the table (no error when it is gone).
pub fn remove_script(bridge: &str) -> String {
    let t = table_name(bridge);
    format!("add table inet {t}\ndelete table inet {t}\n")
}

/// Runs `nft -f -` with `script` on its standard input.
pub async fn apply(script: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new(nft_binary())
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether the table exists (for adoption after a restart).
pub async fn table_exists(bridge: &str) -> bool {
    tokio::process::Command::new(nft_binary())
        .args(["list", "table", "inet", &table_name(bridge)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

fn nft_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/nft").exists() {
        "/usr/sbin/nft"
    } else {
        "nft"
    }
}

/// Turns on IPv4 (and, with an IPv6 subnet, IPv6) forwarding, as libvirt does for nat and
/// route networks; it is never turned off again (other networks may need it).
pub fn enable_forwarding(def: &NetworkDef) -> Result<(), String> {
    let write = |p: &str| std::fs::write(p, "1\n").map_err(|e| format!("{p}: {e}"));
    if def.ips.iter().any(|i| i.is_ipv4()) {
        write("/proc/sys/net/ipv4/ip_forward")?;
    }
    if def.ips.iter().any(|i| matches!(i.address, IpAddr::V6(_))) {
        write("/proc/sys/net/ipv6/conf/all/forwarding")?;
    }
    Ok(())
}
