//! `<filesystem type='file'>` (raw images on loop devices the controller attaches with
//! `LOOP_CONFIGURE`), `<filesystem type='block'>`, and `<blkiotune>` on the blkio cgroup,
//! over real ext4 images made with mkfs.ext4 at test time and real loop devices.

use std::process::Command;

use super::*;

/// An ext4 image of `mib` MiB at `img` holding the files of `content` (mkfs.ext4 -d).
fn ext4_image(img: &Path, content: &Path, mib: u32) {
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(content)
        .arg(img)
        .arg(format!("{mib}M"))
        .output()
        .expect("mkfs.ext4 (package e2fsprogs)");
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The loop devices attached to `img` now (from sysfs).
fn loops_of(img: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").expect("sysfs").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop")
            && std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| Path::new(b.trim_end()) == img)
        {
            out.push(name);
        }
    }
    out
}

/// A file of an ext4 image, read on the host with debugfs (no mount needed).
fn image_file(img: &Path, file: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {file}"))
        .arg(img)
        .output()
        .expect("debugfs (package e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop device the test attaches itself (losetup), detached when dropped.
struct TestLoop(String);

impl TestLoop {
    fn new(img: &Path) -> TestLoop {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(img)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        TestLoop(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for TestLoop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn method_error<T: std::fmt::Debug>(r: &zbus::Result<T>) -> (String, String) {
    match r {
        Err(zbus::Error::MethodError(n, m, _)) => (n.to_string(), m.clone().unwrap_or_default()),
        other => panic!("not a method error: {other:?}"),
    }
}

/// A raw ext4 image at `/img` and a read-only one at `/roimg`: the container reads the
/// image's file and writes one the host then finds in the image; the read-only image (on a
/// read-only loop device) refuses writes; both loop devices are released after the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_images_are_mounted_on_loop_devices_and_released() {
    let s = setup().await;
    let dir = s.bus.dir.path();
    for (d, f, text) in [
        ("c-data", "hello.txt", "hello from the image\n"),
        ("c-ro", "ro.txt", "ro\n"),
    ] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        std::fs::write(dir.join(d).join(f), text).expect("write");
    }
    let data = dir.join("data.img");
    let ro = dir.join("ro.img");
    ext4_image(&data, &dir.join("c-data"), 8);
    ext4_image(&ro, &dir.join("c-ro"), 8);
    let fs = format!(
        "<filesystem type='file' accessmode='passthrough'><driver type='loop' format='raw'/>\
         <source file='{}'/><target dir='/img'/></filesystem>\
         <filesystem type='file'><source file='{}'/><target dir='/roimg'/><readonly/>\
         </filesystem>",
        data.display(),
        ro.display()
    );
    let script = "cat /img/hello.txt > /out/seen; echo from-the-container > /img/written; \
        sync; cat /roimg/ro.txt > /out/ro_seen; touch /roimg/x 2>/dev/null; echo $? > /out/ro_rc; \
        echo done > /out/done; while true; do sleep 1; done";
    let dom = s
        .start(&rootfs::domain("lxc-img", &s.root, script, "", &fs))
        .await;
    assert_eq!(read_when_there(&s.out().join("done")).await, "done");
    assert_eq!(
        std::fs::read_to_string(s.out().join("seen")).expect("seen"),
        "hello from the image\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.out().join("ro_seen")).expect("ro_seen"),
        "ro\n"
    );
    assert_ne!(
        read_when_there(&s.out().join("ro_rc")).await,
        "0",
        "a write to the read-only image"
    );
    let (l_data, l_ro) = (loops_of(&data), loops_of(&ro));
    assert_eq!((l_data.len(), l_ro.len()), (1, 1), "{l_data:?} {l_ro:?}");
    let ro_flag = std::fs::read_to_string(format!("/sys/block/{}/ro", l_ro[0])).expect("ro");
    assert_eq!(
        ro_flag.trim(),
        "1",
        "the read-only image's loop device is read-only"
    );
    // the live XML is the definition's
    let live = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        live.contains(&format!("<source file='{}'/>", data.display())),
        "{live}"
    );
    dom.destroy(no_opts()).await.expect("destroy");
    until(
        "the loop devices to be released",
        Duration::from_secs(10),
        || loops_of(&data).is_empty() && loops_of(&ro).is_empty(),
    )
    .await;
    assert_eq!(image_file(&data, "/written"), "from-the-container\n");
    assert_eq!(
        image_file(&ro, "/x"),
        "",
        "nothing was written to the read-only image"
    );
}

/// An image as the root filesystem (mkfs.ext4 -d of the busybox root), and a block device
/// (a loop device the test attaches) at a target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_root_and_a_block_device() {
    let s = setup().await;
    let dir = s.bus.dir.path();
    std::fs::write(s.root.join("etc/marker"), "in the root image\n").expect("write");
    let root_img = dir.join("root.img");
    ext4_image(&root_img, &s.root, 16);
    let blk_content = dir.join("c-blk");
    std::fs::create_dir_all(&blk_content).expect("mkdir");
    std::fs::write(blk_content.join("blk.txt"), "on the block device\n").expect("write");
    let blk_img = dir.join("blk.img");
    ext4_image(&blk_img, &blk_content, 8);
    let dev = TestLoop::new(&blk_img);
    let xml = format!(
        "<domain type='lxc'><name>lxc-imgroot</name><memory unit='MiB'>64</memory>\
         <os><type>exe</type><init>/bin/sh</init><initarg>-c</initarg><initarg>\
         cat /etc/marker; cat /blk/blk.txt; while true; do sleep 1; done</initarg></os>\
         <devices><filesystem type='file'><driver type='loop' format='raw'/>\
         <source file='{}'/><target dir='/'/></filesystem>\
         <filesystem type='block'><source dev='{}'/><target dir='/blk'/><readonly/>\
         </filesystem><console type='pty'/></devices></domain>",
        root_img.display(),
        dev.0
    );
    let dom = s.start(&xml).await;
    let live = dom.get_xml(no_opts()).await.expect("xml");
    let pty = console_pty(&live);
    let got = tokio::task::spawn_blocking(move || {
        read_console(&pty, "on the block device", Duration::from_secs(10))
    })
    .await
    .expect("console");
    assert!(got.contains("in the root image"), "{got:?}");
    assert!(got.contains("on the block device"), "{got:?}");
    assert_eq!(loops_of(&root_img).len(), 1);
    dom.destroy(no_opts()).await.expect("destroy");
    until(
        "the root image's loop device to be released",
        Duration::from_secs(10),
        || loops_of(&root_img).is_empty(),
    )
    .await;
    // the block device is the test's: still attached
    assert_eq!(
        loops_of(&blk_img),
        vec![dev.0.trim_start_matches("/dev/").to_owned()]
    );
}

/// What cannot be had is refused by name: nbd (no nbd module here) and qcow2 on a loop
/// device at define, a missing image and a source of the wrong kind at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_refusals_name_the_element() {
    let s = setup().await;
    let mgr = manager(&s.conn).await;
    let img = s.bus.dir.path().join("x.img");
    std::fs::write(&img, vec![0u8; 4096]).expect("write");
    let fs = |driver: &str, src: &str, ty: &str| {
        rootfs::domain(
            "lxc-fsbad",
            &s.root,
            "true",
            "",
            &format!("<filesystem type='{ty}'>{driver}{src}<target dir='/x'/></filesystem>"),
        )
    };
    let file_src = format!("<source file='{}'/>", img.display());
    for (xml, want) in [
        (
            fs("<driver type='nbd' format='qcow2'/>", &file_src, "file"),
            "<driver type='nbd'>",
        ),
        (
            fs("<driver type='loop' format='qcow2'/>", &file_src, "file"),
            "<driver format='qcow2'>",
        ),
        (
            fs("<driver type='path'/>", &file_src, "file"),
            "<driver type='path'>",
        ),
    ] {
        let r = mgr.define_domain(&xml, no_opts()).await;
        let (name, msg) = method_error(&r);
        assert!(name.ends_with("NotSupported"), "{name}: {msg}");
        assert!(msg.contains(want), "{msg}");
    }
    for (xml, want) in [
        (
            fs("", "<source file='/nonexistent/x.img'/>", "file"),
            "<source file='/nonexistent/x.img'> does not exist",
        ),
        (
            fs("", &format!("<source dev='{}'/>", img.display()), "block"),
            "is not a block device",
        ),
    ] {
        let path = mgr.define_domain(&xml, no_opts()).await.expect("define");
        let dom = domain(&s.conn, &path).await;
        let r = dom.start(no_opts()).await;
        let (name, msg) = method_error(&r);
        assert!(name.ends_with("InvalidArgument"), "{name}: {msg}");
        assert!(msg.contains(want), "{msg}");
        assert_eq!(dom.state().await.expect("state"), "shut-off");
        dom.undefine(no_opts()).await.expect("undefine");
    }
}

