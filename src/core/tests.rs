//! The core in process, over the test driver and a store that keeps nothing: the features the
//! front ends share (managed save, metadata, vCPUs, devices, statistics, guest facts).

use std::sync::Arc;

use super::{
    Core, Error, Event,
    metadata::MetadataKind,
    options::{
        AddressSource, Affect, DeviceOptions, ListFilter, ManagedSaveOptions, StartOptions,
        StatsGroup, UndefineOptions, VcpuOptions,
    },
    store::Store,
};
use crate::{
    drivers::{MemoryStat, StatValue, test::TestDriver},
    model::{
        DomainDef, DomainType,
        state::{DomainState, Lifecycle, StartedDetail, StateReason, StoppedDetail},
    },
};

fn core() -> Core {
    Core::new(
        vec![(DomainType::Test, Arc::new(TestDriver::new()))],
        Store::memory(),
    )
}

const LIVE: Affect = Affect {
    live: true,
    config: false,
};
const CONFIG: Affect = Affect {
    live: false,
    config: true,
};

fn def(name: &str) -> DomainDef {
    DomainDef::from_xml(&format!(
        "<domain type='test'><name>{name}</name><memory>1048576</memory>\
         <currentMemory>524288</currentMemory><vcpu current='2'>4</vcpu>\
         <os><type>hvm</type></os><devices>\
         <disk type='file' device='disk'><source file='/x.img'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/>\
         <target dev='vnet0'/></interface><memballoon model='virtio'/></devices></domain>"
    ))
    .expect("domain")
}

async fn running(core: &Core, name: &str) -> Arc<super::Domain> {
    let dom = core
        .define(def(name), Default::default())
        .await
        .expect("define");
    core.start(&dom, StartOptions::default())
        .await
        .expect("start");
    dom
}

fn lifecycles(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>) -> Vec<Lifecycle> {
    let mut out = Vec::new();
    while let Ok((_, e)) = rx.try_recv() {
        if let Event::Lifecycle { event, .. } = e {
            out.push(event);
        }
    }
    out
}

#[tokio::test]
async fn managed_save_and_restore() {
    let core = core();
    let dom = running(&core, "ms").await;
    core.suspend(&dom).await.expect("pause");
    let mut rx = core.events().subscribe();
    let both = ManagedSaveOptions {
        running: true,
        paused: true,
    };
    assert!(matches!(
        core.managed_save(&dom, both).await,
        Err(Error::Options(_))
    ));
    core.managed_save(&dom, ManagedSaveOptions::default())
        .await
        .expect("save");
    assert!(core.has_managed_save(&dom).expect("has"));
    let info = dom.info();
    assert_eq!(info.status.state, DomainState::ShutOff);
    assert_eq!(info.status.reason, StateReason::Saved);
    assert!(info.managed_save);
    assert_eq!(
        lifecycles(&mut rx),
        [Lifecycle::Stopped(StoppedDetail::Saved)]
    );
    let e = core.undefine(&dom, UndefineOptions::default()).await;
    assert!(matches!(e, Err(Error::InvalidState(_))), "{e:?}");
    // Saved while paused: comes back paused, from the image.
    core.start(&dom, StartOptions::default())
        .await
        .expect("restore");
    let info = dom.info();
    assert_eq!(info.status.state, DomainState::Paused);
    assert!(!info.managed_save);
    assert_eq!(
        lifecycles(&mut rx)[0],
        Lifecycle::Started(StartedDetail::Restored)
    );
    // Saved with `running`, then started with force-boot: the image is dropped.
    core.managed_save(
        &dom,
        ManagedSaveOptions {
            running: true,
            paused: false,
        },
    )
    .await
    .expect("save again");
    core.start(
        &dom,
        StartOptions {
            force_boot: true,
            ..Default::default()
        },
    )
    .await
    .expect("boot");
    assert_eq!(dom.info().status.reason, StateReason::Booted);
    assert!(!core.has_managed_save(&dom).expect("has"));
    core.destroy(&dom, Default::default()).await.expect("stop");
    let e = core.managed_save(&dom, ManagedSaveOptions::default()).await;
    assert!(matches!(e, Err(Error::WrongState(_))), "{e:?}");
    core.managed_save_remove(&dom)
        .await
        .expect("no image is fine");
}

