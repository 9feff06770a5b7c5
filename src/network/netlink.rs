//! Bridges and their addresses through rtnetlink, in the network namespace of the thread
//! that opens the [`Links`] handle.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

use crate::model::MacAddr;

/// What a netlink request failed with, as text for [`super::NetError::Runtime`].
pub type NlResult<T> = std::result::Result<T, String>;

/// Libc's ENODEV/ENOENT come back when a link or address is gone.
fn is_missing(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m)
        if matches!(-m.raw_code(), libc::ENODEV | libc::ENOENT | libc::EADDRNOTAVAIL))
}

/// A link as listed.
#[derive(Debug, Clone)]
pub struct LinkState {
    pub index: u32,
    pub is_bridge: bool,
    pub up: bool,
    pub mac: Option<[u8; 6]>,
}

/// A netlink connection; its socket belongs to the network namespace it was opened in.
pub struct Links {
    handle: Handle,
}

/// A bridge as libvirt sets it up: MTU, STP (its delay before it) and MAC.
pub struct BridgeSpec<'a> {
    pub name: &'a str,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub stp: bool,
    /// Seconds.
    pub delay: u64,
}

impl Links {
    /// Opens the connection; must run inside a tokio runtime (its task is spawned there).
    pub fn open() -> NlResult<Links> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| format!("netlink socket: {e}"))?;
        tokio::spawn(conn);
        Ok(Links { handle })
    }

    /// The link called `name`, if any.
    pub async fn get(&self, name: &str) -> NlResult<Option<LinkState>> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(state_of(&m))),
            Ok(None) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(format!("link {name}: {e}")),
        }
    }

    /// Creates the bridge (down); fails if the name exists.
    pub async fn create_bridge(&self, spec: &BridgeSpec<'_>) -> NlResult<u32> {
        // kernel bridge timers are in hundredths of a second; the delay goes before STP is
        // turned on, as the kernel refuses short delays on a bridge running STP
        let delay = u32::try_from(spec.delay.saturating_mul(100)).unwrap_or(u32::MAX);
        let mut b = LinkBridge::new(spec.name)
            .down()
            .forward_delay(delay)
            .stp_state(if spec.stp {
                BridgeStpState::KernelStp
            } else {
                BridgeStpState::Disabled
            });
        if let Some(m) = spec.mac {
            b = b.address(m.0.to_vec());
        }
        if let Some(m) = spec.mtu {
            b = b.mtu(m);
        }
        self.handle
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(|e| format!("create bridge {}: {e}", spec.name))?;
        self.get(spec.name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| format!("bridge {} vanished after creation", spec.name))
    }

    pub async fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> NlResult<()> {
        match self
            .handle
            .address()
            .add(index, addr, prefix)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(m)) if -m.raw_code() == libc::EEXIST => Ok(()),
            Err(e) => Err(format!("add address {addr}/{prefix}: {e}")),
        }
    }

    /// Addresses on the link.
    pub async fn addresses(&self, index: u32) -> NlResult<Vec<(IpAddr, u8)>> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let mut out = Vec::new();
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(m) = s
            .try_next()
            .await
            .map_err(|e| format!("list addresses: {e}"))?
        {
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a {
                    out.push((*ip, m.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    pub async fn set_up(&self, index: u32) -> NlResult<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| format!("set link up: {e}"))
    }

    /// Deletes the link; a link already gone is fine.
    pub async fn delete(&self, name: &str) -> NlResult<()> {
        let Some(l) = self.get(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(l.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(format!("delete link {name}: {e}")),
        }
    }
}

fn state_of(m: &LinkMessage) -> LinkState {
    let mut is_bridge = false;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::LinkInfo(infos) => {
                is_bridge |= infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)));
            }
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut o = [0u8; 6];
                o.copy_from_slice(b);
                mac = Some(o);
            }
            _ => {}
        }
    }
    LinkState {
        index: m.header.index,
        is_bridge,
        up: m.header.flags.contains(LinkFlags::Up),
        mac,
    }
}
