//! An interface's traffic shaping (`<interface><bandwidth>`, virsh's `domiftune`): read from
//! and set in the running guest (through its driver) and the persistent definition, merged
//! as libvirt's QEMU driver merges it.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Result, error::OptionError, events::lock, ops::Operation, options::Affect,
};
use crate::{
    drivers::TuneGroup,
    model::{
        DomainDef,
        devices::{Bandwidth, Interface, InterfaceType, Rate},
        values::MacAddr,
    },
};

/// The rates a `domiftune` call gives; a direction is `specified` when its average (or,
/// inbound, its floor) was given, which is what replaces or (all zero) removes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BandwidthChange {
    pub inbound: Rate,
    pub outbound: Rate,
    pub inbound_specified: bool,
    pub outbound_specified: bool,
}

impl BandwidthChange {
    /// libvirt's direction to set: one with an average (or an inbound floor).
    fn inbound(&self) -> Option<Rate> {
        self.inbound.is_set().then_some(self.inbound)
    }

    fn outbound(&self) -> Option<Rate> {
        (self.outbound.average != 0).then_some(self.outbound)
    }

    /// `old` with this change: a direction given replaces the old one, a direction given
    /// as zero removes it, the other stays.
    pub fn merge(&self, old: Option<Bandwidth>) -> Option<Bandwidth> {
        let old = old.unwrap_or_default();
        let pick = |new: Option<Rate>, specified: bool, old: Option<Rate>| match new {
            Some(r) => Some(r),
            None if specified => None,
            None => old,
        };
        let b = Bandwidth {
            inbound: pick(self.inbound(), self.inbound_specified, old.inbound),
            outbound: pick(self.outbound(), self.outbound_specified, old.outbound),
        };
        (!b.is_empty()).then_some(b)
    }
}

/// libvirt's `virDomainNetFind`: by MAC address, or else by host device name.
fn find<'a>(def: &'a DomainDef, device: &str) -> Result<(usize, &'a Interface)> {
    let ifs = &def.devices.interfaces;
    let found = match device.parse::<MacAddr>() {
        Ok(mac) => ifs.iter().position(|i| i.mac == mac),
        Err(_) => ifs
            .iter()
            .position(|i| i.target_dev.as_deref() == Some(device)),
    };
    found
        .map(|i| (i, &ifs[i]))
        .ok_or_else(|| Error::InvalidArgument(format!("'{device}' is not a known interface")))
}

/// libvirt's `virNetDevSupportsBandwidth`: interfaces with a host device to shape.
fn shapeable(i: &Interface) -> Result<()> {
    match i.iface_type {
        InterfaceType::Bridge
        | InterfaceType::Network
        | InterfaceType::Direct
        | InterfaceType::Ethernet => Ok(()),
        t => Err(Error::NotSupported(format!(
            "setting bandwidth on interfaces of type '{t}' is not implemented yet"
        ))),
    }
}

impl Core {
    /// The `<bandwidth>` of interface `device` (MAC address or host device name) in the
    /// running guest or the persistent definition.
    pub fn interface_bandwidth(
        &self,
        dom: &Domain,
        device: &str,
        affect: Affect,
    ) -> Result<Option<Bandwidth>> {
        let def = {
            let d = lock(&dom.data);
            if d.removed {
                return Err(dom.gone());
            }
            d.def_for_read(affect, Operation::ReadTunables)?.clone()
        };
        Ok(find(&def, device)?.1.bandwidth)
    }

    /// Change the `<bandwidth>` of interface `device`: the running guest's tap is reshaped
    /// (its driver's), the persistent definition stored, as `affect` says.
    pub async fn set_interface_bandwidth(
        &self,
        dom: &Arc<Domain>,
        device: String,
        change: BandwidthChange,
        affect: Affect,
    ) -> Result<()> {
        // libvirt's test driver changes one definition and checks neither type nor floor
        let test = dom.driver.name() == "test";
        if test && affect.live && affect.config {
            return Err(Error::Options(OptionError::Exclusive("live", "config")));
        }
        let _job = dom.begin_job("tune").await?;
        // libvirt checks the interface in both definitions before changing either, then a
        // live floor (which needs a network that shapes)
        let mut floor_on = None;
        if !test {
            let d = lock(&dom.data);
            let t = affect.resolve(
                &d.def.name,
                Operation::SetTunables,
                d.status.state,
                d.persistent,
            )?;
            if t.live
                && let Some(l) = &d.live
            {
                let (_, iface) = find(l, &device)?;
                shapeable(iface)?;
                if change.inbound().is_some_and(|r| r.floor != 0) {
                    floor_on = Some(iface.clone());
                }
            }
            if t.config {
                shapeable(find(&d.def, &device)?.1)?;
            }
        }
        if let Some(iface) = floor_on {
            let mac = iface.mac.to_string();
            if iface.iface_type != InterfaceType::Network {
                return Err(Error::NotSupported(format!(
                    "Invalid use of 'floor' on interface with MAC address {mac} - 'floor' is \
                     only supported for interface type 'network' with forward type 'nat', \
                     'route', 'open' or none"
                )));
            }
            let network = iface.source_network.unwrap_or_default();
            let nets = self.networks()?;
            return Err(super::network_ops::floor_refused(nets, &network, &mac).await);
        }
        let r = Self::plan_resize(dom, Operation::SetTunables, affect, |def, _| {
            let mut def = def.clone();
            let (i, _) = find(&def, &device)?;
            let iface = &mut def.devices.interfaces[i];
            iface.bandwidth = change.merge(iface.bandwidth);
            Ok(def)
        })?;
        if let Some(l) = &r.live {
            let (_, iface) = find(l, &device)?;
            let group = TuneGroup::Bandwidth { mac: iface.mac };
            dom.driver.apply_tunables(&self.ctx(dom), l, group).await?;
        }
        self.commit_resize(dom, r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(average: u64) -> Rate {
        Rate {
            average,
            ..Rate::default()
        }
    }

    #[test]
    fn merged_as_libvirt_merges() {
        let old = Some(Bandwidth {
            inbound: Some(rate(100)),
            outbound: Some(rate(200)),
        });
        // a direction not given stays
        let c = BandwidthChange {
            inbound: rate(5),
            inbound_specified: true,
            ..Default::default()
        };
        assert_eq!(
            c.merge(old),
            Some(Bandwidth {
                inbound: Some(rate(5)),
                outbound: Some(rate(200)),
            })
        );
        // zero removes it; both gone is no <bandwidth>
        let c = BandwidthChange {
            inbound_specified: true,
            outbound_specified: true,
            ..Default::default()
        };
        assert_eq!(c.merge(old), None);
        // a peak without an average changes nothing (libvirt drops it)
        let c = BandwidthChange {
            inbound: Rate {
                peak: 9,
                ..Rate::default()
            },
            ..Default::default()
        };
        assert_eq!(c.merge(old), old);
    }
}