#[tokio::test]
async fn transient_domains_cannot_be_saved_and_undefine_removes_images() {
    let core = core();
    let t = core
        .create(def("t"), StartOptions::default(), Default::default())
        .await
        .expect("create");
    let e = core.managed_save(&t, ManagedSaveOptions::default()).await;
    assert!(matches!(e, Err(Error::InvalidState(_))), "{e:?}");
    let dom = running(&core, "u").await;
    core.managed_save(&dom, ManagedSaveOptions::default())
        .await
        .expect("save");
    core.undefine(
        &dom,
        UndefineOptions {
            managed_save: true,
            ..Default::default()
        },
    )
    .await
    .expect("undefine");
    assert!(core.lookup("u").is_err());
}

#[tokio::test]
async fn metadata_live_and_config() {
    let core = core();
    let dom = running(&core, "md").await;
    let title = MetadataKind::Title;
    assert!(matches!(
        core.metadata(&dom, &title, Affect::default()),
        Err(Error::NotFound(..))
    ));
    let mut rx = core.events().subscribe();
    core.set_metadata(&dom, title.clone(), Some("live title"), None, LIVE)
        .await
        .expect("live");
    core.set_metadata(&dom, title.clone(), Some("config title"), None, CONFIG)
        .await
        .expect("config");
    assert_eq!(
        core.metadata(&dom, &title, LIVE).expect("live"),
        "live title"
    );
    assert_eq!(
        core.metadata(&dom, &title, CONFIG).expect("config"),
        "config title"
    );
    assert_eq!(dom.info().title, "live title");
    let kinds: Vec<MetadataKind> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|(_, e)| match e {
            Event::MetadataChanged { kind, .. } => Some(kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [title.clone(), title.clone()]);
    let both = Affect {
        live: true,
        config: true,
    };
    assert!(matches!(
        core.metadata(&dom, &title, both),
        Err(Error::Options(_))
    ));
    let e = core
        .set_metadata(&dom, title.clone(), Some("a\nb"), None, LIVE)
        .await;
    assert!(matches!(e, Err(Error::InvalidArgument(_))));
    let el = MetadataKind::Element("http://app/".into());
    let e = core
        .set_metadata(&dom, el.clone(), Some("<x/>"), None, Affect::default())
        .await;
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "needs a key");
    core.set_metadata(&dom, el.clone(), Some("<x a='1'>t</x>"), Some("app"), both)
        .await
        .expect("element");
    assert_eq!(
        core.metadata(&dom, &el, CONFIG).expect("get"),
        "<x a=\"1\">t</x>"
    );
    let xml = core
        .domain_xml(&dom, super::options::XmlOptions::default())
        .expect("xml");
    assert!(
        xml.contains("<app:x xmlns:app=\"http://app/\" a=\"1\">t</app:x>"),
        "{xml}"
    );
    core.set_metadata(&dom, el.clone(), Some(""), Some("app"), LIVE)
        .await
        .expect("remove");
    assert!(core.metadata(&dom, &el, LIVE).is_err());
    assert!(core.metadata(&dom, &el, CONFIG).is_ok());
    core.destroy(&dom, Default::default()).await.expect("stop");
    let e = core
        .set_metadata(&dom, MetadataKind::Description, Some("d"), None, LIVE)
        .await;
    assert!(matches!(e, Err(Error::WrongState(_))), "{e:?}");
}

#[tokio::test]
async fn vcpus_counts_changes_and_pinning() {
    let core = core();
    let dom = running(&core, "cpu").await;
    let q = |affect, maximum| VcpuOptions { affect, maximum };
    assert_eq!(
        core.vcpu_count(&dom, q(Affect::default(), false)).ok(),
        Some(2)
    );
    assert_eq!(
        core.vcpu_count(&dom, q(Affect::default(), true)).ok(),
        Some(4)
    );
    core.set_vcpus(&dom, 3, q(LIVE, false)).await.expect("live");
    assert_eq!(core.vcpu_count(&dom, q(LIVE, false)).ok(), Some(3));
    assert_eq!(core.vcpu_count(&dom, q(CONFIG, false)).ok(), Some(2));
    assert_eq!(dom.info().vcpus, 3);
    let e = core.set_vcpus(&dom, 5, q(LIVE, false)).await;
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
    let e = core.set_vcpus(&dom, 8, q(LIVE, true)).await;
    assert!(matches!(e, Err(Error::Options(_))), "{e:?}");
    core.set_vcpus(&dom, 8, q(CONFIG, true)).await.expect("max");
    assert_eq!(core.vcpu_count(&dom, q(CONFIG, true)).ok(), Some(8));
    assert_eq!(core.vcpu_count(&dom, q(LIVE, true)).ok(), Some(4));
    assert!(core.set_vcpus(&dom, 0, q(LIVE, false)).await.is_err());
    let pins = core.vcpu_pinning(&dom, LIVE).await.expect("pins");
    let host = super::host::cpu_count().expect("cpus");
    assert_eq!(pins.len(), 3);
    assert!(pins.iter().all(|p| p.len() == host && p.iter().all(|b| *b)));
    let stats = core.stats(&dom).await.expect("stats");
    assert!(stats.contains(&("vcpu.current".into(), StatValue::U64(3))));
}