/// `<blkiotune>`: the throttles go to v1's blkio files (this host's; v2's `io.max` where the
/// io controller is offered), the XML keeps them; a weight this host's controller cannot
/// take (no BFQ/CFQ here: no blkio.weight) is refused at start naming the element and the
/// file; a path that is not a block device is refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blkiotune_throttles_the_blkio_cgroup() {
    let s = setup().await;
    let dir = s.bus.dir.path();
    let img = dir.join("tune.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).expect("write");
    let dev = TestLoop::new(&img);
    let (major, minor) = {
        use std::os::unix::fs::MetadataExt;
        let r = std::fs::metadata(&dev.0).expect("stat").rdev();
        (libc::major(r), libc::minor(r))
    };
    let tune = format!(
        "<blkiotune><device><path>{}</path><read_bytes_sec>1048576</read_bytes_sec>\
         <write_iops_sec>50</write_iops_sec></device></blkiotune>",
        dev.0
    );
    let dom = s
        .start(&rootfs::domain(
            "lxc-blkio",
            &s.root,
            "echo up > /out/up; while true; do sleep 1; done",
            &tune,
            "",
        ))
        .await;
    read_when_there(&s.out().join("up")).await;
    let id = format!("{major}:{minor}");
    let v1 = cgroup_dir("blkio", "lxc-blkio");
    if v1.exists() {
        let read = |f: &str| std::fs::read_to_string(v1.join(f)).expect(f);
        assert!(read("blkio.throttle.read_bps_device").contains(&format!("{id} 1048576")));
        assert!(read("blkio.throttle.write_iops_device").contains(&format!("{id} 50")));
    } else {
        let max = std::fs::read_to_string(cgroup_dir("unified", "lxc-blkio").join("io.max"))
            .expect("io.max");
        assert!(max.contains(&format!("{id} rbps=1048576")), "{max}");
    }
    let live = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        live.contains("<read_bytes_sec>1048576</read_bytes_sec>"),
        "{live}"
    );
    assert!(
        live.contains("<write_iops_sec>50</write_iops_sec>"),
        "{live}"
    );
    dom.destroy(no_opts()).await.expect("destroy");

    let mgr = manager(&s.conn).await;
    let weight_file = Path::new("/sys/fs/cgroup/blkio/blkio.weight");
    let bfq = Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight");
    let weighted = rootfs::domain(
        "lxc-weight",
        &s.root,
        "echo up > /out/weight; while true; do sleep 1; done",
        "<blkiotune><weight>300</weight></blkiotune>",
        "",
    );
    let path = mgr
        .define_domain(&weighted, no_opts())
        .await
        .expect("define");
    let wdom = domain(&s.conn, &path).await;
    let r = wdom.start(no_opts()).await;
    if Path::new("/sys/fs/cgroup/blkio").exists() && !weight_file.exists() && !bfq.exists() {
        let (name, msg) = method_error(&r);
        assert!(name.ends_with("NotSupported"), "{name}: {msg}");
        assert!(msg.contains("<blkiotune><weight>"), "{msg}");
        assert!(msg.contains("blkio.weight"), "{msg}");
        assert_eq!(wdom.state().await.expect("state"), "shut-off");
        assert!(
            !cgroup_dir("blkio", "lxc-weight").exists(),
            "nothing was created"
        );
    } else {
        r.expect("a host with blkio weights applies one");
        wdom.destroy(no_opts()).await.expect("destroy");
    }

    let not_block = rootfs::domain(
        "lxc-notblock",
        &s.root,
        "true",
        &format!(
            "<blkiotune><device><path>{}</path><read_iops_sec>5</read_iops_sec></device>\
             </blkiotune>",
            img.display()
        ),
        "",
    );
    let path = mgr
        .define_domain(&not_block, no_opts())
        .await
        .expect("define");
    let r = domain(&s.conn, &path).await.start(no_opts()).await;
    let (name, msg) = method_error(&r);
    assert!(name.ends_with("InvalidArgument"), "{name}: {msg}");
    assert!(
        msg.contains(&format!(
            "<blkiotune><device><path> '{}' is not a block device",
            img.display()
        )),
        "{msg}"
    );
}
