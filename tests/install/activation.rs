//! D-Bus activation with the installed session service file, the introspection data the
//! daemon serves against the installed files, and idle exit.
//!
//! dbus-daemon runs in a mount namespace where the installed libexec dir is /usr/libexec, so
//! that the service file's `Exec=/usr/libexec/virtbusd` is the installed binary, unchanged.

use std::{path::Path, process::Command, time::Duration};

use crate::{
    fixture::*,
    support::{MANAGER, NAME, no_opts, proxies::*, slow_domain, test_domain},
};

struct SessionBus {
    address: String,
    _proc: Proc,
}

impl SessionBus {
    fn start(dir: &Path, servicedir: &Path, libexec: &Path) -> SessionBus {
        let sock = dir.join("session_bus_socket");
        let conf = dir.join("session.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                sock.display(),
                servicedir.display()
            ),
        )
        .expect("config");
        let script =
            r#"mount --bind "$1" /usr/libexec && exec dbus-daemon --nofork --config-file="$2""#;
        let log = std::fs::File::create(dir.join("bus.log")).expect("log");
        let proc = Proc::spawn(
            Command::new("unshare")
                .args([
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    script,
                    "sh",
                ])
                .arg(libexec)
                .arg(&conf)
                // What an activated virtbusd sees: its own dirs, and a configuration that
                // makes it exit after one idle second.
                .env("XDG_DATA_HOME", dir.join("data"))
                .env("XDG_RUNTIME_DIR", dir.join("run"))
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("RUST_LOG", "info")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("JOURNAL_STREAM")
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_for_path(&sock, "the session bus socket");
        SessionBus {
            address: format!("unix:path={}", sock.display()),
            _proc: proc,
        }
    }
}

use std::process::Stdio;

async fn owner_pid(conn: &zbus::Connection) -> Option<u32> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    dbus.get_connection_unix_process_id(NAME.try_into().ok()?)
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_call_activates_the_installed_daemon_which_exits_when_idle() {
    let inst = Installed::get();
    let dir = open_tempdir();
    let confdir = dir.path().join("config/virtbus");
    std::fs::create_dir_all(&confdir).expect("config dir");
    std::fs::write(confdir.join("virtbusd.toml"), "idle_timeout = 1\n").expect("config");
    std::fs::create_dir_all(dir.path().join("run")).expect("runtime dir");
    let bus = SessionBus::start(
        dir.path(),
        &inst.path("/usr/share/dbus-1/services"),
        &inst.path("/usr/libexec"),
    );
    let conn = connect(&bus.address).await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus");
    let activatable = dbus.list_activatable_names().await.expect("activatable");
    assert!(
        activatable.iter().any(|n| n.as_str() == NAME),
        "{activatable:?}"
    );
    assert!(!has_owner(&conn, NAME).await);

    // The first call starts it.
    let mgr = manager(&conn).await;
    assert_eq!(mgr.list_domains(no_opts()).await.expect("activated"), []);
    let pid = owner_pid(&conn).await.expect("owned");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert_eq!(
        exe,
        Path::new("/usr/libexec/virtbusd"),
        "the installed binary"
    );
    assert!(
        dir.path().join("data/virtbus/domains").is_dir(),
        "session state under XDG_DATA_HOME"
    );

    // What it serves is what is installed in dbus-1/interfaces.
    let dpath = mgr
        .define_domain(&test_domain("i"), no_opts())
        .await
        .expect("define");
    let spath = domain(&conn, &dpath)
        .await
        .create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("snapshot");
    for (path, iface) in [
        (MANAGER.to_owned(), "Manager"),
        (dpath.to_string(), "Domain"),
        (spath.to_string(), "Snapshot"),
    ] {
        let installed = inst.read(&format!(
            "/usr/share/dbus-1/interfaces/org.virtbus1.{iface}.xml"
        ));
        let start = installed.find("<interface").expect("interface");
        let end = installed.rfind("</interface>").expect("end") + "</interface>".len();
        let served = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(NAME)
            .path(path.as_str())
            .build()
            .await
            .expect("proxy")
            .introspect()
            .await
            .expect("introspect");
        assert!(
            served.contains(&installed[start..end]),
            "{path} serves another {iface}"
        );
    }

    // Idle (nothing running, no call) for a second: it gives up the name and exits.
    assert!(
        eventually(Duration::from_secs(10), async || !has_owner(&conn, NAME)
            .await)
        .await,
        "still running after the idle timeout"
    );
    assert!(
        eventually(Duration::from_secs(10), async || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists())
        .await,
        "process {pid} did not exit"
    );

    // The next call starts a new instance, which finds the state on disk.
    let mgr = manager(&conn).await;
    assert_eq!(
        mgr.list_domains(no_opts()).await.expect("again"),
        std::slice::from_ref(&dpath)
    );
    let pid2 = owner_pid(&conn).await.expect("owned again");
    assert_ne!(pid, pid2);

    // A call longer than the timeout, then a running guest, keep it alive.
    let slow = mgr
        .define_domain(&slow_domain("slow", 1500), no_opts())
        .await
        .expect("define slow");
    let slow = domain(&conn, &slow).await;
    slow.start(no_opts()).await.expect("start");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(owner_pid(&conn).await, Some(pid2), "exited while busy");
    slow.destroy(no_opts()).await.expect("destroy");
    assert!(
        eventually(Duration::from_secs(10), async || !has_owner(&conn, NAME)
            .await)
        .await,
        "still running once idle again"
    );
}
