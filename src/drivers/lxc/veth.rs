//! A container's `<interface>`s as veth pairs, as libvirt's LXC driver makes them: the
//! host end (`<target dev>`) joins the bridge (`bridge`, or a `network`'s bridge) or stays
//! alone (`ethernet`) and is up; the container end gets the interface's MAC, is moved into
//! the container's network namespace, renamed there (`<guest dev>`, else `eth0`, `eth1`...),
//! given the `<ip>` addresses and `<route>`s, and is up only with addresses or
//! `<link state='up'/>`. The kernel removes a pair when the container's namespace goes;
//! the controller removes the host ends itself as well, so none outlives the container.
//!
//! Run by the controller, which is single-threaded: each step runs on a current-thread
//! runtime of its own that is gone before the container's first process is cloned.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

use crate::drivers::qemu::stats::NetCounters;

/// One veth pair of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Veth {
    /// The host end's name (the live `<target dev>`).
    pub host: String,
    /// The container end's name until it is renamed inside (the live `<guest actual>`).
    pub peer: String,
    /// Its name inside the container.
    pub guest: String,
    pub mac: [u8; 6],
    /// The bridge the host end joins; none for `ethernet`.
    pub bridge: Option<String>,
    /// (address, prefix, peer).
    pub ips: Vec<(IpAddr, u8, Option<IpAddr>)>,
    /// (destination, prefix, gateway, metric).
    pub routes: Vec<(IpAddr, u8, IpAddr, Option<u32>)>,
    /// Whether the container end is set up (addresses, or `<link state='up'/>`).
    pub up: bool,
    /// The host end's addresses and routes (`ethernet`'s `<source><ip>`/`<route>`).
    #[serde(default)]
    pub host_ips: Vec<(IpAddr, u8, Option<IpAddr>)>,
    #[serde(default)]
    pub host_routes: Vec<(IpAddr, u8, IpAddr, Option<u32>)>,
}

type Res<T> = Result<T, String>;

fn run<T>(f: impl AsyncFnOnce(Handle) -> Res<T>) -> Res<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("runtime for netlink: {e}"))?;
    rt.block_on(async {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| format!("netlink socket: {e}"))?;
        let task = tokio::spawn(conn);
        let r = f(handle).await;
        task.abort();
        r
    })
}

async fn index(h: &Handle, name: &str) -> Res<u32> {
    let mut s = h.link().get().match_name(name.to_owned()).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(format!("no link named {name}")),
        Err(e) => Err(format!("link {name}: {e}")),
    }
}

/// Create the pairs in the controller's (the host's) namespace; on failure whatever was
/// made is removed.
pub fn create(veths: &[Veth]) -> Res<()> {
    let r = run(async |h| {
        for v in veths {
            h.link()
                .add(LinkVeth::new(&v.host, &v.peer).build())
                .execute()
                .await
                .map_err(|e| format!("creating veth pair {}/{}: {e}", v.host, v.peer))?;
            let peer = index(&h, &v.peer).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(peer)
                        .address(v.mac.to_vec())
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| format!("setting the MAC of {}: {e}", v.peer))?;
            let host = index(&h, &v.host).await?;
            let mut set = LinkUnspec::new_with_index(host).up();
            if let Some(br) = &v.bridge {
                set = set.controller(index(&h, br).await?);
            }
            h.link()
                .set(set.build())
                .execute()
                .await
                .map_err(|e| match &v.bridge {
                    Some(br) => format!("adding {} to bridge {br}: {e}", v.host),
                    None => format!("setting {} up: {e}", v.host),
                })?;
            address(&h, host, &v.host, &v.host_ips, &v.host_routes).await?;
        }
        Ok(())
    });
    if r.is_err() {
        remove(veths);
    }
    r
}

/// Move the container ends into the network namespace of `pid`.
pub fn move_in(veths: &[Veth], pid: i32) -> Res<()> {
    run(async |h| {
        for v in veths {
            let i = index(&h, &v.peer).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(i)
                        .setns_by_pid(pid as u32)
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| format!("moving {} into the container: {e}", v.peer))?;
        }
        Ok(())
    })
}

/// Rename and address the container ends, from inside the namespace of `pid` (entered
/// for the while, then left).
pub fn configure_inside(veths: &[Veth], pid: i32) -> Res<()> {
    let own = std::fs::File::open("/proc/self/ns/net").map_err(|e| format!("own netns: {e}"))?;
    let theirs = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("the container's netns: {e}"))?;
    nix::sched::setns(&theirs, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering the container's netns: {e}"))?;
    let r = run(async |h| {
        for v in veths {
            let i = index(&h, &v.peer).await?;
            h.link()
                .set(LinkUnspec::new_with_index(i).name(v.guest.clone()).build())
                .execute()
                .await
                .map_err(|e| format!("renaming {} to {}: {e}", v.peer, v.guest))?;
            if v.up {
                h.link()
                    .set(LinkUnspec::new_with_index(i).up().build())
                    .execute()
                    .await
                    .map_err(|e| format!("setting {} up: {e}", v.guest))?;
            }
            address(&h, i, &v.guest, &v.ips, &v.routes).await?;
        }
        Ok(())
    });
    let back = nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET);
    r?;
    back.map_err(|e| format!("leaving the container's netns: {e}"))
}

