//! The host's network interfaces and node devices for the front ends: [`crate::host`]'s
//! readers over the live system, with their errors as the core's.
//!
//! A listing walks a few hundred sysfs files, on the caller's (async) thread; listings are
//! kept for a second, so that a client polling GetManagedObjects in a loop cannot make the
//! daemon re-read /sys for every call (other peers keep their latency).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{Error, Missing, Result};
use crate::host::{
    self,
    interfaces::{self, Filter, HostInterface},
    nodedev::{self, NodeDevice},
};
use crate::util::lock;

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

/// How long a listing is reused.
const FRESH: Duration = Duration::from_secs(1);

type Slot<T> = Mutex<Option<(Instant, Arc<Vec<T>>)>>;

static INTERFACES: Slot<HostInterface> = Mutex::new(None);
static DEVICES: Slot<NodeDevice> = Mutex::new(None);

/// The listing in `slot` if it is fresh, else a new one from `read`.
fn cached<T>(slot: &Slot<T>, read: impl FnOnce() -> Result<Vec<T>>) -> Result<Arc<Vec<T>>> {
    let mut s = lock(slot);
    if let Some((at, v)) = &*s
        && at.elapsed() < FRESH
    {
        return Ok(v.clone());
    }
    let v = Arc::new(read()?);
    *s = Some((Instant::now(), v.clone()));
    Ok(v)
}

/// The listed interfaces (bridge ports and guests' taps left out, as libvirt lists them).
pub fn interfaces(filter: Filter) -> Result<Vec<HostInterface>> {
    let all = cached(&INTERFACES, || {
        Ok(interfaces::Reader::host()?.list(Filter::default()))
    })?;
    Ok(all
        .iter()
        .filter(|i| filter.admits(i.active()))
        .cloned()
        .collect())
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
    if flags & INACTIVE != 0 && flags & (1 << 31) == 0 {
        return Ok(Vec::new());
    }
    let devs = cached(&DEVICES, || Ok(nodedev::Reader::host().list()))?;
    Ok(devs
        .iter()
        .filter(|d| nodedev::caps_match(&d.cap_names(), flags))
        .cloned()
        .collect())
}

/// One node device by name.
pub fn node_device(name: &str) -> Result<NodeDevice> {
    node_devices(0)?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| host::Error::NoDevice(name.to_owned()).into())
}

/// libvirt's capability flag for a capability name (`NodeListDevices`' `cap` argument).
pub fn cap_flag(cap: &str) -> Result<u32> {
    nodedev::CAP_FLAGS
        .iter()
        .position(|c| *c == cap)
        .map(|i| 1 << i)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown node device capability '{cap}'")))
}
