//! What libvirt's network driver fills in when a network is defined, and the checks against
//! the other networks and the host that a definition alone cannot make.

use super::def::{Bridge, ForwardMode, NetworkDef};
use super::error::{NetError, Result};
use crate::model::MacAddr;

/// libvirt's template when no bridge name is given.
const BRIDGE_TEMPLATE: &str = "virbr%d";
/// libvirt gives up after this many candidates.
const MAX_BRIDGE_ID: u32 = 256;

/// Fills in the bridge name (the lowest free `virbrN`, or the given `%d` template), STP and
/// delay, and a MAC for the bridge, as libvirt does for networks with a bridge of their own.
/// `taken` says whether an interface name is used (by another network or the host).
pub fn fill(def: &mut NetworkDef, taken: &dyn Fn(&str) -> bool) -> Result<()> {
    if !def.is_virtual() {
        return Ok(());
    }
    let bridge = def.bridge.get_or_insert_with(Bridge::default);
    let template = match &bridge.name {
        Some(n) if n.contains("%d") => Some(n.clone()),
        Some(_) => None,
        None => Some(BRIDGE_TEMPLATE.to_string()),
    };
    if let Some(t) = template {
        let free = (0..=MAX_BRIDGE_ID)
            .map(|i| t.replace("%d", &i.to_string()))
            .find(|n| !taken(n))
            .ok_or_else(|| NetError::NotSupported(format!("a free bridge name from '{t}'")))?;
        bridge.name = Some(free);
    }
    bridge.stp.get_or_insert(true);
    bridge.delay.get_or_insert(0);
    if def.mac.is_none() {
        def.mac = Some(MacAddr::random_qemu());
    }
    Ok(())
}

/// Refuses a definition whose bridge name or subnets another network already has.
pub fn check_against<'a>(
    def: &NetworkDef,
    others: impl IntoIterator<Item = &'a NetworkDef>,
) -> Result<()> {
    for other in others {
        if other.name == def.name {
            continue;
        }
        if let (Some(a), Some(b)) = (def.bridge_name(), other.bridge_name())
            && a == b
            && def.is_virtual()
        {
            return Err(NetError::Conflict {
                path: "/network/bridge/@name".into(),
                value: a.to_string(),
                other: other.name.clone(),
                reason: "bridge name already in use",
            });
        }
        for (i, ip) in def.ips.iter().enumerate() {
            let mine = ip.subnet();
            if let Some(theirs) = other
                .ips
                .iter()
                .map(|o| o.subnet())
                .find(|s| s.overlaps(&mine))
            {
                return Err(NetError::Conflict {
                    path: format!("/network/ip[{}]/@address", i + 1),
                    value: mine.cidr(),
                    other: other.name.clone(),
                    reason: if theirs.cidr() == mine.cidr() {
                        "same subnet"
                    } else {
                        "overlapping subnet"
                    },
                });
            }
        }
    }
    Ok(())
}

/// libvirt's `/usr/share/libvirt/networks/default.xml`: the NAT network `default` on
/// virbr0 with 192.168.122.0/24.
pub const DEFAULT_NETWORK_XML: &str = "<network>
  <name>default</name>
  <bridge name='virbr0'/>
  <forward/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
";

/// Whether forward mode needs IP forwarding turned on.
pub fn needs_ip_forward(def: &NetworkDef) -> bool {
    matches!(def.mode(), Some(ForwardMode::Nat | ForwardMode::Route))
}
