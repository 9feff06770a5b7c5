//! Typed clients of the native API, as an application would write them.

use std::collections::HashMap;

use zbus::{OwnedObjectPath, OwnedVariant, Variant, proxy};

type Opts<'a> = HashMap<&'a str, Variant<'a>>;

#[proxy(
    interface = "org.virtbus1.Manager",
    default_service = "org.virtbus1",
    default_path = "/org/virtbus1"
)]
pub trait Manager {
    fn define_domain(&self, xml: &str, options: Opts<'_>) -> zbus::Result<OwnedObjectPath>;
    fn create_domain(&self, xml: &str, options: Opts<'_>) -> zbus::Result<OwnedObjectPath>;
    fn list_domains(&self, filter: Opts<'_>) -> zbus::Result<Vec<OwnedObjectPath>>;
    fn lookup_domain(&self, name_or_uuid: &str) -> zbus::Result<OwnedObjectPath>;
    fn get_capabilities(&self) -> zbus::Result<String>;
    fn get_all_domain_stats(
        &self,
        options: Opts<'_>,
    ) -> zbus::Result<HashMap<OwnedObjectPath, HashMap<String, OwnedVariant>>>;
    fn get_host_info(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    fn get_host_stats(&self, options: Opts<'_>) -> zbus::Result<HashMap<String, u64>>;
    fn get_sysinfo(&self) -> zbus::Result<String>;
    fn get_domain_capabilities(&self, options: Opts<'_>) -> zbus::Result<String>;
    #[zbus(name = "GetCPUModels")]
    fn get_cpu_models(&self, arch: &str) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn hostname(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn drivers(&self) -> zbus::Result<Vec<String>>;
}

#[proxy(interface = "org.virtbus1.Domain", default_service = "org.virtbus1")]
pub trait Domain {
    fn start(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn shutdown(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn destroy(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn reboot(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn reset(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn suspend(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn resume(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn undefine(&self, options: Opts<'_>) -> zbus::Result<()>;
    #[zbus(name = "GetXML")]
    fn get_xml(&self, options: Opts<'_>) -> zbus::Result<String>;
    fn get_stats(&self, options: Opts<'_>) -> zbus::Result<HashMap<String, OwnedVariant>>;
    fn create_snapshot(&self, xml: &str, options: Opts<'_>) -> zbus::Result<OwnedObjectPath>;
    fn list_snapshots(&self, options: Opts<'_>) -> zbus::Result<Vec<OwnedObjectPath>>;
    fn lookup_snapshot(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    #[zbus(name = "FSFreeze")]
    fn fs_freeze(&self, options: Opts<'_>) -> zbus::Result<u32>;
    #[zbus(name = "FSThaw")]
    fn fs_thaw(&self, options: Opts<'_>) -> zbus::Result<u32>;
    fn managed_save(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn managed_save_remove(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn get_metadata(&self, kind: &str, uri: &str, options: Opts<'_>) -> zbus::Result<String>;
    fn set_metadata(
        &self,
        kind: &str,
        value: &str,
        key: &str,
        uri: &str,
        options: Opts<'_>,
    ) -> zbus::Result<()>;
    #[zbus(name = "GetVCPUs")]
    fn get_vcpus(&self, options: Opts<'_>) -> zbus::Result<u32>;
    #[zbus(name = "SetVCPUs")]
    fn set_vcpus(&self, count: u32, options: Opts<'_>) -> zbus::Result<()>;
    #[zbus(name = "GetVCPUPinning")]
    fn get_vcpu_pinning(&self, options: Opts<'_>) -> zbus::Result<Vec<Vec<bool>>>;
    fn set_memory(&self, kib: u64, options: Opts<'_>) -> zbus::Result<()>;
    fn memory_stats(&self, options: Opts<'_>) -> zbus::Result<HashMap<String, u64>>;
    fn attach_device(&self, xml: &str, options: Opts<'_>) -> zbus::Result<()>;
    fn detach_device(&self, xml: &str, options: Opts<'_>) -> zbus::Result<()>;
    fn update_device(&self, xml: &str, options: Opts<'_>) -> zbus::Result<()>;
    #[zbus(name = "InjectNMI")]
    fn inject_nmi(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn open_console(&self, device: &str, options: Opts<'_>) -> zbus::Result<zbus::OwnedFd>;
    #[zbus(name = "OpenGraphicsFD")]
    fn open_graphics_fd(&self, options: Opts<'_>) -> zbus::Result<zbus::OwnedFd>;
    fn get_guest_info(&self, options: Opts<'_>) -> zbus::Result<HashMap<String, OwnedVariant>>;
    #[allow(clippy::type_complexity)]
    fn interface_addresses(
        &self,
        options: Opts<'_>,
    ) -> zbus::Result<Vec<(String, String, Vec<(i32, String, u32)>)>>;

    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    #[zbus(property, name = "UUID")]
    fn uuid(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn title(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn id(&self) -> zbus::Result<i32>;
    #[zbus(property)]
    fn driver(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state_reason(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn persistent(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn autostart(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn has_managed_save(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn set_autostart(&self, value: bool) -> zbus::Result<()>;
    #[zbus(property, name = "VCPUs")]
    fn vcpus(&self) -> zbus::Result<u32>;
    #[zbus(property, name = "MemoryKiB")]
    fn memory_kib(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn current_snapshot(&self) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn snapshot_count(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn warning(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn job(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn job_progress(&self) -> zbus::Result<f64>;
}

#[proxy(interface = "org.virtbus1.Snapshot", default_service = "org.virtbus1")]
pub trait Snapshot {
    #[zbus(name = "GetXML")]
    fn get_xml(&self, options: Opts<'_>) -> zbus::Result<String>;
    fn revert(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn delete(&self, options: Opts<'_>) -> zbus::Result<()>;
    fn list_children(&self, options: Opts<'_>) -> zbus::Result<Vec<OwnedObjectPath>>;
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn description(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn domain(&self) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn parent(&self) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn creation_time(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn is_current(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn kind(&self) -> zbus::Result<String>;
}

/// A domain proxy that never caches properties, so each read asks the daemon.
pub async fn domain<'a>(conn: &zbus::Connection, path: &OwnedObjectPath) -> DomainProxy<'a> {
    DomainProxy::builder(conn)
        .path(path.clone())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("domain proxy")
}

pub async fn snapshot<'a>(conn: &zbus::Connection, path: &OwnedObjectPath) -> SnapshotProxy<'a> {
    SnapshotProxy::builder(conn)
        .path(path.clone())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("snapshot proxy")
}

pub async fn manager<'a>(conn: &zbus::Connection) -> ManagerProxy<'a> {
    ManagerProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("manager proxy")
}
