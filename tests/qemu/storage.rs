//! Storage a real guest sees: a disk on a virtio-scsi controller, and a host directory
//! shared over virtio-fs by a virtiofsd the driver runs (and keeps across a daemon restart).

use std::time::Duration;

use crate::{
    define_guest_with, guest, guests, pid_alive, support::proxies::*, support::*, until, wait_agent,
};

/// The virtiofsd pids recorded in a domain's runtime directory.
fn virtiofsd_pids(runtime: &std::path::Path, uuid: &str) -> Vec<i32> {
    let dir = runtime.join("qemu").join(uuid.replace('-', ""));
    virtbus::drivers::qemu::virtiofs::running(&dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_sees_a_virtio_scsi_disk() {
    let _permit = guests(1).await;
    let g = define_guest_with("scsi", guest::TEST_CHANNEL, |xml| xml).await;
    // the image and the devices go in after the bus dir exists
    let img = g.bus.dir.path().join("scsi.img");
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "raw"])
        .arg(&img)
        .arg("16M")
        .status()
        .expect("qemu-img");
    assert!(st.success());
    let dom = domain(&g.conn, &g.path).await;
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    let extra = format!(
        "<controller type='scsi' index='0' model='virtio-scsi'><driver queues='2'/>\
         </controller><disk type='file' device='disk'><driver name='qemu' type='raw' \
         cache='none' error_policy='stop'/><source file='{}'/><target dev='sda' bus='scsi'/>\
         <iotune><total_iops_sec>5000</total_iops_sec></iotune><serial>VBSCSI1</serial>\
         <vendor>VIRTBUS</vendor><product>TESTDISK</product></disk></devices>",
        img.display()
    );
    let mgr = manager(&g.conn).await;
    mgr.define_domain(&xml.replacen("</devices>", &extra, 1), no_opts())
        .await
        .expect("redefine with the SCSI disk");
    let inactive = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        inactive.contains("<address type='drive' controller='0' bus='0' target='0' unit='0'/>"),
        "{inactive}"
    );
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<alias name='scsi0-0-0-0'/>"), "{live}");
    assert!(live.contains("<alias name='scsi0'/>"), "{live}");
    let ga = guest::TestAgent::of(&live).await;
    let mut seen = String::new();
    until(
        "the guest finds the SCSI disk",
        Duration::from_secs(60),
        async || {
            seen = ga
                .sh("cat /sys/block/sda/size /sys/block/sda/device/vendor \
                 /sys/block/sda/device/model 2>&1; true")
                .await;
            seen.contains("32768")
        },
    )
    .await;
    assert!(
        seen.contains("VIRTBUS") && seen.contains("TESTDISK"),
        "{seen}"
    );
    // and reads it through the SCSI stack
    let out = ga
        .sh("dd if=/dev/sda of=/dev/null bs=65536 count=16 2>&1")
        .await;
    assert!(out.contains("16+0 records in"), "{out}");
    dom.destroy(no_opts()).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_reads_a_virtiofs_share_across_a_daemon_restart() {
    let _permit = guests(1).await;
    let mut g = define_guest_with("vfs", guest::TEST_CHANNEL, |xml| {
        xml.replacen(
            "<memory unit='MiB'>256</memory>",
            "<memory unit='MiB'>256</memory><memoryBacking><source type='memfd'/>\
             <access mode='shared'/></memoryBacking>",
            1,
        )
    })
    .await;
    let share = g.bus.dir.path().join("share");
    std::fs::create_dir(&share).expect("share dir");
    std::fs::write(share.join("hello.txt"), "from the host 4711\n").expect("host file");
    let dom = domain(&g.conn, &g.path).await;
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    let fs = format!(
        "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs' \
         queue='1024'/><binary><cache mode='always'/><lock posix='on' flock='on'/></binary>\
         <source dir='{}'/><target dir='hostshare'/></filesystem></devices>",
        share.display()
    );
    let mgr = manager(&g.conn).await;
    mgr.define_domain(&xml.replacen("</devices>", &fs, 1), no_opts())
        .await
        .expect("redefine with the share");
    let uuid = dom.uuid().await.expect("uuid");
    dom.start(no_opts()).await.expect("start");
    let pids = virtiofsd_pids(&g.daemon.runtime, &uuid);
    assert_eq!(pids.len(), 1, "one virtiofsd runs");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<alias name='fs0'/>"), "{live}");
    let ga = guest::TestAgent::of(&live).await;
    let out = ga
        .sh("mkdir -p /mnt/x && mount -t virtiofs hostshare /mnt/x && cat /mnt/x/hello.txt")
        .await;
    assert!(out.contains("from the host 4711"), "{out}");

    // a restarted daemon adopts the guest and its virtiofsd, and starts no second one
    g.daemon.kill();
    assert!(pid_alive(pids[0]), "virtiofsd outlives the daemon");
    g.daemon.restart(&g.bus).await;
    let conn = g.bus.connect().await;
    let dom = domain(&conn, &g.path).await;
    wait_agent(&dom).await;
    assert_eq!(virtiofsd_pids(&g.daemon.runtime, &uuid), pids);
    std::fs::write(share.join("second.txt"), "written after the restart\n").expect("write");
    let out = ga.sh("cat /mnt/x/second.txt").await;
    assert!(out.contains("written after the restart"), "{out}");

    // the share's daemon ends with the guest
    dom.destroy(no_opts()).await.expect("destroy");
    until(
        "virtiofsd stops with its guest",
        Duration::from_secs(10),
        async || !pid_alive(pids[0]) || is_zombie(pids[0]),
    )
    .await;
}

