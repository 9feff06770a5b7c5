//! Unit tests of the storage XML, pools and raw volumes.

use super::*;
use crate::core::Error;

const POOL: &str = "<pool type='dir'>
  <name>images</name>
  <uuid>8c3a4bb6-6a02-4b51-a79d-1a5ef8b1c7a3</uuid>
  <capacity unit='bytes'>0</capacity>
  <allocation unit='bytes'>0</allocation>
  <available unit='bytes'>0</available>
  <source>
  </source>
  <target>
    <path>/var/lib/libvirt/images</path>
    <permissions>
      <mode>0711</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </target>
</pool>
";

const VOL: &str = "<volume type='file'>
  <name>disk.qcow2</name>
  <key>/var/lib/libvirt/images/disk.qcow2</key>
  <capacity unit='bytes'>1073741824</capacity>
  <allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>196704</physical>
  <target>
    <path>/var/lib/libvirt/images/disk.qcow2</path>
    <format type='qcow2'/>
    <permissions>
      <mode>0600</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
    <timestamps>
      <atime>1700000000.500000000</atime>
      <mtime>1700000001.000000001</mtime>
      <ctime>1700000002</ctime>
      <btime>0</btime>
    </timestamps>
    <compat>1.1</compat>
    <clusterSize unit='B'>65536</clusterSize>
    <features/>
  </target>
  <backingStore>
    <path>/var/lib/libvirt/images/base.img</path>
    <format type='raw'/>
    <permissions>
      <mode>0644</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </backingStore>
</volume>
";

#[test]
fn pool_round_trip() {
    let def = PoolDef::parse(POOL).unwrap();
    assert_eq!(def.path, "/var/lib/libvirt/images");
    assert_eq!(def.perms.mode, Some(0o711));
    assert_eq!(def.to_xml(PoolSizes::default(), None), POOL);
}

#[test]
fn pool_path_is_sanitised_and_uuid_generated() {
    let def = PoolDef::parse(
        "<pool type='dir'><name>p</name><target><path>//a//b/</path></target></pool>",
    )
    .unwrap();
    assert_eq!(def.path, "/a/b");
    assert!(!def.uuid.is_nil());
    let xml = def.to_xml(
        PoolSizes {
            capacity: 10,
            allocation: 4,
            available: 6,
        },
        None,
    );
    assert!(
        xml.contains("<allocation unit='bytes'>4</allocation>"),
        "{xml}"
    );
    assert!(xml.contains("  <source>\n  </source>\n"), "{xml}");
}

#[test]
fn pool_refusals_name_the_place() {
    let e = PoolDef::parse("<pool type='fs'><name>p</name></pool>").unwrap_err();
    assert!(
        matches!(e, Error::NotSupported(ref m) if m.contains("'fs'")),
        "{e:?}"
    );
    let e = PoolDef::parse("<pool type='bogus'/>").unwrap_err();
    assert!(e.to_string().contains("/pool/@type"), "{e}");
    let e =
        PoolDef::parse("<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>")
            .unwrap_err();
    assert!(e.to_string().contains("/pool/name"), "{e}");
    let e = PoolDef::parse(
        "<pool type='dir'><name>p</name><target><path>/x</path><foo/></target></pool>",
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "unknown element /pool/target/foo");
    let e = PoolDef::parse("<pool type='dir'><name>p</name></pool>").unwrap_err();
    assert_eq!(e.to_string(), "missing /pool/target");
    let e = PoolDef::parse(
        "<pool type='dir'><name>p</name><target><path>/x</path>\
         <permissions><mode>1777</mode></permissions></target></pool>",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("/pool/target/permissions/mode"),
        "{e}"
    );
}

#[test]
fn volume_round_trip() {
    let def = VolDef::parse(VOL).unwrap();
    assert_eq!(def.capacity, Some(1 << 30));
    assert_eq!(def.target.format, Some(VolFormat::Qcow2));
    assert_eq!(def.target.features, Some(vec![]));
    assert_eq!(def.to_xml(), VOL);
}

#[test]
fn volume_request_units_and_features() {
    let def = VolDef::parse(
        "<volume><name>a</name><capacity unit='G'>2</capacity>\
         <allocation unit='KB'>3</allocation>\
         <target><format type='qcow2'/><features><lazy_refcounts/></features></target></volume>",
    )
    .unwrap();
    assert_eq!(def.capacity, Some(2 << 30));
    assert_eq!(def.allocation, Some(3000));
    assert_eq!(def.target.compat.as_deref(), Some("1.1"));
    assert_eq!(
        def.target.features,
        Some(vec![vol_xml::VolFeature::LazyRefcounts])
    );
}