#[tokio::test]
async fn devices_attach_detach_update() {
    let core = core();
    let dom = running(&core, "dev").await;
    let disk = "<disk type='file' device='disk'><source file='/y.img'/>\
                <target dev='vdb' bus='virtio'/></disk>";
    let mut rx = core.events().subscribe();
    core.attach_device(&dom, disk, DeviceOptions::default())
        .await
        .expect("hot-plug");
    let live = core.domain_xml(&dom, Default::default()).expect("live xml");
    assert!(live.contains("/y.img"));
    let inactive = core
        .domain_xml(
            &dom,
            super::options::XmlOptions {
                inactive: true,
                ..Default::default()
            },
        )
        .expect("xml");
    assert!(!inactive.contains("/y.img"));
    let e = core
        .attach_device(&dom, disk, DeviceOptions::default())
        .await;
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "{e:?}");
    let both = DeviceOptions {
        affect: Affect {
            live: true,
            config: true,
        },
        force: false,
    };
    core.attach_device(
        &dom,
        "<interface type='network'><mac address='52:54:00:00:00:09'/>\
         <source network='default'/></interface>",
        both,
    )
    .await
    .expect("nic");
    core.update_device(
        &dom,
        "<disk type='file' device='disk'><source file='/z.img'/>\
         <target dev='vdb' bus='virtio'/></disk>",
        DeviceOptions::default(),
    )
    .await
    .expect("update");
    core.detach_device(&dom, "<disk><target dev='vdb'/></disk>", Default::default())
        .await
        .expect_err("a disk needs its type");
    core.detach_device(
        &dom,
        "<disk type='file'><source file='/any.img'/><target dev='vdb'/></disk>",
        Default::default(),
    )
    .await
    .expect("detach");
    let names: Vec<(bool, String)> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|(_, e)| match e {
            Event::DeviceAdded { device, .. } => Some((true, device)),
            Event::DeviceRemoved { device, .. } => Some((false, device)),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            (true, "vdb".into()),
            (true, "52:54:00:00:00:09".into()),
            (false, "vdb".into())
        ]
    );
    let ifaces = core
        .interface_addresses(&dom, AddressSource::Agent)
        .await
        .expect("agent");
    assert_eq!(ifaces.len(), 2);
    assert_eq!(ifaces[0].name, "vnet0");
    assert_eq!(ifaces[0].addrs[0].addr, "192.168.122.3");
    assert!(
        core.interface_addresses(&dom, AddressSource::Lease)
            .await
            .expect("lease")
            .is_empty()
    );
}

#[tokio::test]
async fn statistics_by_group_memory_and_nmi() {
    let core = core();
    let dom = running(&core, "st").await;
    let only = core
        .stats_in(&dom, &[StatsGroup::State, StatsGroup::Block])
        .await
        .expect("stats");
    assert!(
        only.iter()
            .all(|(k, _)| k.starts_with("state.") || k.starts_with("block."))
    );
    assert!(only.iter().any(|(k, _)| k == "block.0.name"));
    let mem = core.memory_stats(&dom).await.expect("memory");
    assert!(mem.contains(&(MemoryStat::ActualBalloon, 524_288)));
    core.inject_nmi(&dom).await.expect("nmi");
    let off = core
        .define(def("off"), Default::default())
        .await
        .expect("define");
    assert!(matches!(
        core.memory_stats(&off).await,
        Err(Error::WrongState(_))
    ));
    assert!(matches!(
        core.inject_nmi(&off).await,
        Err(Error::WrongState(_))
    ));
    let all = core
        .all_stats(
            &ListFilter {
                active: true,
                ..Default::default()
            },
            &[StatsGroup::State],
        )
        .await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.name(), "st");
    let none = core
        .all_stats(
            &ListFilter {
                domain_types: vec![DomainType::Kvm],
                ..Default::default()
            },
            &[],
        )
        .await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn start_for_an_unknown_reason() {
    let core = core();
    let dom = core
        .define(def("fixture"), Default::default())
        .await
        .expect("define");
    core.start_as(&dom, StartOptions::default(), StateReason::Unknown)
        .await
        .expect("start");
    let info = dom.info();
    assert_eq!(info.status.state, DomainState::Running);
    assert_eq!(info.status.reason, StateReason::Unknown);
    assert_eq!(info.id, Some(1));
}
