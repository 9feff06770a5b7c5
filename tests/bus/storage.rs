//! Storage pools and volumes over the bus: a dir pool under the daemon's state dir, volumes
//! created, cloned, resized, wiped, uploaded, downloaded and deleted, each checked with
//! `qemu-img info` or the bytes on disk; refusals that leave nothing behind; signals; and the
//! pool surviving a restart (running again when it was, autostarted or not).

use std::{
    collections::HashMap,
    io::{Read, Write},
    path::Path,
    process::Command,
    time::Instant,
};

use zbus::{Fd, OwnedObjectPath, OwnedVariant};

use crate::support::*;

const POOL: &str = "org.virtbus1.StoragePool";
const VOL: &str = "org.virtbus1.StorageVolume";

async fn call<R>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    member: &str,
    body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
) -> zbus::Result<R>
where
    R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    let reply = conn
        .call_method(Some(NAME), path, Some(iface), member, body)
        .await?;
    reply.body().deserialize::<R>()
}

async fn call0(conn: &zbus::Connection, path: &str, iface: &str, member: &str) -> zbus::Result<()> {
    conn.call_method(Some(NAME), path, Some(iface), member, &(no_opts(),))
        .await
        .map(|_| ())
}

async fn prop(conn: &zbus::Connection, path: &str, iface: &str, name: &str) -> OwnedVariant {
    call::<OwnedVariant>(
        conn,
        path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &(iface, name),
    )
    .await
    .unwrap_or_else(|e| panic!("Get {name} of {path}: {e}"))
}