/// Give link `i` (named `name`) its addresses, then its routes (gateways must be reachable
/// through the addresses).
async fn address(
    h: &Handle,
    i: u32,
    name: &str,
    ips: &[(IpAddr, u8, Option<IpAddr>)],
    routes: &[(IpAddr, u8, IpAddr, Option<u32>)],
) -> Res<()> {
    for (a, p, peer) in ips {
        let mut req = h.address().add(i, *a, *p);
        if let Some(peer) = peer {
            let m = req.message_mut();
            m.attributes
                .retain(|x| !matches!(x, AddressAttribute::Address(_)));
            m.attributes.push(AddressAttribute::Address(*peer));
        }
        req.execute()
            .await
            .map_err(|e| format!("<ip address='{a}' prefix='{p}'> on {name}: {e}"))?;
    }
    for (dst, p, gw, metric) in routes {
        let what = format!("<route address='{dst}' prefix='{p}' gateway='{gw}'>");
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(*dst, *p)
            .and_then(|b| b.gateway(*gw))
            .map_err(|e| format!("{what}: {e}"))?
            .output_interface(i);
        if let Some(m) = metric {
            b = b.priority(*m);
        }
        h.route()
            .add(b.build())
            .execute()
            .await
            .map_err(|e| format!("{what} on {name}: {e}"))?;
    }
    Ok(())
}

/// Delete the host ends (and so their pairs); ends already gone are fine.
pub fn remove(veths: &[Veth]) {
    let _ = run(async |h| {
        for v in veths {
            if let Ok(i) = index(&h, &v.host).await {
                let _ = h.link().del(i).execute().await;
            }
            if let Ok(i) = index(&h, &v.peer).await {
                let _ = h.link().del(i).execute().await;
            }
        }
        Ok(())
    });
}

/// A netlink connection on the caller's runtime (the daemon's), in its network namespace.
fn connect() -> Res<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("netlink socket: {e}"))?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn link(h: &Handle, name: &str) -> Res<Option<LinkMessage>> {
    let mut s = h.link().get().match_name(name.to_owned()).execute();
    match s.try_next().await {
        Ok(m) => Ok(m),
        Err(rtnetlink::Error::NetlinkError(m))
            if matches!(-m.raw_code(), libc::ENODEV | libc::ENOENT) =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("link {name}: {e}")),
    }
}

/// The bridges the pairs join must exist and be bridges, and no host end may exist yet:
/// checked by the daemon before a start (through netlink: `/sys/class/net` may show
/// another namespace than the daemon's). The error names the bridge or device.
pub async fn check(veths: &[Veth]) -> Result<(), (bool, String)> {
    let h = connect().map_err(|e| (false, e))?;
    for v in veths {
        if let Some(br) = &v.bridge {
            let m = link(&h, br).await.map_err(|e| (false, e))?;
            let is_bridge = m.is_some_and(|m| {
                m.attributes.iter().any(|a| {
                    matches!(a, LinkAttribute::LinkInfo(i)
                        if i.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))))
                })
            });
            if !is_bridge {
                return Err((
                    true,
                    format!("<source bridge='{br}'> is not an existing bridge"),
                ));
            }
        }
        if link(&h, &v.host).await.map_err(|e| (false, e))?.is_some() {
            return Err((
                true,
                format!("<target dev='{}'>: a device of that name exists", v.host),
            ));
        }
    }
    Ok(())
}

/// Each host end's counters, swapped to the container's point of view (what the host end
/// sends, the container receives), as libvirt reports a container's interfaces.
pub async fn counters(hosts: &[Option<String>]) -> Vec<Option<NetCounters>> {
    let Ok(h) = connect() else {
        return vec![None; hosts.len()];
    };
    let mut out = Vec::new();
    for name in hosts {
        let m = match name {
            Some(n) => link(&h, n).await.ok().flatten(),
            None => None,
        };
        out.push(m.and_then(|m| {
            m.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::Stats64(s) => Some(NetCounters {
                    rx_bytes: s.tx_bytes,
                    rx_pkts: s.tx_packets,
                    rx_errs: s.tx_errors,
                    rx_drop: s.tx_dropped,
                    tx_bytes: s.rx_bytes,
                    tx_pkts: s.rx_packets,
                    tx_errs: s.rx_errors,
                    tx_drop: s.rx_dropped,
                }),
                _ => None,
            })
        }));
    }
    out
}