/// An exited process not yet reaped by its parent.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtiofs_without_shared_memory_is_refused_at_define() {
    let g = define_guest_with("vfsno", "", |xml| xml).await;
    let dom = domain(&g.conn, &g.path).await;
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    let fs = "<filesystem><driver type='virtiofs'/><source dir='/tmp'/><target dir='t'/>\
              </filesystem></devices>";
    let mgr = manager(&g.conn).await;
    let e = mgr
        .define_domain(&xml.replacen("</devices>", fs, 1), no_opts())
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("NotSupported"), "{e}");
    assert!(e.to_string().contains("shared guest memory"), "{e}");
    // nothing changed
    assert_eq!(dom.get_xml(no_opts()).await.expect("xml"), xml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_sees_a_disk_from_a_storage_volume() {
    let _permit = guests(1).await;
    let g = define_guest_with("volg", guest::TEST_CHANNEL, |xml| xml).await;
    let dir = g.daemon.state.join("images/vp");
    let pool_xml = format!(
        "<pool type='dir'><name>vp</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let c = &g.conn;
    let reply = c
        .call_method(
            Some(NAME),
            MANAGER,
            Some("org.virtbus1.Manager"),
            "DefinePool",
            &(pool_xml.as_str(), no_opts()),
        )
        .await
        .expect("DefinePool");
    let pool: zbus::OwnedObjectPath = reply.body().deserialize().expect("path");
    for m in ["Build", "Start"] {
        c.call_method(
            Some(NAME),
            pool.as_str(),
            Some("org.virtbus1.StoragePool"),
            m,
            &(no_opts(),),
        )
        .await
        .unwrap_or_else(|e| panic!("{m}: {e}"));
    }
    c.call_method(
        Some(NAME),
        pool.as_str(),
        Some("org.virtbus1.StoragePool"),
        "CreateVolume",
        &(
            "<volume><name>data.qcow2</name><capacity unit='MiB'>24</capacity>\
             <target><format type='qcow2'/></target></volume>",
            no_opts(),
        ),
    )
    .await
    .expect("CreateVolume");
    let dom = domain(c, &g.path).await;
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    let disk = "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>\
                <source pool='vp' volume='data.qcow2'/><target dev='vdb' bus='virtio'/></disk>";
    let mgr = manager(c).await;
    mgr.define_domain(
        &xml.replacen("</devices>", &format!("{disk}</devices>"), 1),
        no_opts(),
    )
    .await
    .expect("redefine with the volume disk");
    let inactive = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        inactive.contains("<source pool='vp' volume='data.qcow2'/>"),
        "{inactive}"
    );
    // the pool must be active
    c.call_method(
        Some(NAME),
        pool.as_str(),
        Some("org.virtbus1.StoragePool"),
        "Stop",
        &(no_opts(),),
    )
    .await
    .expect("Stop");
    let r = dom.start(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    assert!(error_message(&r).contains("'vp'"), "{r:?}");
    c.call_method(
        Some(NAME),
        pool.as_str(),
        Some("org.virtbus1.StoragePool"),
        "Start",
        &(no_opts(),),
    )
    .await
    .expect("Start");
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("pool='vp' volume='data.qcow2'"), "{live}");
    assert!(
        !live.contains(&dir.display().to_string()),
        "the path stays out: {live}"
    );
    let ga = guest::TestAgent::of(&live).await;
    let mut seen = String::new();
    until(
        "the guest finds the volume's disk",
        Duration::from_secs(60),
        async || {
            seen = ga.sh("cat /sys/block/vdb/size 2>&1; true").await;
            seen.contains("49152")
        },
    )
    .await;
    let out = ga
        .sh("echo volume-data-4711 > /dev/vdb && sync && echo ok")
        .await;
    assert!(out.contains("ok"), "{out}");
    dom.destroy(no_opts()).await.expect("destroy");
    let img = std::fs::read(dir.join("data.qcow2")).expect("image");
    assert!(
        img.windows(16).any(|w| w == b"volume-data-4711"),
        "the guest's write did not reach the volume's image"
    );
}
