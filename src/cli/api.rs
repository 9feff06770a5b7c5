//! Typed calls of the native API (`org.virtbus1.*`, described by `dbus/*.xml`).
//!
//! Every method, property and signal the client uses is a constant here, typed by its Rust
//! argument and result types. Their D-Bus signatures are derived from those types, so a test
//! (`tests/cli/api.rs`) can check each against the interface XML: the client cannot drift from
//! the API. Calls go through [`Bus::call`], which sets the interactive-authorization flag when
//! the user can answer a polkit prompt (zbus's `#[proxy]` fixes that flag per method at
//! compile time, which is why the proxies are written as data).

use std::{collections::HashMap, marker::PhantomData};

use serde::{Serialize, de::DeserializeOwned};
use zbus::{OwnedObjectPath, OwnedVariant, Variant, proxy::MethodFlags, zvariant::Type};

pub const SERVICE: &str = "org.virtbus1";
pub const MANAGER_PATH: &str = "/org/virtbus1";
pub const MANAGER: &str = "org.virtbus1.Manager";
pub const DOMAIN: &str = "org.virtbus1.Domain";
pub const SNAPSHOT: &str = "org.virtbus1.Snapshot";
pub const NETWORK: &str = "org.virtbus1.Network";
pub const POOL: &str = "org.virtbus1.StoragePool";
pub const VOLUME: &str = "org.virtbus1.StorageVolume";

/// An options dictionary (`a{sv}`).
pub type Opts = HashMap<String, Variant<'static>>;
/// A property map as GetAll and GetManagedObjects return it.
pub type PropMap = HashMap<String, OwnedVariant>;