#[test]
fn volume_refusals_name_the_place() {
    let e = VolDef::parse("<volume><name>a/b</name></volume>").unwrap_err();
    assert!(e.to_string().contains("/volume/name"), "{e}");
    let e = VolDef::parse("<volume><name>..</name></volume>").unwrap_err();
    assert!(e.to_string().contains("/volume/name"), "{e}");
    let e = VolDef::parse("<volume><name>a</name><capacity unit='Q'>1</capacity></volume>")
        .unwrap_err();
    assert!(e.to_string().contains("/volume/capacity/@unit"), "{e}");
    let e = VolDef::parse("<volume><name>a</name><capacity unit='E'>16</capacity></volume>")
        .unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
    let e = VolDef::parse("<volume><name>a</name><target><format type='qcow3'/></target></volume>")
        .unwrap_err();
    assert!(e.to_string().contains("/volume/target/format/@type"), "{e}");
    let e = VolDef::parse(
        "<volume><name>a</name><target><features><dirty/></features></target></volume>",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown element /volume/target/features/dirty"
    );
    let e =
        VolDef::parse("<volume><name>a</name><target><encryption/></target></volume>").unwrap_err();
    assert!(matches!(e, Error::NotSupported(_)), "{e:?}");
}

/// `<disk type='volume'>`: the pool and volume are kept and written back, never the path the
/// volume resolves to; iSCSI's `mode` is refused.
#[test]
fn volume_disks_round_trip() {
    use crate::model::{DomainDef, FormatOptions};
    let xml = "<domain type='qemu'><name>v</name><memory unit='KiB'>65536</memory>\
        <os><type>hvm</type></os><devices><disk type='volume' device='disk'>\
        <driver name='qemu' type='qcow2'/><source pool='default' volume='a b.qcow2' \
        startupPolicy='optional'/><target dev='vda' bus='virtio'/></disk></devices></domain>";
    let mut def = DomainDef::from_xml(xml).unwrap();
    let out = def.to_xml(&FormatOptions::default());
    assert!(
        out.contains(
            "<disk type='volume' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      \
             <source pool='default' volume='a b.qcow2' startupPolicy='optional'/>"
        ),
        "{out}"
    );
    let src = def.devices.disks[0].source.as_mut().unwrap();
    src.path = Some("/var/lib/libvirt/images/a b.qcow2".into());
    assert_eq!(def.to_xml(&FormatOptions::default()), out);
    let e = DomainDef::from_xml(&xml.replace("volume='a b.qcow2'", "volume='a' mode='host'"))
        .unwrap_err();
    assert!(e.to_string().contains("@mode"), "{e}");
    let e = DomainDef::from_xml(&xml.replace(" volume='a b.qcow2'", "")).unwrap_err();
    assert!(e.to_string().contains("/source/@volume"), "{e}");
}

fn settings(root: &std::path::Path) -> Settings {
    Settings {
        state_dir: Some(root.join("storage")),
        pool_dirs: vec![root.join("images")],
        default_pool: Some(root.join("images")),
        run_dir: Some(root.join("run")),
    }
}

/// The default pool is set up on the first load only, with libvirt's directory mode, and a
/// removed one stays removed; a defined pool comes back with its autostart.
#[tokio::test]
async fn default_pool_and_persistence() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let st = Storage::new(settings(tmp.path()));
    st.load().await;
    let info = st.pool("default").unwrap().info();
    assert!(info.active && info.persistent && info.autostart, "{info:?}");
    let mode = std::fs::metadata(tmp.path().join("images"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o711);
    let sub = tmp.path().join("images/sub");
    st.define(&format!(
        "<pool type='dir'><name>sub</name><target><path>{}</path></target></pool>",
        sub.display()
    ))
    .await
    .unwrap();
    st.stop("default").await.unwrap();
    st.undefine("default").await.unwrap();
    assert!(st.pool("default").is_err());

    let again = Storage::new(settings(tmp.path()));
    assert_eq!(again.load().await, 1);
    assert!(
        again.pool("default").is_err(),
        "a removed default pool came back"
    );
    let sub_info = again.pool("sub").unwrap().info();
    assert!(sub_info.persistent && !sub_info.active && !sub_info.autostart);
    // a duplicate name, and a path outside the allowed ones, are refused
    let e = again
        .define(&format!(
            "<pool type='dir'><name>sub</name><target><path>{}/x</path></target></pool>",
            tmp.path().join("images").display()
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    let e = again
        .define("<pool type='dir'><name>etc</name><target><path>/etc</path></target></pool>")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AccessDenied(_)), "{e:?}");
}

