//! The host's network interfaces and node devices for the front ends: [`crate::host`]'s
//! readers over the live system, with their errors as the core's.

use super::{Error, Missing, Result};
use crate::host::{
    self,
    interfaces::{self, Filter, HostInterface},
    nodedev::{self, NodeDevice},
};

impl From<host::Error> for Error {
    fn from(e: host::Error) -> Self {
        match e {
            host::Error::NoInterface(_) | host::Error::NoInterfaceMac(_) => {
                Error::NotFound(Missing::Interface, e.to_string())
            }
            host::Error::NoDevice(_) => Error::NotFound(Missing::NodeDevice, e.to_string()),
            e => Error::Failed(e.to_string()),
        }
    }
}

/// The listed interfaces (bridge ports and guests' taps left out, as libvirt lists them).
pub fn interfaces(filter: Filter) -> Result<Vec<HostInterface>> {
    Ok(interfaces::Reader::host()?.list(filter))
}

pub fn interface(name: &str) -> Result<HostInterface> {
    Ok(interfaces::Reader::host()?.read(name)?)
}

pub fn interface_by_mac(mac: &str) -> Result<HostInterface> {
    Ok(interfaces::Reader::host()?.by_mac(mac)?)
}

/// The node devices whose capabilities pass libvirt's capability `flags` (none: all).
/// The active/inactive bits are accepted: every device read from sysfs is active.
pub fn node_devices(flags: u32) -> Result<Vec<NodeDevice>> {
    const INACTIVE: u32 = 1 << 30;
    let devs = nodedev::Reader::host().list();
    if flags & INACTIVE != 0 && flags & (1 << 31) == 0 {
        return Ok(Vec::new());
    }
    Ok(devs
        .into_iter()
        .filter(|d| nodedev::caps_match(&d.cap_names(), flags))
        .collect())
}

/// One node device by name.
pub fn node_device(name: &str) -> Result<NodeDevice> {
    Ok(nodedev::Reader::host().lookup(name)?)
}

/// libvirt's capability flag for a capability name (`NodeListDevices`' `cap` argument).
pub fn cap_flag(cap: &str) -> Result<u32> {
    nodedev::CAP_FLAGS
        .iter()
        .position(|c| *c == cap)
        .map(|i| 1 << i)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown node device capability '{cap}'")))
}