/// Options from `(key, value)` pairs; `false` flags are left out, as the daemon's defaults.
pub fn opts<const N: usize>(pairs: [(&str, Variant<'static>); N]) -> Opts {
    pairs
        .into_iter()
        .filter(|(_, v)| !matches!(v, Variant::Bool(false)))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// What kind of member a constant names, for the drift test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // read by the drift test (tests/cli/api.rs), not by the commands
pub enum Kind {
    Method,
    Property { writable: bool },
    Signal,
}

/// One member of an interface with its signatures, as the interface XML writes them.
#[allow(dead_code)] // read by the drift test (tests/cli/api.rs), not by the commands
pub trait Member: Sync {
    fn iface(&self) -> &'static str;
    fn name(&self) -> &'static str;
    fn kind(&self) -> Kind;
    /// The in-arguments (methods), the arguments (signals) or the type (properties).
    fn in_sig(&self) -> String;
    /// The out-arguments of a method; empty otherwise.
    fn out_sig(&self) -> String;
}

/// The signature of a message body carrying `T`: a tuple's fields, one after another.
#[allow(dead_code)] // read by the drift test (tests/cli/api.rs), not by the commands
fn body_sig<T: Type>() -> String {
    let s = T::SIGNATURE.to_string();
    match s.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        Some(inner) => inner.to_owned(),
        None => s,
    }
}

/// A method taking the tuple `I` and returning `O` (`()` for none).
pub struct Method<I, O> {
    iface: &'static str,
    name: &'static str,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Method<I, O> {
    pub const fn new(iface: &'static str, name: &'static str) -> Self {
        Self {
            iface,
            name,
            _types: PhantomData,
        }
    }
}

impl<I: Type, O: Type> Member for Method<I, O> {
    fn iface(&self) -> &'static str {
        self.iface
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn kind(&self) -> Kind {
        Kind::Method
    }
    fn in_sig(&self) -> String {
        body_sig::<I>()
    }
    fn out_sig(&self) -> String {
        body_sig::<O>()
    }
}

/// A property of type `T`.
pub struct Prop<T> {
    iface: &'static str,
    name: &'static str,
    writable: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T> Prop<T> {
    pub const fn read(iface: &'static str, name: &'static str) -> Self {
        Self {
            iface,
            name,
            writable: false,
            _type: PhantomData,
        }
    }
    pub const fn read_write(iface: &'static str, name: &'static str) -> Self {
        Self {
            iface,
            name,
            writable: true,
            _type: PhantomData,
        }
    }
}

impl<T> Prop<T>
where
    T: TryFrom<OwnedVariant>,
{
    /// The property's value in a map from GetAll, GetManagedObjects or PropertiesChanged.
    pub fn in_map(&self, map: &PropMap) -> Option<T> {
        map.get(self.name)
            .and_then(|v| v.try_clone().ok())
            .and_then(|v| T::try_from(v).ok())
    }
}

impl<T: Type> Member for Prop<T> {
    fn iface(&self) -> &'static str {
        self.iface
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn kind(&self) -> Kind {
        Kind::Property {
            writable: self.writable,
        }
    }
    fn in_sig(&self) -> String {
        T::SIGNATURE.to_string()
    }
    fn out_sig(&self) -> String {
        String::new()
    }
}

/// A signal whose body is the tuple `T`.
pub struct Signal<T> {
    iface: &'static str,
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> Signal<T> {
    pub const fn new(iface: &'static str, name: &'static str) -> Self {
        Self {
            iface,
            name,
            _type: PhantomData,
        }
    }
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T: Type> Member for Signal<T> {
    fn iface(&self) -> &'static str {
        self.iface
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn kind(&self) -> Kind {
        Kind::Signal
    }
    fn in_sig(&self) -> String {
        body_sig::<T>()
    }
    fn out_sig(&self) -> String {
        String::new()
    }
}

/// A connection to the bus the daemon is on, with the caller's polkit stance.
pub struct Bus {
    pub conn: zbus::Connection,
    /// Set the interactive-authorization flag on calls that change something.
    pub interactive: bool,
}

impl Bus {
    /// Call `method` on the object at `path`. Calls that change something may ask polkit for
    /// interactive authorization; reads never do.
    pub async fn call<I, O>(&self, method: &Method<I, O>, path: &str, args: &I) -> zbus::Result<O>
    where
        I: Serialize + Type,
        O: DeserializeOwned + Type,
    {
        self.call_flagged(method, path, args, false).await
    }

    /// As [`Bus::call`], for a call that changes something.
    pub async fn change<I, O>(&self, method: &Method<I, O>, path: &str, args: &I) -> zbus::Result<O>
    where
        I: Serialize + Type,
        O: DeserializeOwned + Type,
    {
        self.call_flagged(method, path, args, true).await
    }

    async fn call_flagged<I, O>(
        &self,
        method: &Method<I, O>,
        path: &str,
        args: &I,
        changes: bool,
    ) -> zbus::Result<O>
    where
        I: Serialize + Type,
        O: DeserializeOwned + Type,
    {
        let proxy = self.proxy(path, method.iface).await?;
        let flags = if changes && self.interactive {
            MethodFlags::ALLOW_INTERACTIVE_AUTH
        } else {
            MethodFlags::empty()
        };
        proxy
            .call_with_flags(method.name, flags, args)
            .await?
            .ok_or_else(|| zbus::Error::Failure(format!("{} sent no reply", method.name)))
    }

    async fn proxy(&self, path: &str, iface: &'static str) -> zbus::Result<zbus::Proxy<'static>> {
        zbus::proxy::Builder::new(&self.conn)
            .destination(SERVICE)
            .path(path.to_owned())
            .interface(iface)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
    }

    /// Every property of `iface` on the object at `path`.
    pub async fn get_all(&self, path: &str, iface: &'static str) -> zbus::Result<PropMap> {
        let props = self.properties(path).await?;
        let iface = zbus::names::InterfaceName::from_static_str(iface)?;
        Ok(props.get_all(iface).await?)
    }

    /// One property.
    pub async fn get<T>(&self, prop: &Prop<T>, path: &str) -> zbus::Result<T>
    where
        T: TryFrom<OwnedVariant>,
    {
        let props = self.properties(path).await?;
        let iface = zbus::names::InterfaceName::from_static_str(prop.iface)?;
        let v = props.get(iface, prop.name).await?;
        T::try_from(v).map_err(|_| {
            zbus::Error::Failure(format!("property {} has an unexpected type", prop.name))
        })
    }

    /// Set a writable property (a change: it may ask polkit interactively).
    pub async fn set<T>(&self, prop: &Prop<T>, path: &str, value: T) -> zbus::Result<()>
    where
        T: Into<Variant<'static>>,
    {
        let proxy = self.proxy(path, "org.freedesktop.DBus.Properties").await?;
        let flags = if self.interactive {
            MethodFlags::ALLOW_INTERACTIVE_AUTH
        } else {
            MethodFlags::empty()
        };
        let body = (prop.iface, prop.name, value.into());
        let _: Option<()> = proxy.call_with_flags("Set", flags, &body).await?;
        Ok(())
    }

    async fn properties(&self, path: &str) -> zbus::Result<zbus::fdo::PropertiesProxy<'static>> {
        zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination(SERVICE)
            .path(path.to_owned())
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
    }

    /// Every domain and snapshot with its properties, in one call.
    pub async fn managed_objects(
        &self,
    ) -> zbus::Result<HashMap<OwnedObjectPath, HashMap<String, PropMap>>> {
        let om = zbus::fdo::ObjectManagerProxy::builder(&self.conn)
            .destination(SERVICE)
            .path(MANAGER_PATH)
            .build()
            .await?;
        let objects = om.get_managed_objects().await?;
        Ok(objects
            .into_iter()
            .map(|(path, ifaces)| {
                let ifaces = ifaces
                    .into_iter()
                    .map(|(i, props)| (i.to_string(), props))
                    .collect();
                (path, ifaces)
            })
            .collect())
    }
}

/// `org.virtbus1.Manager`.
pub mod manager {
    use super::*;

    pub const DEFINE_DOMAIN: Method<(String, Opts), OwnedObjectPath> =
        Method::new(MANAGER, "DefineDomain");
    pub const CREATE_DOMAIN: Method<(String, Opts), OwnedObjectPath> =
        Method::new(MANAGER, "CreateDomain");
    pub const LIST_DOMAINS: Method<(Opts,), Vec<OwnedObjectPath>> =
        Method::new(MANAGER, "ListDomains");
    pub const LOOKUP_DOMAIN: Method<(String,), OwnedObjectPath> =
        Method::new(MANAGER, "LookupDomain");
    pub const GET_ALL_DOMAIN_STATS: Method<
        (Opts,),
        HashMap<OwnedObjectPath, HashMap<String, OwnedVariant>>,
    > = Method::new(MANAGER, "GetAllDomainStats");
    pub const DOMAIN_EVENT: Signal<(OwnedObjectPath, String, String)> =
        Signal::new(MANAGER, "DomainEvent");
    pub const VERSION: Prop<String> = Prop::read(MANAGER, "Version");
    pub const HOSTNAME: Prop<String> = Prop::read(MANAGER, "Hostname");
}

/// `org.virtbus1.Domain`.
pub mod domain {
    use super::*;

    /// The lifecycle methods, all `(a{sv}) → ()`.
    pub type Action = Method<(Opts,), ()>;
    pub const START: Action = Method::new(DOMAIN, "Start");
    pub const SHUTDOWN: Action = Method::new(DOMAIN, "Shutdown");
    pub const DESTROY: Action = Method::new(DOMAIN, "Destroy");
    pub const REBOOT: Action = Method::new(DOMAIN, "Reboot");
    pub const RESET: Action = Method::new(DOMAIN, "Reset");
    pub const SUSPEND: Action = Method::new(DOMAIN, "Suspend");
    pub const RESUME: Action = Method::new(DOMAIN, "Resume");
    pub const UNDEFINE: Action = Method::new(DOMAIN, "Undefine");
    pub const MANAGED_SAVE: Action = Method::new(DOMAIN, "ManagedSave");
    pub const MANAGED_SAVE_REMOVE: Action = Method::new(DOMAIN, "ManagedSaveRemove");
    pub const GET_XML: Method<(Opts,), String> = Method::new(DOMAIN, "GetXML");
    pub const GET_STATS: Method<(Opts,), HashMap<String, OwnedVariant>> =
        Method::new(DOMAIN, "GetStats");
    pub const CREATE_SNAPSHOT: Method<(String, Opts), OwnedObjectPath> =
        Method::new(DOMAIN, "CreateSnapshot");
    pub const LIST_SNAPSHOTS: Method<(Opts,), Vec<OwnedObjectPath>> =
        Method::new(DOMAIN, "ListSnapshots");
    pub const LOOKUP_SNAPSHOT: Method<(String,), OwnedObjectPath> =
        Method::new(DOMAIN, "LookupSnapshot");
    pub const ATTACH_DEVICE: Method<(String, Opts), ()> = Method::new(DOMAIN, "AttachDevice");
    pub const DETACH_DEVICE: Method<(String, Opts), ()> = Method::new(DOMAIN, "DetachDevice");
    /// A guest interface: (name, hardware address, [(type, address, prefix)]).
    pub type GuestInterface = (String, String, Vec<(i32, String, u32)>);
    pub const OPEN_CONSOLE: Method<(String, Opts), zbus::OwnedFd> =
        Method::new(DOMAIN, "OpenConsole");
    pub const INTERFACE_ADDRESSES: Method<(Opts,), Vec<GuestInterface>> =
        Method::new(DOMAIN, "InterfaceAddresses");

    pub const REBOOTED: Signal<()> = Signal::new(DOMAIN, "Rebooted");
    pub const DEVICE_ADDED: Signal<(String,)> = Signal::new(DOMAIN, "DeviceAdded");
    pub const DEVICE_REMOVED: Signal<(String,)> = Signal::new(DOMAIN, "DeviceRemoved");
    pub const METADATA_CHANGED: Signal<(String, String)> = Signal::new(DOMAIN, "MetadataChanged");

    pub const NAME: Prop<String> = Prop::read(DOMAIN, "Name");
    pub const UUID: Prop<String> = Prop::read(DOMAIN, "UUID");
    pub const TITLE: Prop<String> = Prop::read(DOMAIN, "Title");
    pub const ID: Prop<i32> = Prop::read(DOMAIN, "Id");
    pub const DRIVER: Prop<String> = Prop::read(DOMAIN, "Driver");
    pub const STATE: Prop<String> = Prop::read(DOMAIN, "State");
    pub const STATE_REASON: Prop<String> = Prop::read(DOMAIN, "StateReason");
    pub const ACTIVE: Prop<bool> = Prop::read(DOMAIN, "Active");
    pub const PERSISTENT: Prop<bool> = Prop::read(DOMAIN, "Persistent");
    pub const AUTOSTART: Prop<bool> = Prop::read_write(DOMAIN, "Autostart");
    pub const HAS_MANAGED_SAVE: Prop<bool> = Prop::read(DOMAIN, "HasManagedSave");
    pub const VCPUS: Prop<u32> = Prop::read(DOMAIN, "VCPUs");
    pub const MEMORY_KIB: Prop<u64> = Prop::read(DOMAIN, "MemoryKiB");
    pub const CURRENT_SNAPSHOT: Prop<OwnedObjectPath> = Prop::read(DOMAIN, "CurrentSnapshot");
    pub const SNAPSHOT_COUNT: Prop<u32> = Prop::read(DOMAIN, "SnapshotCount");
    pub const WARNING: Prop<String> = Prop::read(DOMAIN, "Warning");
    pub const JOB: Prop<String> = Prop::read(DOMAIN, "Job");
    pub const JOB_PROGRESS: Prop<f64> = Prop::read(DOMAIN, "JobProgress");
}

/// `org.virtbus1.Snapshot`.
pub mod snapshot {
    use super::*;

    pub const GET_XML: Method<(Opts,), String> = Method::new(SNAPSHOT, "GetXML");
    pub const REVERT: Method<(Opts,), ()> = Method::new(SNAPSHOT, "Revert");
    pub const DELETE: Method<(Opts,), ()> = Method::new(SNAPSHOT, "Delete");

    pub const NAME: Prop<String> = Prop::read(SNAPSHOT, "Name");
    pub const DESCRIPTION: Prop<String> = Prop::read(SNAPSHOT, "Description");
    pub const DOMAIN_PATH: Prop<OwnedObjectPath> = Prop::read(SNAPSHOT, "Domain");
    pub const PARENT: Prop<OwnedObjectPath> = Prop::read(SNAPSHOT, "Parent");
    pub const CREATION_TIME: Prop<u64> = Prop::read(SNAPSHOT, "CreationTime");
    pub const STATE: Prop<String> = Prop::read(SNAPSHOT, "State");
    pub const IS_CURRENT: Prop<bool> = Prop::read(SNAPSHOT, "IsCurrent");
    pub const KIND: Prop<String> = Prop::read(SNAPSHOT, "Kind");
}

/// `org.virtbus1.Manager`'s network and storage members.
pub mod manager_net {
    use super::*;

    pub const DEFINE_NETWORK: Method<(String, Opts), OwnedObjectPath> =
        Method::new(MANAGER, "DefineNetwork");
    pub const CREATE_NETWORK: Method<(String, Opts), OwnedObjectPath> =
        Method::new(MANAGER, "CreateNetwork");
    pub const LIST_NETWORKS: Method<(), Vec<OwnedObjectPath>> =
        Method::new(MANAGER, "ListNetworks");
    pub const DEFINE_POOL: Method<(String, Opts), OwnedObjectPath> =
        Method::new(MANAGER, "DefinePool");
    pub const CREATE_POOL: Method<(String, Opts), OwnedObjectPath> =
        Method::new(MANAGER, "CreatePool");
    pub const LIST_POOLS: Method<(Opts,), Vec<OwnedObjectPath>> = Method::new(MANAGER, "ListPools");
    pub const LOOKUP_VOLUME_BY_PATH: Method<(String,), OwnedObjectPath> =
        Method::new(MANAGER, "LookupVolumeByPath");
}

/// `org.virtbus1.Network`.
pub mod network {
    use super::*;

    pub const START: Method<(), ()> = Method::new(NETWORK, "Start");
    pub const STOP: Method<(), ()> = Method::new(NETWORK, "Stop");
    pub const UNDEFINE: Method<(), ()> = Method::new(NETWORK, "Undefine");
    pub const GET_XML: Method<(Opts,), String> = Method::new(NETWORK, "GetXML");
    pub const UPDATE: Method<(String, String, String, Opts), ()> = Method::new(NETWORK, "Update");
    pub const GET_DHCP_LEASES: Method<(Opts,), Vec<PropMap>> =
        Method::new(NETWORK, "GetDHCPLeases");

    pub const NAME: Prop<String> = Prop::read(NETWORK, "Name");
    pub const UUID: Prop<String> = Prop::read(NETWORK, "UUID");
    pub const ACTIVE: Prop<bool> = Prop::read(NETWORK, "Active");
    pub const PERSISTENT: Prop<bool> = Prop::read(NETWORK, "Persistent");
    pub const AUTOSTART: Prop<bool> = Prop::read_write(NETWORK, "Autostart");
    pub const BRIDGE: Prop<String> = Prop::read(NETWORK, "Bridge");
}

/// `org.virtbus1.StoragePool`.
pub mod pool {
    use super::*;

    /// The pool actions, all `(a{sv}) → ()`.
    pub type Action = Method<(Opts,), ()>;
    pub const START: Action = Method::new(POOL, "Start");
    pub const STOP: Action = Method::new(POOL, "Stop");
    pub const BUILD: Action = Method::new(POOL, "Build");
    pub const REFRESH: Action = Method::new(POOL, "Refresh");
    pub const DELETE: Action = Method::new(POOL, "Delete");
    pub const UNDEFINE: Action = Method::new(POOL, "Undefine");
    pub const GET_XML: Method<(Opts,), String> = Method::new(POOL, "GetXML");
    pub const LIST_VOLUMES: Method<(Opts,), Vec<OwnedObjectPath>> =
        Method::new(POOL, "ListVolumes");
    pub const CREATE_VOLUME: Method<(String, Opts), OwnedObjectPath> =
        Method::new(POOL, "CreateVolume");
    pub const CLONE_VOLUME: Method<(String, OwnedObjectPath, Opts), OwnedObjectPath> =
        Method::new(POOL, "CloneVolume");

    pub const NAME: Prop<String> = Prop::read(POOL, "Name");
    pub const UUID: Prop<String> = Prop::read(POOL, "UUID");
    pub const PATH: Prop<String> = Prop::read(POOL, "Path");
    pub const ACTIVE: Prop<bool> = Prop::read(POOL, "Active");
    pub const PERSISTENT: Prop<bool> = Prop::read(POOL, "Persistent");
    pub const AUTOSTART: Prop<bool> = Prop::read_write(POOL, "Autostart");
    pub const CAPACITY: Prop<u64> = Prop::read(POOL, "Capacity");
    pub const ALLOCATION: Prop<u64> = Prop::read(POOL, "Allocation");
    pub const AVAILABLE: Prop<u64> = Prop::read(POOL, "Available");
}

/// `org.virtbus1.StorageVolume`.
pub mod volume {
    use super::*;

    pub const DELETE: Method<(Opts,), ()> = Method::new(VOLUME, "Delete");
    pub const WIPE: Method<(Opts,), ()> = Method::new(VOLUME, "Wipe");
    pub const RESIZE: Method<(u64, Opts), ()> = Method::new(VOLUME, "Resize");
    pub const GET_XML: Method<(Opts,), String> = Method::new(VOLUME, "GetXML");
    pub const UPLOAD: Method<(zbus::OwnedFd, Opts), u64> = Method::new(VOLUME, "Upload");
    pub const DOWNLOAD: Method<(zbus::OwnedFd, Opts), u64> = Method::new(VOLUME, "Download");
    pub const PROGRESS: Signal<(String, u64, u64)> = Signal::new(VOLUME, "Progress");

    pub const NAME: Prop<String> = Prop::read(VOLUME, "Name");
    pub const KEY: Prop<String> = Prop::read(VOLUME, "Key");
    pub const PATH: Prop<String> = Prop::read(VOLUME, "Path");
    pub const POOL_PATH: Prop<OwnedObjectPath> = Prop::read(VOLUME, "Pool");
    pub const CAPACITY: Prop<u64> = Prop::read(VOLUME, "Capacity");
    pub const ALLOCATION: Prop<u64> = Prop::read(VOLUME, "Allocation");
    pub const FORMAT: Prop<String> = Prop::read(VOLUME, "Format");
    pub const JOB: Prop<String> = Prop::read(VOLUME, "Job");
}

/// Every member the client uses, for the drift test against `dbus/*.xml`.
#[allow(dead_code)] // read by the drift test (tests/cli/api.rs), not by the commands
pub fn members() -> Vec<&'static dyn Member> {
    use {domain as d, manager as m, snapshot as s};
    use {manager_net as mn, network as n, pool as p, volume as v};
    vec![
        &mn::DEFINE_NETWORK,
        &mn::CREATE_NETWORK,
        &mn::LIST_NETWORKS,
        &mn::DEFINE_POOL,
        &mn::CREATE_POOL,
        &mn::LIST_POOLS,
        &mn::LOOKUP_VOLUME_BY_PATH,
        &n::START,
        &n::STOP,
        &n::UNDEFINE,
        &n::GET_XML,
        &n::UPDATE,
        &n::GET_DHCP_LEASES,
        &n::NAME,
        &n::UUID,
        &n::ACTIVE,
        &n::PERSISTENT,
        &n::AUTOSTART,
        &n::BRIDGE,
        &p::START,
        &p::STOP,
        &p::BUILD,
        &p::REFRESH,
        &p::DELETE,
        &p::UNDEFINE,
        &p::GET_XML,
        &p::LIST_VOLUMES,
        &p::CREATE_VOLUME,
        &p::CLONE_VOLUME,
        &p::NAME,
        &p::UUID,
        &p::PATH,
        &p::ACTIVE,
        &p::PERSISTENT,
        &p::AUTOSTART,
        &p::CAPACITY,
        &p::ALLOCATION,
        &p::AVAILABLE,
        &v::DELETE,
        &v::WIPE,
        &v::RESIZE,
        &v::GET_XML,
        &v::UPLOAD,
        &v::DOWNLOAD,
        &v::PROGRESS,
        &v::NAME,
        &v::KEY,
        &v::PATH,
        &v::POOL_PATH,
        &v::CAPACITY,
        &v::ALLOCATION,
        &v::FORMAT,
        &v::JOB,
        &m::DEFINE_DOMAIN,
        &m::CREATE_DOMAIN,
        &m::LIST_DOMAINS,
        &m::LOOKUP_DOMAIN,
        &m::GET_ALL_DOMAIN_STATS,
        &m::DOMAIN_EVENT,
        &m::VERSION,
        &m::HOSTNAME,
        &d::START,
        &d::SHUTDOWN,
        &d::DESTROY,
        &d::REBOOT,
        &d::RESET,
        &d::SUSPEND,
        &d::RESUME,
        &d::UNDEFINE,
        &d::MANAGED_SAVE,
        &d::MANAGED_SAVE_REMOVE,
        &d::GET_XML,
        &d::GET_STATS,
        &d::CREATE_SNAPSHOT,
        &d::LIST_SNAPSHOTS,
        &d::LOOKUP_SNAPSHOT,
        &d::ATTACH_DEVICE,
        &d::DETACH_DEVICE,
        &d::INTERFACE_ADDRESSES,
        &d::OPEN_CONSOLE,
        &d::REBOOTED,
        &d::DEVICE_ADDED,
        &d::DEVICE_REMOVED,
        &d::METADATA_CHANGED,
        &d::NAME,
        &d::UUID,
        &d::TITLE,
        &d::ID,
        &d::DRIVER,
        &d::STATE,
        &d::STATE_REASON,
        &d::ACTIVE,
        &d::PERSISTENT,
        &d::AUTOSTART,
        &d::HAS_MANAGED_SAVE,
        &d::VCPUS,
        &d::MEMORY_KIB,
        &d::CURRENT_SNAPSHOT,
        &d::SNAPSHOT_COUNT,
        &d::WARNING,
        &d::JOB,
        &d::JOB_PROGRESS,
        &s::GET_XML,
        &s::REVERT,
        &s::DELETE,
        &s::NAME,
        &s::DESCRIPTION,
        &s::DOMAIN_PATH,
        &s::PARENT,
        &s::CREATION_TIME,
        &s::STATE,
        &s::IS_CURRENT,
        &s::KIND,
    ]
}
