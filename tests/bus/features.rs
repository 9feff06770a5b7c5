//! Managed save, metadata, vCPUs, devices, NMI, statistics and the host, through the native
//! API: options, results, errors and signals.

use zbus::Variant;

use crate::support::{proxies::*, *};

fn live() -> std::collections::HashMap<&'static str, Variant<'static>> {
    opts([("live", Variant::Bool(true))])
}

fn config() -> std::collections::HashMap<&'static str, Variant<'static>> {
    opts([("config", Variant::Bool(true))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_save_cycle_with_signals() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let path = manager(&conn)
        .await
        .define_domain(&test_domain("ms"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    dom.start(no_opts()).await.expect("start");
    sigs.take().await;
    let both = opts([
        ("running", Variant::Bool(true)),
        ("paused", Variant::Bool(true)),
    ]);
    let r = dom.managed_save(both).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");
    assert_eq!(
        error_message(&r),
        "options 'running' and 'paused' are mutually exclusive"
    );
    dom.managed_save(opts([("paused", Variant::Bool(true))]))
        .await
        .expect("save");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("stopped".into(), "saved".into())]);
    let hms: Vec<bool> = changes_of(&got, path.as_str(), "HasManagedSave")
        .into_iter()
        .map(|v| bool::try_from(v).expect("b"))
        .collect();
    assert_eq!(hms, [true]);
    assert!(dom.has_managed_save().await.expect("prop"));
    assert_eq!(dom.state_reason().await.expect("reason"), "saved");
    let r = dom.undefine(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState");
    dom.start(no_opts()).await.expect("restore");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ("started".into(), "restored".into()),
            ("suspended".into(), "restored".into())
        ]
    );
    assert_eq!(dom.state().await.expect("state"), "paused");
    dom.destroy(no_opts()).await.expect("stop");
    dom.start(no_opts()).await.expect("start");
    dom.managed_save(no_opts()).await.expect("save");
    dom.managed_save_remove(no_opts()).await.expect("remove");
    assert!(!dom.has_managed_save().await.expect("prop"));
    dom.undefine(no_opts()).await.expect("undefine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_vcpus_devices_and_nmi() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let path = manager(&conn)
        .await
        .define_domain(&test_domain("md"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    let p = path.as_str();

    // Metadata, on the persistent definition while inactive.
    let r = dom.get_metadata("title", "", no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound");
    sigs.take().await;
    dom.set_metadata("title", "Web server", "", "", no_opts())
        .await
        .expect("title");
    dom.set_metadata("element", "<cfg port='80'/>", "app", "urn:app", no_opts())
        .await
        .expect("element");
    let got = sigs.take().await;
    let members: Vec<&str> = got
        .iter()
        .filter_map(|s| match s {
            Sig::Other { path, member } if path == p => Some(member.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(members, ["MetadataChanged", "MetadataChanged"]);
    assert_eq!(
        changes_of(&got, p, "Title")
            .into_iter()
            .map(|v| String::try_from(v).expect("s"))
            .collect::<Vec<_>>(),
        ["Web server"]
    );
    assert_eq!(dom.title().await.expect("Title"), "Web server");
    assert_eq!(
        dom.get_metadata("element", "urn:app", no_opts())
            .await
            .expect("get"),
        "<cfg port=\"80\"/>"
    );
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        xml.contains("<app:cfg xmlns:app=\"urn:app\" port=\"80\"/>"),
        "{xml}"
    );
    for (kind, uri) in [("bogus", ""), ("title", "urn:x"), ("element", "")] {
        let r = dom.get_metadata(kind, uri, no_opts()).await;
        assert_eq!(
            error_name(&r),
            "org.virtbus1.Error.InvalidArgument",
            "{kind}"
        );
    }
    let r = dom.get_metadata("title", "", live()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState");

    // vCPUs.
    assert_eq!(dom.get_vcpus(no_opts()).await.expect("vcpus"), 2);
    let max = opts([
        ("maximum", Variant::Bool(true)),
        ("config", Variant::Bool(true)),
    ]);
    dom.set_vcpus(4, max).await.expect("max");
    dom.set_vcpus(3, config()).await.expect("config");
    assert_eq!(dom.vcpus().await.expect("VCPUs"), 3);
    let r = dom
        .set_vcpus(8, opts([("maximum", Variant::Bool(true))]))
        .await;
    assert_eq!(
        error_message(&r),
        "option 'maximum' requires option 'config'"
    );
    dom.start(no_opts()).await.expect("start");
    dom.set_vcpus(4, live()).await.expect("live");
    assert_eq!(dom.vcpus().await.expect("VCPUs"), 4);
    assert_eq!(dom.get_vcpus(config()).await.expect("config"), 3);
    let pins = dom.get_vcpu_pinning(no_opts()).await.expect("pins");
    assert_eq!(pins.len(), 4);
    assert!(pins.iter().all(|p| !p.is_empty() && p.iter().all(|b| *b)));

    // Devices: hot-plug on the test driver, with signals.
    sigs.take().await;
    let disk = "<disk type='file' device='disk'><source file='/d.img'/>\
                <target dev='vdb' bus='virtio'/></disk>";
    dom.attach_device(disk, no_opts()).await.expect("attach");
    let r = dom.attach_device(disk, no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");
    dom.update_device(
        "<disk type='file' device='disk'><source file='/e.img'/><target dev='vdb' bus='virtio'/></disk>",
        opts([("force", Variant::Bool(true))]),
    )
    .await
    .expect("update");
    assert!(
        dom.get_xml(no_opts())
            .await
            .expect("xml")
            .contains("/e.img")
    );
    dom.detach_device(disk, no_opts()).await.expect("detach");
    let got = sigs.take().await;
    let members: Vec<&str> = got
        .iter()
        .filter_map(|s| match s {
            Sig::Other { path, member } if path == p => Some(member.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(members, ["DeviceAdded", "DeviceRemoved"]);
    let r = dom.attach_device("<disk", no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");

    // NMI and memory statistics need a running guest.
    dom.inject_nmi(no_opts()).await.expect("nmi");
    let mem = dom.memory_stats(no_opts()).await.expect("memory");
    assert!(mem.is_empty(), "no balloon in this definition: {mem:?}");
    dom.destroy(no_opts()).await.expect("stop");
    let r = dom.inject_nmi(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState");
    assert_eq!(
        error_message(&r),
        "cannot inject an NMI into domain 'md': it is not running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_filters_and_host() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let a = mgr
        .define_domain(&test_domain("a"), no_opts())
        .await
        .expect("a");
    mgr.define_domain(&test_domain("b"), no_opts())
        .await
        .expect("b");
    domain(&conn, &a)
        .await
        .start(no_opts())
        .await
        .expect("start");
    let running = mgr
        .list_domains(opts([("running", Variant::Bool(true))]))
        .await
        .expect("list");
    assert_eq!(running, std::slice::from_ref(&a));
    let r = mgr
        .list_domains(opts([("no-snapshot", Variant::Bool(true))]))
        .await
        .expect("list");
    assert_eq!(r.len(), 2);
    let all = mgr
        .get_all_domain_stats(opts([("groups", Variant::from(vec!["state", "vcpu"]))]))
        .await
        .expect("stats");
    assert_eq!(all.len(), 2);
    let sa = &all[&a];
    assert!(
        sa.keys()
            .all(|k| k.starts_with("state.") || k.starts_with("vcpu."))
    );
    assert!(sa.contains_key("vcpu.current"));
    let one = domain(&conn, &a)
        .await
        .get_stats(opts([("groups", Variant::from(vec!["block"]))]))
        .await
        .expect("stats");
    assert!(one.keys().all(|k| k.starts_with("block.")), "{one:?}");
    let r = mgr
        .get_all_domain_stats(opts([("groups", Variant::from(vec!["bogus"]))]))
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");

    let info = mgr.get_host_info().await.expect("host");
    let cpus = u32::try_from(info["cpus"].try_clone().expect("c")).expect("u");
    assert!(cpus >= 1);
    let stats = mgr.get_host_stats(no_opts()).await.expect("host stats");
    assert!(stats["memory.total"] > 0 && stats.contains_key("cpu.idle"));
    let r = mgr
        .get_host_stats(opts([("node", Variant::U32(4096))]))
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");
    assert!(
        mgr.get_sysinfo()
            .await
            .expect("sysinfo")
            .starts_with("<sysinfo type='smbios'>")
    );
    let dc = mgr
        .get_domain_capabilities(no_opts())
        .await
        .expect("domcaps");
    assert!(dc.contains("<domain>test</domain>"), "{dc}");
    let r = mgr
        .get_domain_capabilities(opts([("type", Variant::from("kvm"))]))
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported");
    assert!(
        mgr.get_cpu_models("x86_64")
            .await
            .expect("models")
            .contains(&"qemu64".to_owned())
    );
}

/// SetMemory: the persistent current memory and maximum, the running guest's balloon
/// target, with the option rules, refusals and the MemoryKiB change signalled before the
/// reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_memory_live_and_config() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let path = manager(&conn)
        .await
        .define_domain(&test_domain("mem"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    let p = path.as_str();
    assert_eq!(dom.memory_kib().await.expect("MemoryKiB"), 524_288);

    sigs.take().await;
    dom.set_memory(262_144, config()).await.expect("config");
    let got = sigs.take().await;
    let changed: Vec<u64> = changes_of(&got, p, "MemoryKiB")
        .into_iter()
        .map(|v| u64::try_from(v).expect("t"))
        .collect();
    assert_eq!(changed, [262_144], "signalled before the reply");
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        xml.contains("<currentMemory unit='KiB'>262144</currentMemory>"),
        "{xml}"
    );

    let max = opts([
        ("maximum", Variant::Bool(true)),
        ("config", Variant::Bool(true)),
    ]);
    dom.set_memory(1_048_576, max.clone())
        .await
        .expect("maximum");
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    assert!(xml.contains("<memory unit='KiB'>1048576</memory>"), "{xml}");
    assert!(
        xml.contains("<currentMemory unit='KiB'>262144</currentMemory>"),
        "{xml}"
    );
    dom.set_memory(131_072, max)
        .await
        .expect("maximum below current");
    assert_eq!(dom.memory_kib().await.expect("MemoryKiB"), 131_072);

    for (kib, o, want) in [
        (65_536, live(), "org.virtbus1.Error.InvalidState"),
        (262_144, config(), "org.virtbus1.Error.InvalidArgument"),
        (0, config(), "org.virtbus1.Error.InvalidArgument"),
        (
            65_536,
            opts([
                ("maximum", Variant::Bool(true)),
                ("live", Variant::Bool(true)),
            ]),
            "org.virtbus1.Error.InvalidArgument",
        ),
        (
            65_536,
            opts([("bogus", Variant::Bool(true))]),
            "org.virtbus1.Error.InvalidArgument",
        ),
    ] {
        let r = dom.set_memory(kib, o).await;
        assert_eq!(error_name(&r), want, "{kib}");
    }
    assert_eq!(dom.memory_kib().await.expect("unchanged"), 131_072);

    dom.start(no_opts()).await.expect("start");
    dom.set_memory(65_536, live()).await.expect("balloon");
    assert_eq!(dom.memory_kib().await.expect("live"), 65_536);
    let inactive = opts([("inactive", Variant::Bool(true))]);
    let xml = dom.get_xml(inactive).await.expect("inactive xml");
    assert!(
        !xml.contains("65536"),
        "persistent definition untouched: {xml}"
    );
    dom.destroy(no_opts()).await.expect("destroy");
}
