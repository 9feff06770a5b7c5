//! Container start latency: the LXC driver (Start → running, Start → first console line)
//! against the floor of `unshare --fork --pid --mount --uts --ipc --net` + `chroot` running
//! the same init. Run as root: `cargo bench --bench lxc`.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use virtbus::{
    drivers::{DomainCtx, Driver, DriverEvent, EventSink, lxc::LxcDriver},
    model::DomainDef,
};

const RUNS: usize = 15;
const SCRIPT: &str = "echo hello; while true; do sleep 1; done";

struct Sink;
impl EventSink for Sink {
    fn driver_event(&self, _uuid: uuid::Uuid, _event: DriverEvent) {}
}

fn rootfs(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is needed");
    for a in ["sh", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).expect("link");
    }
    root
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Read the console until "hello" (the pty path is the live XML's).
fn first_line(pty: &str) -> Instant {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY)
        .open(pty)
        .expect("pty");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("hello") {
        let n = f.read(&mut buf).expect("read console");
        got.extend_from_slice(&buf[..n]);
    }
    Instant::now()
}

async fn driver_runs(root: &Path, runtime: &Path) -> (Vec<Duration>, Vec<Duration>) {
    let program = env!("CARGO_BIN_EXE_virtbusd").into();
    let driver = LxcDriver::new(runtime, program).expect("the LXC driver needs root");
    let xml = format!(
        "<domain type='lxc'><name>bench</name><memory unit='MiB'>64</memory>\
         <os><type>exe</type><init>/bin/sh</init><initarg>-c</initarg>\
         <initarg>{SCRIPT}</initarg></os><features><privnet/></features><devices>\
         <filesystem type='mount'><source dir='{}'/><target dir='/'/></filesystem>\
         <console type='pty'/></devices></domain>",
        root.display()
    );
    let mut def = DomainDef::from_xml(&xml).expect("xml");
    driver.post_parse(&mut def).await.expect("post-parse");
    let ctx = DomainCtx {
        uuid: def.uuid,
        name: def.name.clone(),
        sink: Arc::new(Sink),
    };
    let (mut running, mut console) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        let started = driver.start(&ctx, &def, false, 1).await.expect("start");
        running.push(t.elapsed());
        let live = started.live.expect("live");
        let pty = live.devices.consoles[0]
            .source_path
            .clone()
            .expect("console pty");
        let at = tokio::task::spawn_blocking(move || first_line(&pty))
            .await
            .expect("console");
        console.push(at - t);
        driver.destroy(&ctx, false).await.expect("destroy");
    }
    (running, console)
}

fn floor_runs(root: &Path) -> Vec<Duration> {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let mut child = std::process::Command::new("/usr/bin/unshare")
                .args([
                    "--fork",
                    "--kill-child",
                    "--pid",
                    "--mount",
                    "--uts",
                    "--ipc",
                    "--net",
                    "chroot",
                ])
                .arg(root)
                .args(["/bin/sh", "-c"])
                .arg(format!("PATH=/bin; {SCRIPT}"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("unshare");
            let mut line = String::new();
            let mut out = BufReader::new(child.stdout.take().expect("stdout"));
            out.read_line(&mut line).expect("read");
            let d = t.elapsed();
            assert_eq!(line.trim(), "hello");
            let _ = child.kill();
            let _ = child.wait();
            d
        })
        .collect()
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = rootfs(dir.path());
    // runtime files on a tmpfs, as /run/virtbus is on a usual host (this one has /run on disk)
    let run = tempfile::Builder::new()
        .prefix("virtbus-bench-lxc")
        .tempdir_in("/dev/shm")
        .expect("a directory under /dev/shm");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (running, console) = rt.block_on(driver_runs(&root, run.path()));
    let floor = floor_runs(&root);
    let (r, c, f) = (median(running), median(console), median(floor));
    println!("LXC driver, busybox container, median of {RUNS} runs:");
    println!("  Start -> running:                  {}", ms(r));
    println!("  Start -> first console line:       {}", ms(c));
    println!("  floor (unshare + chroot) -> line:  {}", ms(f));
    println!(
        "  driver over the floor (console):   {}",
        ms(c.saturating_sub(f))
    );
    let virsh_lxc = std::process::Command::new("virsh")
        .args(["-c", "lxc:///system", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !virsh_lxc {
        println!("  libvirt's LXC driver (virsh -c lxc:///system): not available on this host");
    }
}