fn qemu_img_info(path: &Path) -> serde_json::Value {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_pool_and_volumes() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let dir = d.state.join("images/pool1");
    let pool_xml = format!(
        "<pool type='dir'><name>pool1</name><target><path>{}</path>\
         <permissions><mode>0750</mode></permissions></target></pool>",
        dir.display()
    );
    let pool: OwnedObjectPath = call(
        &conn,
        MANAGER,
        "org.virtbus1.Manager",
        "DefinePool",
        &(pool_xml.as_str(), no_opts()),
    )
    .await
    .expect("DefinePool");
    assert_eq!(pool.as_str(), "/org/virtbus1/pool/pool1");
    let p = pool.as_str();
    // not built yet: starting fails and says why
    let r = call0(&conn, p, POOL, "Start").await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    call0(&conn, p, POOL, "Build").await.expect("Build");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o750
    );
    call0(&conn, p, POOL, "Start").await.expect("Start");
    assert!(bool::try_from(prop(&conn, p, POOL, "Active").await).unwrap());
    assert!(u64::try_from(prop(&conn, p, POOL, "Capacity").await).unwrap() > 0);
    let s = sigs.take().await;
    let events: Vec<String> = s
        .iter()
        .filter_map(|s| match s {
            Sig::Other { member, .. } if member == "PoolEvent" => Some(member.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 3, "defined, created (built), started: {s:?}");
    assert!(
        s.iter().any(|s| matches!(s, Sig::InterfacesAdded { path, ifaces } if path == p && ifaces == &[POOL.to_string()])),
        "{s:?}"
    );

    // volumes: raw (sparse), qcow2, a clone, a child
    let raw: OwnedObjectPath = call(&conn, p, POOL, "CreateVolume", &(
        "<volume><name>data.img</name><capacity unit='MiB'>64</capacity><allocation>0</allocation></volume>",
        no_opts(),
    ))
    .await
    .expect("raw");
    let q: OwnedObjectPath = call(&conn, p, POOL, "CreateVolume", &(
        "<volume><name>disk.qcow2</name><capacity unit='M'>16</capacity><target><format type='qcow2'/></target></volume>",
        opts([("preallocation", "metadata".into())]),
    ))
    .await
    .expect("qcow2");
    let info = qemu_img_info(&dir.join("disk.qcow2"));
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 16 << 20);
    let info = qemu_img_info(&dir.join("data.img"));
    assert_eq!(info["format"], "raw");
    assert_eq!(info["virtual-size"], 64 << 20);
    assert_eq!(
        String::try_from(prop(&conn, q.as_str(), VOL, "Format").await).unwrap(),
        "qcow2"
    );
    assert_eq!(
        String::try_from(prop(&conn, raw.as_str(), VOL, "Path").await).unwrap(),
        dir.join("data.img").to_string_lossy()
    );
    let clone: OwnedObjectPath = call(
        &conn,
        p,
        POOL,
        "CloneVolume",
        &(
            "<volume><name>copy.qcow2</name><target><format type='qcow2'/></target></volume>",
            &q,
            no_opts(),
        ),
    )
    .await
    .expect("clone");
    let info = qemu_img_info(&dir.join("copy.qcow2"));
    assert_eq!(
        (info["format"].as_str(), info["virtual-size"].as_u64()),
        (Some("qcow2"), Some(16 << 20))
    );
    let child_xml = format!(
        "<volume><name>child.qcow2</name><target><format type='qcow2'/></target>\
         <backingStore><path>{}</path><format type='qcow2'/></backingStore></volume>",
        dir.join("disk.qcow2").display()
    );
    call::<OwnedObjectPath>(
        &conn,
        p,
        POOL,
        "CreateVolume",
        &(child_xml.as_str(), no_opts()),
    )
    .await
    .expect("child");
    let info = qemu_img_info(&dir.join("child.qcow2"));
    assert_eq!(
        info["backing-filename"],
        dir.join("disk.qcow2").to_string_lossy().as_ref()
    );
    assert_eq!(
        info["virtual-size"],
        16 << 20,
        "capacity from the backing image"
    );

    // resize: grow; shrinking needs the flag
    call::<()>(
        &conn,
        clone.as_str(),
        VOL,
        "Resize",
        &(32u64 << 20, no_opts()),
    )
    .await
    .expect("grow");
    assert_eq!(
        qemu_img_info(&dir.join("copy.qcow2"))["virtual-size"],
        32 << 20
    );
    let r = call::<()>(
        &conn,
        clone.as_str(),
        VOL,
        "Resize",
        &(8u64 << 20, no_opts()),
    )
    .await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert_eq!(
        qemu_img_info(&dir.join("copy.qcow2"))["virtual-size"],
        32 << 20
    );
    call::<()>(
        &conn,
        clone.as_str(),
        VOL,
        "Resize",
        &(8u64 << 20, opts([("shrink", true.into())])),
    )
    .await
    .expect("shrink");
    assert_eq!(
        qemu_img_info(&dir.join("copy.qcow2"))["virtual-size"],
        8 << 20
    );
    assert_eq!(
        u64::try_from(prop(&conn, clone.as_str(), VOL, "Capacity").await).unwrap(),
        8 << 20
    );

    // upload and download of 64 MiB through descriptors
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    {
        let mut f = std::fs::File::create(&src).expect("src");
        let mut rnd = std::fs::File::open("/dev/urandom").expect("urandom");
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..64 {
            rnd.read_exact(&mut buf).expect("random");
            f.write_all(&buf).expect("write");
        }
    }
    let input = std::fs::File::open(&src).expect("open src");
    let t0 = Instant::now();
    let n: u64 = call(
        &conn,
        raw.as_str(),
        VOL,
        "Upload",
        &(Fd::from(&input), no_opts()),
    )
    .await
    .expect("Upload");
    let up = t0.elapsed();
    assert_eq!(n, 64 << 20);
    let progress = sigs
        .take()
        .await
        .into_iter()
        .filter(|s| matches!(s, Sig::Other { member, path } if member == "Progress" && path == raw.as_str()))
        .count();
    assert!(progress >= 1, "no Progress signal");
    let dst = tmp.path().join("dst");
    let out = std::fs::File::create(&dst).expect("dst");
    let t0 = Instant::now();
    let n: u64 = call(
        &conn,
        raw.as_str(),
        VOL,
        "Download",
        &(Fd::from(&out), no_opts()),
    )
    .await
    .expect("Download");
    let down = t0.elapsed();
    assert_eq!(n, 64 << 20);
    drop(out);
    assert_eq!(sha256(&src), sha256(&dst));
    assert_eq!(sha256(&src), sha256(&dir.join("data.img")));
    eprintln!("64 MiB upload {up:.2?}, download {down:.2?}");
    // a part: 1 MiB from offset 1 MiB, through a pipe
    let (mut rd, wr) = std::io::pipe().expect("pipe");
    // read while the daemon writes: a pipe holds far less than 1 MiB
    let reader = std::thread::spawn(move || {
        let mut part = Vec::new();
        rd.read_to_end(&mut part).expect("pipe");
        part
    });
    let n: u64 = call(
        &conn,
        raw.as_str(),
        VOL,
        "Download",
        &(
            Fd::from(&wr),
            opts([
                ("offset", (1u64 << 20).into()),
                ("length", (1u64 << 20).into()),
            ]),
        ),
    )
    .await
    .expect("Download part");
    drop(wr);
    let part = reader.join().expect("reader");
    assert_eq!(n, 1 << 20);
    let whole = std::fs::read(&src).expect("src");
    assert!(part == whole[1 << 20..2 << 20]);

    // wipe: zeros
    call0(&conn, raw.as_str(), VOL, "Wipe").await.expect("Wipe");
    let bytes = std::fs::read(dir.join("data.img")).expect("wiped");
    assert_eq!(bytes.len(), 64 << 20);
    assert!(bytes.iter().all(|b| *b == 0), "wipe left data");

    // the ObjectManager lists the pool and its volumes
    type Objects = HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedVariant>>>;
    let objs: Objects = call(
        &conn,
        MANAGER,
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
        &(),
    )
    .await
    .expect("GetManagedObjects");
    for path in [p, raw.as_str(), q.as_str(), clone.as_str()] {
        assert!(objs.keys().any(|k| k.as_str() == path), "{path} missing");
    }
    let xml: String = call(&conn, q.as_str(), VOL, "GetXML", &(no_opts(),))
        .await
        .expect("xml");
    assert!(xml.contains("<format type='qcow2'/>"), "{xml}");
    let xml: String = call(&conn, p, POOL, "GetXML", &(no_opts(),))
        .await
        .expect("xml");
    assert!(xml.contains("<mode>0750</mode>"), "{xml}");

    // refusals, each leaving nothing behind
    let before: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    for (xml, want) in [
        (
            "<volume><name>a/b</name><capacity>1</capacity></volume>",
            "InvalidArgument",
        ),
        (
            "<volume><name>disk.qcow2</name><capacity>1</capacity></volume>",
            "AlreadyExists",
        ),
        (
            "<volume><name>huge.img</name><capacity unit='EiB'>8</capacity><allocation unit='EiB'>8</allocation></volume>",
            "InvalidArgument",
        ),
        (
            "<volume><name>x.vmdk</name><capacity>1</capacity><target><format type='vmdk'/></target></volume>",
            "NotSupported",
        ),
        (
            "<volume><name>y</name><capacity>1</capacity><bogus/></volume>",
            "InvalidArgument",
        ),
    ] {
        let r = call::<OwnedObjectPath>(&conn, p, POOL, "CreateVolume", &(xml, no_opts())).await;
        assert_eq!(
            error_name(&r),
            format!("org.virtbus1.Error.{want}"),
            "{xml}: {r:?}"
        );
    }
    let r = call::<OwnedObjectPath>(
        &conn,
        p,
        POOL,
        "CreateVolume",
        &(
            "<volume><name>y</name><capacity>1</capacity><bogus/></volume>",
            no_opts(),
        ),
    )
    .await;
    assert!(error_message(&r).contains("/volume/bogus"), "{r:?}");
    let after: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "a refused volume left a file");
    for (xml, want) in [
        (
            "<pool type='dir'><name>etc</name><target><path>/etc/virtbus-pool</path></target></pool>",
            "AccessDenied",
        ),
        (
            pool_xml.replace("pool1</name>", "other</name>").as_str(),
            "AlreadyExists",
        ),
        (
            "<pool type='logical'><name>lvm</name></pool>",
            "NotSupported",
        ),
    ] {
        let r = call::<OwnedObjectPath>(
            &conn,
            MANAGER,
            "org.virtbus1.Manager",
            "DefinePool",
            &(xml, no_opts()),
        )
        .await;
        assert_eq!(
            error_name(&r),
            format!("org.virtbus1.Error.{want}"),
            "{xml}: {r:?}"
        );
    }
    assert!(!Path::new("/etc/virtbus-pool").exists());

    // delete a volume
    call0(&conn, clone.as_str(), VOL, "Delete")
        .await
        .expect("Delete");
    assert!(!dir.join("copy.qcow2").exists());
    let r = call::<OwnedVariant>(
        &conn,
        clone.as_str(),
        "org.freedesktop.DBus.Properties",
        "Get",
        &(VOL, "Name"),
    )
    .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound", "{r:?}");

    // a restart: the running pool runs again though not autostarted, as libvirt's
    d.restart(&bus).await;
    let conn = bus.connect().await;
    assert!(
        bool::try_from(prop(&conn, p, POOL, "Active").await).unwrap(),
        "the running pool came back stopped"
    );
    assert!(!bool::try_from(prop(&conn, p, POOL, "Autostart").await).unwrap());

    // autostart, then a restart: the pool is back, started, with its volumes
    call::<()>(
        &conn,
        p,
        "org.freedesktop.DBus.Properties",
        "Set",
        &(POOL, "Autostart", zbus::Variant::from(true)),
    )
    .await
    .expect("autostart");
    d.restart(&bus).await;
    let conn = bus.connect().await;
    assert!(bool::try_from(prop(&conn, p, POOL, "Active").await).unwrap());
    assert!(bool::try_from(prop(&conn, p, POOL, "Autostart").await).unwrap());
    let vols: Vec<OwnedObjectPath> = call(&conn, p, POOL, "ListVolumes", &(no_opts(),))
        .await
        .expect("list");
    assert_eq!(vols.len(), 3, "{vols:?}");

    // stop, undefine: gone from the bus, the directory stays
    call0(&conn, p, POOL, "Stop").await.expect("Stop");
    call0(&conn, p, POOL, "Undefine").await.expect("Undefine");
    let pools: Vec<OwnedObjectPath> = call(
        &conn,
        MANAGER,
        "org.virtbus1.Manager",
        "ListPools",
        &(no_opts(),),
    )
    .await
    .expect("ListPools");
    assert!(pools.is_empty(), "{pools:?}");
    assert!(dir.join("disk.qcow2").exists());
}
