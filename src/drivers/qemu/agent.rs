//! Guest information from qemu-ga: host name, OS, time zone, interfaces and addresses, in
//! the driver-neutral [`GuestInfo`] shape.

use std::time::Duration;

use serde_json::Value;

use super::{qga::Agent, stats::NetCounters, transport::Error};
use crate::drivers::{GuestAddress, GuestInfo, GuestInfoTypes, GuestInterface};

/// Ask the agent for the parts of `types`.
pub async fn guest_info(
    agent: &Agent,
    types: GuestInfoTypes,
    timeout: Duration,
) -> Result<GuestInfo, Error> {
    let mut info = GuestInfo::default();
    if types.hostname {
        info.hostname = Some(agent.get_host_name(timeout).await?);
    }
    if types.os {
        let os = agent.get_osinfo(timeout).await?;
        for (k, v) in [
            ("id", os.id),
            ("name", os.name),
            ("pretty-name", os.pretty_name),
            ("version", os.version),
            ("version-id", os.version_id),
            ("kernel-release", os.kernel_release),
            ("kernel-version", os.kernel_version),
            ("machine", os.machine),
            ("variant", os.variant),
            ("variant-id", os.variant_id),
        ] {
            if let Some(v) = v {
                info.os.push((k.to_owned(), v));
            }
        }
    }
    if types.timezone {
        let tz = agent
            .execute_raw("guest-get-timezone", None, timeout)
            .await?;
        info.timezone = Some((
            tz.get("zone")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            tz.get("offset").and_then(Value::as_i64).unwrap_or(0),
        ));
    }
    if types.interfaces {
        info.interfaces = Some(interfaces(&interfaces_raw(agent, timeout).await?));
    }
    Ok(info)
}

/// `guest-network-get-interfaces`, raw (its statistics are used for `net.*` stats too).
pub async fn interfaces_raw(agent: &Agent, timeout: Duration) -> Result<Value, Error> {
    agent
        .execute_raw("guest-network-get-interfaces", None, timeout)
        .await
}

/// Interfaces and addresses from a `guest-network-get-interfaces` reply.
pub fn interfaces(reply: &Value) -> Vec<GuestInterface> {
    reply
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let name = i.get("name")?.as_str()?.to_owned();
            let hwaddr = i
                .get("hardware-address")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let addrs = i
                .get("ip-addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    Some(GuestAddress {
                        ipv6: a.get("ip-address-type")?.as_str()? == "ipv6",
                        addr: a.get("ip-address")?.as_str()?.to_owned(),
                        prefix: a.get("prefix")?.as_u64()? as u32,
                    })
                })
                .collect();
            Some(GuestInterface {
                name,
                hwaddr,
                addrs,
            })
        })
        .collect()
}

/// The guest's counters of the interface with MAC `mac`, from the same reply.
pub fn counters_for_mac(reply: &Value, mac: &str) -> Option<NetCounters> {
    let iface = reply.as_array()?.iter().find(|i| {
        i.get("hardware-address")
            .and_then(Value::as_str)
            .is_some_and(|h| h.eq_ignore_ascii_case(mac))
    })?;
    let s = iface.get("statistics")?;
    let g = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(NetCounters {
        rx_bytes: g("rx-bytes"),
        rx_pkts: g("rx-packets"),
        rx_errs: g("rx-errs"),
        rx_drop: g("rx-dropped"),
        tx_bytes: g("tx-bytes"),
        tx_pkts: g("tx-packets"),
        tx_errs: g("tx-errs"),
        tx_drop: g("tx-dropped"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What qemu-ga 7.2 in the test guest answers (trimmed).
    fn reply() -> Value {
        json!([
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}],
             "statistics": {"rx-bytes": 0, "rx-packets": 0, "rx-errs": 0, "rx-dropped": 0,
                            "tx-bytes": 0, "tx-packets": 0, "tx-errs": 0, "tx-dropped": 0}},
            {"name": "eth0", "hardware-address": "52:54:00:12:34:56",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24},
                              {"ip-address-type": "ipv6", "ip-address": "fec0::5054:ff:fe12:3456", "prefix": 64}],
             "statistics": {"rx-bytes": 1180, "rx-packets": 4, "rx-errs": 0, "rx-dropped": 0,
                            "tx-bytes": 1256, "tx-packets": 5, "tx-errs": 0, "tx-dropped": 1}},
            {"name": "sit0"}
        ])
    }

    #[test]
    fn interfaces_and_addresses() {
        let v = interfaces(&reply());
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].name, "eth0");
        assert_eq!(v[1].hwaddr.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(
            v[1].addrs[0],
            GuestAddress {
                ipv6: false,
                addr: "10.0.2.15".into(),
                prefix: 24
            }
        );
        assert!(v[1].addrs[1].ipv6);
        assert!(v[2].hwaddr.is_none() && v[2].addrs.is_empty());
    }

    #[test]
    fn counters_by_mac() {
        let c = counters_for_mac(&reply(), "52:54:00:12:34:56").expect("eth0");
        assert_eq!((c.rx_bytes, c.tx_bytes, c.tx_drop), (1180, 1256, 1));
        assert!(counters_for_mac(&reply(), "52:54:00:00:00:09").is_none());
    }
}
