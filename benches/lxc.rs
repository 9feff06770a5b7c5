//! Container start latency: the LXC driver (Start → running, Start → first console line)
//! against the floor of `unshare --fork --pid --mount --uts --ipc --net` + `chroot` running
//! the same init, and Debian's libvirt LXC driver (`virsh -c lxc:///system` against a private
//! libvirtd, as the tests run it: tests/support/libvirtd.rs) when it is installed. Run as
//! root: `cargo bench --bench lxc`.

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

#[path = "../tests/support/libvirtd.rs"]
#[allow(dead_code)]
mod libvirtd;

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

/// The console's pty in a live XML.
fn pty_of(xml: &str) -> Option<String> {
    let at = xml.find("<source path='")? + "<source path='".len();
    Some(xml[at..].split('\'').next()?.to_owned())
}

/// Medians through unchanged virsh: `virsh create` (Start → running, a virsh process
/// included), create + `dumpxml` (for the pty) + the console's first line, and a bare
/// `virsh version` (the client's own cost).
struct ViaVirsh {
    running: Duration,
    console: Duration,
    client: Duration,
}

/// `virsh -q -c URI args…`.
fn virsh(uri: &str, home: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("/usr/bin/virsh")
        .args(["-q", "-c", uri])
        .args(args)
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("virsh: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn virsh_runs(uri: &str, root: &Path, dir: &Path) -> Result<ViaVirsh, String> {
    let xml = dir.join("bench-virsh.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='lxc'><name>bench-virsh</name><memory unit='MiB'>64</memory>\
             <os><type>exe</type><init>/bin/sh</init><initarg>-c</initarg>\
             <initarg>{SCRIPT}</initarg></os><features><privnet/></features><devices>\
             <filesystem type='mount'><source dir='{}'/><target dir='/'/></filesystem>\
             <console type='pty'/></devices></domain>",
            root.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let xml = xml.to_string_lossy().into_owned();
    let ok = |args: &[&str]| virsh(uri, dir, args);
    let (mut running, mut console, mut client) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        ok(&["version"])?;
        client.push(t.elapsed());
        let t = Instant::now();
        ok(&["create", &xml])?;
        running.push(t.elapsed());
        let live = ok(&["dumpxml", "bench-virsh"]);
        let pty = live.map(|l| pty_of(&l).ok_or_else(|| format!("no console pty in {l}")));
        let at = pty.and_then(|p| p).map(|p| first_line(&p));
        let stop = ok(&["destroy", "bench-virsh"]);
        console.push(at? - t);
        stop?;
    }
    Ok(ViaVirsh {
        running: median(running),
        console: median(console),
        client: median(client),
    })
}

/// Debian's libvirt LXC driver: a private libvirtd (tests/support/libvirtd.rs).
fn libvirt_runs(root: &Path, dir: &Path) -> Result<ViaVirsh, String> {
    libvirtd::Libvirtd::available_lxc()?;
    let lv = libvirtd::Libvirtd::start_lxc();
    virsh_runs(&lv.lxc_uri(), root, dir).map_err(|e| format!("{e}\n{}", lv.log_text()))
}

/// The real daemon on a private session bus, serving libvirt's RPC on a socket of its own
/// (runtime files under /dev/shm, as for the driver's column); stopped on drop.
struct Virtbusd {
    bus: std::process::Child,
    daemon: std::process::Child,
}

impl Drop for Virtbusd {
    fn drop(&mut self) {
        for c in [&mut self.daemon, &mut self.bus] {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

fn virtbusd_runs(root: &Path, dir: &Path, run: &Path) -> Result<ViaVirsh, String> {
    use std::process::{Command, Stdio};
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("dbus-daemon: {e}"))?;
    let mut address = String::new();
    if let Some(out) = bus.stdout.take() {
        BufReader::new(out)
            .read_line(&mut address)
            .map_err(|e| e.to_string())?;
    }
    let sock = run.join("libvirt-sock");
    let daemon = Command::new(env!("CARGO_BIN_EXE_virtbusd"))
        .arg("--session")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--runtime-dir")
        .arg(run.join("rt"))
        .arg("--libvirt-rpc-socket")
        .arg(&sock)
        .env("DBUS_SESSION_BUS_ADDRESS", address.trim())
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("virtbusd: {e}"))?;
    let _guard = Virtbusd { bus, daemon };
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if t.elapsed() > Duration::from_secs(20) {
            return Err("virtbusd made no RPC socket".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    virsh_runs(
        &format!("lxc:///system?socket={}", sock.display()),
        root,
        dir,
    )
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
    let show = |title: &str, v: Result<ViaVirsh, String>| match v {
        Ok(v) => {
            println!("{title}, median of {RUNS} runs:");
            println!("  virsh create -> running:           {}", ms(v.running));
            println!(
                "  create -> first console line:      {} (a virsh dumpxml included)",
                ms(v.console)
            );
            println!("  a bare virsh version (client):     {}", ms(v.client));
        }
        Err(e) => println!("{title}: not measured: {e}"),
    };
    show(
        "virtbusd through unchanged virsh (virsh -c lxc:///system?socket=)",
        virtbusd_runs(&root, dir.path(), run.path()),
    );
    show(
        "Debian's libvirt 9.0 LXC driver (virsh -c lxc:///system, private libvirtd)",
        libvirt_runs(&root, dir.path()),
    );
}
