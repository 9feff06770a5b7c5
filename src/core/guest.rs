//! What runs inside a guest and what it uses: statistics by group, memory statistics, guest
//! agent facts and the addresses of its network interfaces.

use std::sync::Arc;

use super::{
    Core, Domain, Result, host,
    ops::Operation,
    options::{AddressSource, ListFilter, StatsGroup},
};
use crate::drivers::{GuestAddress, GuestInfo, GuestInfoTypes, GuestInterface, MemoryStat, Stats};

impl Core {
    /// The statistics in `groups` (all groups when empty).
    pub async fn stats_in(&self, dom: &Arc<Domain>, groups: &[StatsGroup]) -> Result<Stats> {
        let mut stats = self.stats(dom).await?;
        if !groups.is_empty() {
            stats.retain(|(k, _)| groups.iter().any(|g| k.starts_with(g.prefix())));
        }
        if groups.is_empty() || groups.contains(&StatsGroup::DirtyRate) {
            stats.extend(self.dirty_rate_stats(dom).await);
        }
        Ok(stats)
    }

    /// The statistics of every domain `filter` selects, sorted by name; domains that go
    /// away meanwhile are left out.
    pub async fn all_stats(
        &self,
        filter: &ListFilter,
        groups: &[StatsGroup],
    ) -> Vec<(Arc<Domain>, Stats)> {
        let mut out = Vec::new();
        for dom in self.list(filter) {
            if let Ok(s) = self.stats_in(&dom, groups).await {
                out.push((dom, s));
            }
        }
        out
    }

    /// Memory statistics from the running guest's balloon.
    pub async fn memory_stats(&self, dom: &Arc<Domain>) -> Result<Vec<(MemoryStat, u64)>> {
        let (live, _) = Self::require(dom, Operation::MemoryStats)?;
        Ok(dom.driver.memory_stats(&self.ctx(dom), &live).await?)
    }

    /// What the guest agent reports; the guest must be running (a paused guest's agent
    /// cannot answer).
    pub async fn guest_info(&self, dom: &Arc<Domain>, types: GuestInfoTypes) -> Result<GuestInfo> {
        Self::require(dom, Operation::GuestInfo)?;
        Ok(dom.driver.guest_info(&self.ctx(dom), types).await?)
    }

    /// The guest's interfaces and their addresses, from `source`: the guest agent, the
    /// host's ARP cache (for the guest's MAC addresses), or the DHCP leases of the virtual
    /// networks its `type='network'` interfaces are on.
    pub async fn interface_addresses(
        &self,
        dom: &Arc<Domain>,
        source: AddressSource,
    ) -> Result<Vec<GuestInterface>> {
        let (live, _) = Self::require(dom, Operation::InterfaceAddresses)?;
        match source {
            AddressSource::Lease => Ok(self.lease_addresses(&live).await),
            AddressSource::Agent => {
                let types = GuestInfoTypes {
                    hostname: false,
                    os: false,
                    timezone: false,
                    interfaces: true,
                };
                let info = self.guest_info(dom, types).await?;
                Ok(info.interfaces.unwrap_or_default())
            }
            // as libvirt: one interface per neighbour entry of a guest's MAC, prefix 0
            AddressSource::Arp => {
                let arp = host::arp_table();
                Ok(live
                    .devices
                    .interfaces
                    .iter()
                    .flat_map(|i| {
                        let mac = i.mac.to_string();
                        arp.iter()
                            .filter(|(m, _)| *m == mac)
                            .map(|(_, ip)| GuestInterface {
                                name: i.target_dev.clone().unwrap_or_default(),
                                hwaddr: Some(mac.clone()),
                                addrs: vec![GuestAddress {
                                    ipv6: false,
                                    addr: ip.clone(),
                                    prefix: 0,
                                }],
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect())
            }
        }
    }
}