/// A pool that was running when the daemon stopped runs again at its next start (autostart
/// or not); one stopped, or one whose marker a host reboot removed, stays stopped.
#[tokio::test]
async fn running_pools_start_again() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Storage::new(settings(tmp.path()));
    st.load().await;
    for name in ["a", "b"] {
        let dir = tmp.path().join("images").join(name);
        st.define(&format!(
            "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
            dir.display()
        ))
        .await
        .unwrap();
        st.build(name).await.unwrap();
        st.start(name).await.unwrap();
    }
    st.stop("b").await.unwrap();
    drop(st);

    let again = Storage::new(settings(tmp.path()));
    again.load().await;
    let active = |s: &Storage, n: &str| s.pool(n).unwrap().info().active;
    assert!(active(&again, "a"), "a running pool came back stopped");
    assert!(!active(&again, "b"), "a stopped pool came back running");
    assert!(!again.pool("a").unwrap().info().autostart);
    drop(again);

    // a host reboot empties the runtime directory: only autostart pools start
    std::fs::remove_dir_all(tmp.path().join("run")).unwrap();
    let rebooted = Storage::new(settings(tmp.path()));
    rebooted.load().await;
    assert!(!active(&rebooted, "a"));
    assert!(active(&rebooted, "default"), "the autostart pool");
}

/// In memory (the Test connect): nothing on disk, a fixed capacity, volumes kept while the
/// pool is stopped, and libvirt's test driver's refusals.
#[tokio::test]
async fn pools_in_memory() {
    let st = Storage::new_in_memory();
    st.define("<pool type='dir'><name>m</name><target><path>/nowhere/m</path></target></pool>")
        .await
        .unwrap();
    st.build("m").await.unwrap();
    st.start("m").await.unwrap();
    assert!(!std::path::Path::new("/nowhere").exists());
    let v = st
        .create_volume(
            "m",
            "<volume><name>v</name><capacity>4096</capacity><allocation>1024</allocation></volume>",
            CreateOptions::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (v.path.as_str(), v.key.as_str()),
        ("/nowhere/m/v", "/nowhere/m/v")
    );
    let sizes = st.pool("m").unwrap().info().sizes;
    assert_eq!((sizes.capacity, sizes.allocation), (100 << 30, 1024));
    let e = st
        .create_volume(
            "m",
            "<volume><name>big</name><capacity>1</capacity><allocation unit='TiB'>1</allocation></volume>",
            CreateOptions::default(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Failed(_)), "{e:?}");
    let e = st.wipe_volume("m", "v").await.unwrap_err();
    assert!(matches!(e, Error::Unimplemented(_)), "{e:?}");
    st.stop("m").await.unwrap();
    st.start("m").await.unwrap();
    assert_eq!(st.list_volumes("m").unwrap().len(), 1, "volumes stay");
    st.delete_volume("m", "v").await.unwrap();
    assert_eq!(st.pool("m").unwrap().info().sizes.allocation, 0);
}

/// Raw volumes: allocation reserved up front, libvirt's wipe for sparse and allocated files,
/// growth without blocks, shrinking only when asked; a busy volume holds its pool.
#[tokio::test]
async fn raw_volumes_and_busy_pools() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let st = Storage::new(Settings {
        state_dir: None,
        pool_dirs: vec![tmp.path().to_path_buf()],
        default_pool: None,
        run_dir: None,
    });
    let dir = tmp.path().join("p");
    st.create(
        &format!(
            "<pool type='dir'><name>p</name><target><path>{}</path></target></pool>",
            dir.display()
        ),
        true,
    )
    .await
    .unwrap();
    let v = st
        .create_volume(
            "p",
            "<volume><name>a.img</name><capacity unit='MiB'>4</capacity>\
             <allocation unit='MiB'>1</allocation></volume>",
            CreateOptions::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(v.capacity, 4 << 20);
    assert!(v.allocation >= 1 << 20, "{v:?}");
    let m = std::fs::metadata(dir.join("a.img")).unwrap();
    assert_eq!((m.len(), m.mode() & 0o777), (4 << 20, 0o600));

    // a fully allocated file is overwritten and stays allocated
    st.create_volume(
        "p",
        "<volume><name>full.img</name><capacity unit='MiB'>1</capacity>\
         <allocation unit='MiB'>1</allocation></volume>",
        CreateOptions::default(),
        None,
    )
    .await
    .unwrap();
    std::fs::write(dir.join("full.img"), vec![0xaa; 1 << 20]).unwrap();
    st.wipe_volume("p", "full.img").await.unwrap();
    let bytes = std::fs::read(dir.join("full.img")).unwrap();
    assert!(bytes.len() == 1 << 20 && bytes.iter().all(|b| *b == 0));
    assert!(std::fs::metadata(dir.join("full.img")).unwrap().blocks() * 512 >= 1 << 20);

    // growth is sparse; shrinking needs the flag
    let grown = st
        .resize_volume("p", "full.img", 8 << 20, ResizeOptions::default())
        .await
        .unwrap();
    assert_eq!(grown.capacity, 8 << 20);
    assert!(grown.allocation < 4 << 20, "{grown:?}");
    let e = st
        .resize_volume("p", "full.img", 1 << 20, ResizeOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let shrink = ResizeOptions {
        shrink: true,
        ..Default::default()
    };
    st.resize_volume("p", "full.img", 1 << 20, shrink)
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(dir.join("full.img")).unwrap().len(),
        1 << 20
    );

    // a volume with a job running keeps its pool from stopping, and itself from a second job
    let held = st.hold_volume("p", "a.img", "upload").unwrap();
    let e = st.stop("p").await.unwrap_err();
    assert!(e.to_string().contains("upload"), "{e}");
    let e = st.delete_volume("p", "a.img").await.unwrap_err();
    assert!(matches!(e, Error::InvalidState(_)), "{e:?}");
    assert_eq!(st.volume("p", "a.img").unwrap().job, "upload");
    drop(held);
    st.delete_volume("p", "a.img").await.unwrap();
    assert!(!dir.join("a.img").exists());
    st.stop("p").await.unwrap();
    assert!(st.pool("p").is_err(), "a stopped transient pool is gone");
}

