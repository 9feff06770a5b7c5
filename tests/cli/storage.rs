//! Pools and volumes through the client: a dir pool in the test's directory, every verb, the
//! JSON shapes, refusals (unknown pool, a volume name with '/', a bad size), and a 64 MiB
//! transfer whose `Progress` signals show as lines off a terminal and as a bar on one.

use std::{
    io::{Read, Write},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use crate::Env;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A daemon with the dir pool `pool1` defined, built and started under the test's directory.
async fn with_pool() -> (Env, std::path::PathBuf) {
    let env = Env::start().await;
    let dir = env.daemon.state.join("images/pool1");
    let xml = format!(
        "<pool type='dir'><name>pool1</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let f = env.file("pool1.xml", &xml);
    let out = env.run(&["pool", "define", f.to_str().expect("path")]);
    assert!(out.ok().starts_with("pool pool1 defined ("), "{out:?}");
    env.run(&["pool", "build", "pool1"]).ok();
    env.run(&["pool", "start", "pool1"]).ok();
    (env, dir)
}

#[tokio::test]
async fn pool_verbs_human_and_json() {
    let env = Env::start().await;
    let dir = env.daemon.state.join("images/pool1");
    let xml = format!(
        "<pool type='dir'><name>pool1</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let f = env.file("pool1.xml", &xml);
    let f = f.to_str().expect("path");
    let out = env.run(&["pool", "define", f]);
    assert!(out.ok().starts_with("pool pool1 defined ("), "{out:?}");
    assert_eq!(
        env.run(&["pool", "list"]).ok(),
        "No active storage pools.\n"
    );
    assert_eq!(
        env.run(&["pool", "list", "--all", "--name"]).ok(),
        "pool1\n"
    );
    // Not built: starting it is a state error that says why.
    let r = env.run(&["pool", "start", "pool1"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.ends_with("(InvalidState)\n"), "{r:?}");
    assert_eq!(
        env.run(&["pool", "build", "pool1"]).ok(),
        "pool pool1 built\n"
    );
    assert!(dir.is_dir());
    assert_eq!(
        env.run(&["pool", "start", "pool1"]).ok(),
        "pool pool1 started\n"
    );
    assert_eq!(
        env.run(&["pool", "autostart", "pool1", "on"]).ok(),
        "pool pool1 starts at boot\n"
    );
    assert_eq!(
        env.run(&["pool", "refresh", "pool1"]).ok(),
        "pool pool1 refreshed\n"
    );

    let j = env.run(&["pool", "info", "pool1", "--json"]).json();
    assert_eq!(j["name"], "pool1");
    assert_eq!(j["state"], "active");
    assert_eq!(j["active"], true);
    assert_eq!(j["persistent"], true);
    assert_eq!(j["autostart"], true);
    assert_eq!(j["path"], dir.to_str().expect("path"));
    assert_eq!(j["volumes"], 0);
    assert!(j["uuid"].as_str().is_some_and(|u| u.len() == 36), "{j}");
    for k in ["capacity", "allocation", "available"] {
        assert!(j[k].as_u64().is_some(), "{k}: {j}");
    }
    assert!(j["capacity"].as_u64() > Some(0), "{j}");
    let list = env.run(&["pool", "list", "--json"]).json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0], {
        let mut k = j.clone();
        k.as_object_mut().expect("object").remove("volumes");
        k
    });
    let text = env.run(&["pool", "list"]).ok().to_owned();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATE",
            "AUTOSTART",
            "CAPACITY",
            "ALLOCATION",
            "AVAILABLE",
            "PATH"
        ]
    );
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(&row[..3], ["pool1", "active", "yes"], "{text}");
    assert_eq!(row.last().copied(), dir.to_str(), "{text}");
    assert!(text.ends_with("\n1 pool listed.\n"), "{text}");
    let info = env.run(&["pool", "info", "pool1"]).ok().to_owned();
    assert!(info.starts_with("pool1\n       State: active\n"), "{info}");
    assert!(info.contains("\n     Volumes: 0\n"), "{info}");
    let xml = env.run(&["pool", "dumpxml", "pool1"]).ok().to_owned();
    assert!(xml.contains("<name>pool1</name>"), "{xml}");
    assert_eq!(
        env.run(&["pool", "dumpxml", "pool1", "--json"]).json()["xml"],
        xml.as_str()
    );

    // Unknown pools: not found, exit code 3, one line naming it.
    let r = env.run(&["pool", "info", "nopool"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.stderr, "virtbusctl: no storage pool named 'nopool'\n");
    let r = env.run(&["pool", "start", "nopool"]);
    assert_eq!(r.code, 3, "{r:?}");
    // Bad XML: invalid, exit code 4, nothing defined.
    let bad = format!(
        "<pool type='dir'><name>p2</name><target><path>{}</path></target><bogus/></pool>",
        dir.with_file_name("p2").display()
    );
    let bad = env.file("bad.xml", &bad);
    let r = env.run(&["pool", "define", bad.to_str().expect("path")]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("bogus"), "{r:?}");
    assert_eq!(
        env.run(&["pool", "list", "--all", "--name"]).ok(),
        "pool1\n"
    );

    env.run(&["pool", "autostart", "pool1", "off"]).ok();
    assert_eq!(
        env.run(&["pool", "stop", "pool1"]).ok(),
        "pool pool1 stopped\n"
    );
    assert_eq!(
        env.run(&["pool", "list"]).ok(),
        "No active storage pools.\n"
    );
    let j = env.run(&["pool", "info", "pool1", "--json"]).json();
    assert_eq!(
        (j["state"].as_str(), j["volumes"].is_null()),
        (Some("inactive"), true)
    );
    assert_eq!(
        env.run(&["pool", "delete", "pool1"]).ok(),
        "pool pool1 deleted\n"
    );
    assert!(!dir.exists());
    assert_eq!(
        env.run(&["pool", "undefine", "pool1"]).ok(),
        "pool pool1 undefined\n"
    );
    assert_eq!(
        env.run(&["pool", "list", "--all", "--json"]).json(),
        serde_json::json!([])
    );

    // A transient pool: create --build starts it at once; stopping it forgets it.
    let out = env.run(&["pool", "create", "--build", f]);
    assert!(out.ok().starts_with("pool pool1 started ("), "{out:?}");
    let j = env.run(&["pool", "info", "pool1", "--json"]).json();
    assert_eq!(
        (j["active"].as_bool(), j["persistent"].as_bool()),
        (Some(true), Some(false))
    );
    env.run(&["pool", "stop", "pool1"]).ok();
    assert_eq!(env.run(&["pool", "list", "--all", "--name"]).ok(), "");
}

#[tokio::test]
async fn volume_verbs_human_and_json_and_refusals() {
    let (env, dir) = with_pool().await;
    assert_eq!(
        env.run(&["vol", "list", "pool1"]).ok(),
        "No volumes in pool1.\n"
    );
    assert_eq!(
        env.run(&["vol", "create", "pool1", "data.img", "64M"]).ok(),
        "volume data.img created in pool1 (raw, 64 MiB)\n"
    );
    assert_eq!(
        env.run(&[
            "vol",
            "create",
            "pool1",
            "disk.qcow2",
            "1.5GiB",
            "--format",
            "qcow2"
        ])
        .ok(),
        "volume disk.qcow2 created in pool1 (qcow2, 1.5 GiB)\n"
    );
    let base = dir.join("disk.qcow2");
    let base = base.to_str().expect("path");
    env.run(&[
        "vol",
        "create",
        "pool1",
        "child.qcow2",
        "1.5G",
        "--format",
        "qcow2",
        "--backing",
        base,
        "--backing-format",
        "qcow2",
    ])
    .ok();
    let img = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(dir.join("child.qcow2"))
        .output()
        .expect("qemu-img");
    let img: serde_json::Value = serde_json::from_slice(&img.stdout).expect("json");
    assert_eq!(img["backing-filename"], base, "{img}");
    assert_eq!(img["virtual-size"], 3u64 << 29);

    assert_eq!(
        env.run(&["vol", "list", "pool1", "--name"]).ok(),
        "child.qcow2\ndata.img\ndisk.qcow2\n"
    );
    let list = env.run(&["vol", "list", "pool1", "--json"]).json();
    let vols = list.as_array().expect("array");
    assert_eq!(vols.len(), 3);
    let data = &vols[1];
    assert_eq!(data["name"], "data.img");
    assert_eq!(data["pool"], "pool1");
    assert_eq!(data["format"], "raw");
    assert_eq!(data["capacity"], 64u64 << 20);
    assert!(data["allocation"].as_u64().is_some(), "{data}");
    assert_eq!(data["path"], dir.join("data.img").to_str().expect("path"));
    assert_eq!(data["key"], data["path"]);
    assert_eq!(data["job"], "");
    let text = env.run(&["vol", "list", "pool1"]).ok().to_owned();
    let header: Vec<&str> = text
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "FORMAT", "CAPACITY", "ALLOCATION", "PATH"]);
    assert!(text.contains("\ndisk.qcow2   qcow2    1.5 GiB"), "{text}");
    assert!(text.ends_with("\n3 volumes listed.\n"), "{text}");
    assert_eq!(
        env.run(&["vol", "info", "pool1", "data.img", "--json"])
            .json(),
        *data
    );
    let info = env
        .run(&["vol", "info", "pool1", "disk.qcow2"])
        .ok()
        .to_owned();
    assert!(
        info.starts_with("disk.qcow2\n        Pool: pool1\n"),
        "{info}"
    );
    assert!(
        info.contains("\n      Format: qcow2\n    Capacity: 1.5 GiB\n"),
        "{info}"
    );
    let xml = env
        .run(&["vol", "dumpxml", "pool1", "data.img"])
        .ok()
        .to_owned();
    assert!(xml.contains("<name>data.img</name>"), "{xml}");
    assert_eq!(
        env.run(&["vol", "dumpxml", "pool1", "data.img", "--json"])
            .json()["xml"],
        xml.as_str()
    );

    assert_eq!(
        env.run(&["vol", "clone", "pool1", "disk.qcow2", "copy.qcow2"])
            .ok(),
        "volume copy.qcow2 created in pool1 (qcow2, 1.5 GiB)\n"
    );
    assert_eq!(
        env.run(&["vol", "resize", "pool1", "copy.qcow2", "2G"])
            .ok(),
        "volume copy.qcow2 resized to 2 GiB\n"
    );
    assert_eq!(
        env.run(&["vol", "resize", "pool1", "copy.qcow2", "512M", "--delta"])
            .ok(),
        "volume copy.qcow2 resized to 2.5 GiB\n"
    );
    // Smaller only with --shrink: refused, unchanged.
    let r = env.run(&["vol", "resize", "pool1", "copy.qcow2", "1G"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("shrink"), "{r:?}");
    assert_eq!(
        env.run(&["vol", "info", "pool1", "copy.qcow2", "--json"])
            .json()["capacity"],
        5u64 << 29
    );
    assert_eq!(
        env.run(&["vol", "resize", "pool1", "copy.qcow2", "1G", "--shrink"])
            .ok(),
        "volume copy.qcow2 resized to 1 GiB\n"
    );
    std::fs::write(dir.join("data.img"), b"not zero").expect("write");
    assert_eq!(
        env.run(&["vol", "wipe", "pool1", "data.img"]).ok(),
        "volume data.img wiped\n"
    );
    let mut head = [1u8; 8];
    std::fs::File::open(dir.join("data.img"))
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("read");
    assert_eq!(head, [0; 8]);

    // Refusals, each one line with its exit code, nothing created.
    let r = env.run(&["vol", "list", "nopool"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (3, "virtbusctl: no storage pool named 'nopool'\n")
    );
    let r = env.run(&["vol", "create", "nopool", "x.img", "1M"]);
    assert_eq!(r.code, 3, "{r:?}");
    let r = env.run(&["vol", "info", "pool1", "missing.img"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            3,
            "virtbusctl: no volume named 'missing.img' in pool 'pool1'\n"
        )
    );
    let r = env.run(&["vol", "create", "pool1", "a/b", "1M"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("a/b") && r.stderr.ends_with("(InvalidArgument)\n"),
        "{r:?}"
    );
    let r = env.run(&["vol", "create", "pool1", "x.img", "12Q"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("'12Q' is not a size"), "{r:?}");
    let r = env.run(&["vol", "resize", "pool1", "data.img", "1.5"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("'1.5' is not a whole number of bytes"),
        "{r:?}"
    );
    let r = env.run(&["vol", "create", "pool1", "data.img", "1M"]);
    assert_eq!(r.code, 4, "{r:?}");
    let r = env.run(&["vol", "create", "pool1", "y.img", "1M", "--format", "nope"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("nope"), "{r:?}");
    assert_eq!(
        env.run(&["vol", "list", "pool1", "--name"]).ok(),
        "child.qcow2\ncopy.qcow2\ndata.img\ndisk.qcow2\n"
    );

    for v in ["child.qcow2", "copy.qcow2", "data.img", "disk.qcow2"] {
        assert_eq!(
            env.run(&["vol", "delete", "pool1", v]).ok(),
            format!("volume {v} deleted\n")
        );
        assert!(!dir.join(v).exists());
    }
    // A stopped pool has no volumes to list: a state error that says how to start it.
    env.run(&["pool", "stop", "pool1"]).ok();
    let r = env.run(&["vol", "list", "pool1"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("virtbusctl pool start pool1"), "{r:?}");
}

/// 64 MiB of random bytes.
fn random_file(path: &Path) {
    let mut f = std::fs::File::create(path).expect("create");
    let mut rnd = std::fs::File::open("/dev/urandom").expect("urandom");
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..64 {
        rnd.read_exact(&mut buf).expect("random");
        f.write_all(&buf).expect("write");
    }
}

/// Feed `src` into the FIFO at `fifo` slowly (64 steps over about 2.5 s), so the daemon's
/// transfer takes long enough to report progress several times.
fn feed_slowly(src: std::path::PathBuf, fifo: std::path::PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let data = std::fs::read(&src).expect("read");
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        for chunk in data.chunks(1 << 20) {
            w.write_all(chunk).expect("feed");
            std::thread::sleep(Duration::from_millis(40));
        }
    })
}

fn mkfifo(path: &Path) {
    assert!(
        Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo")
            .success()
    );
}

#[tokio::test]
async fn upload_and_download_show_progress_as_lines_or_a_bar() {
    let (env, dir) = with_pool().await;
    env.run(&["vol", "create", "pool1", "data.img", "64M"]).ok();
    let src = env.dir().join("src.bin");
    random_file(&src);

    // Off a terminal: plain lines on standard error, one per tenth, the last at 100%.
    let fifo = env.dir().join("feed");
    mkfifo(&fifo);
    let feeder = feed_slowly(src.clone(), fifo.clone());
    let out = env.run(&[
        "vol",
        "upload",
        "pool1",
        "data.img",
        fifo.to_str().expect("path"),
        "--length",
        "67108864",
    ]);
    feeder.join().expect("feeder");
    assert_eq!(out.ok(), "64 MiB written into data.img\n");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines.len() >= 3, "too few progress lines: {lines:?}");
    for l in &lines {
        assert!(l.starts_with("upload into data.img: "), "{l:?}");
    }
    assert_eq!(
        lines.last().copied(),
        Some("upload into data.img: 100% (64 MiB of 64 MiB)")
    );
    assert!(
        !out.stderr.contains('\r') && !out.stderr.contains('\x1b'),
        "{out:?}"
    );
    assert_eq!(sha256(&dir.join("data.img")), sha256(&src));

    // Download into a file: the bytes are the volume's.
    let dst = env.dir().join("dst.bin");
    let out = env.run(&[
        "vol",
        "download",
        "pool1",
        "data.img",
        dst.to_str().expect("path"),
    ]);
    assert_eq!(out.ok(), "64 MiB read from data.img\n");
    assert_eq!(
        out.stderr.lines().last(),
        Some("download of data.img: 100% (64 MiB of 64 MiB)"),
        "{out:?}"
    );
    assert_eq!(sha256(&dst), sha256(&src));
    // To standard output: the bytes there, the message on standard error.
    let out = env
        .command(&["vol", "download", "pool1", "data.img", "-"])
        .stdout(Stdio::piped())
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.len(), 64 << 20);
    assert!(
        String::from_utf8_lossy(&out.stderr).ends_with("64 MiB read from data.img\n"),
        "{out:?}"
    );

    // On a terminal (script(1) gives the client a pty on standard error): a progress bar
    // redrawn in place, counting bytes, cleared at the end.
    env.run(&["vol", "wipe", "pool1", "data.img"]).ok();
    let feeder = feed_slowly(src.clone(), fifo.clone());
    let cmd = format!(
        "{} --user vol upload pool1 data.img {} --length 64M",
        env!("CARGO_BIN_EXE_virtbusctl"),
        fifo.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("DBUS_SESSION_BUS_ADDRESS", &env.bus.address)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("script");
    feeder.join().expect("feeder");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("upload into data.img ["), "{tty:?}");
    assert!(tty.contains("/64.00 MiB"), "{tty:?}");
    assert!(
        tty.contains('\r') || tty.contains("\x1b["),
        "not redrawn: {tty:?}"
    );
    assert!(
        !tty.contains("upload into data.img: "),
        "plain lines on a tty: {tty:?}"
    );
    assert!(
        tty.trim_end().ends_with("64 MiB written into data.img"),
        "{tty:?}"
    );
    assert_eq!(sha256(&dir.join("data.img")), sha256(&src));
}