/// The uid of a volume's creator is kept with the storage state: it survives a restart
/// (a new `Storage` on the same state), goes with the volume, and a file that appears in
/// the directory, or replaces an owned one, is nobody's.
#[tokio::test]
async fn volume_owners_persist_and_follow_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings {
        state_dir: Some(tmp.path().join("state")),
        pool_dirs: vec![tmp.path().to_path_buf()],
        default_pool: None,
        run_dir: Some(tmp.path().join("run")),
    };
    let dir = tmp.path().join("p");
    let st = Storage::new(settings.clone());
    st.define(&format!(
        "<pool type='dir'><name>p</name><target><path>{}</path></target></pool>",
        dir.display()
    ))
    .await
    .unwrap();
    st.build("p").await.unwrap();
    st.start("p").await.unwrap();
    let vol = |n: &str| format!("<volume><name>{n}</name><capacity>4096</capacity></volume>");
    for (name, owner) in [
        ("a.img", Some(61001)),
        ("b.img", Some(61002)),
        ("r.img", None),
    ] {
        st.create_volume("p", &vol(name), CreateOptions::default(), owner)
            .await
            .unwrap();
    }
    st.clone_volume(
        "p",
        &vol("c.img"),
        "p",
        "r.img",
        CreateOptions::default(),
        Some(61001),
    )
    .await
    .unwrap();
    let owners = |st: &Storage| {
        ["a.img", "b.img", "c.img", "r.img", "x.img"].map(|v| st.volume_owner("p", v))
    };
    assert_eq!(
        owners(&st),
        [Some(61001), Some(61002), Some(61001), None, None]
    );

    // a restart: the pool starts again with its owners
    drop(st);
    let st = Storage::new(settings.clone());
    st.load().await;
    assert_eq!(
        owners(&st),
        [Some(61001), Some(61002), Some(61001), None, None]
    );

    // deleted: the record goes with the volume; a new one of that name is root's
    st.delete_volume("p", "a.img").await.unwrap();
    st.create_volume("p", &vol("a.img"), CreateOptions::default(), None)
        .await
        .unwrap();
    // found by a refresh: nobody's; replaced outside the daemon: nobody's any more
    std::fs::write(dir.join("x.img"), b"x").unwrap();
    std::fs::rename(dir.join("b.img"), dir.join("old")).unwrap();
    std::fs::write(dir.join("b.img"), b"b").unwrap();
    st.refresh("p").await.unwrap();
    assert_eq!(owners(&st), [None, None, Some(61001), None, None]);

    drop(st);
    let st = Storage::new(settings);
    st.load().await;
    assert_eq!(owners(&st), [None, None, Some(61001), None, None]);
}

/// In memory too, volumes record their creator.
#[tokio::test]
async fn volume_owners_in_memory() {
    let st = Storage::new_in_memory();
    st.define("<pool type='dir'><name>m</name><target><path>/nowhere/m</path></target></pool>")
        .await
        .unwrap();
    st.start("m").await.unwrap();
    let vol = "<volume><name>v</name><capacity>4096</capacity></volume>";
    st.create_volume("m", vol, CreateOptions::default(), Some(61001))
        .await
        .unwrap();
    assert_eq!(st.volume_owner("m", "v"), Some(61001));
    let e = st
        .create_volume("m", vol, CreateOptions::default(), Some(61002))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    assert_eq!(
        st.volume_owner("m", "v"),
        Some(61001),
        "a refused creation owns nothing"
    );
    st.delete_volume("m", "v").await.unwrap();
    assert_eq!(st.volume_owner("m", "v"), None);
}
