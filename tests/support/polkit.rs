//! A real polkitd on a private system-type bus, hermetically: inside a mount namespace the
//! project's policy, rules and test users are bind-mounted over the system's, so the host
//! sees none of it (see the polkit testing notes of the project).

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use super::{Daemon, Launch};

/// Test users that exist only inside the namespace: (name, uid, member of virtbus-users).
pub const USERS: &[(&str, u32, bool)] = &[
    ("alice", 61001, true),
    ("bob", 61002, false),
    ("carol", 61003, false),
    ("dave", 61004, true),
];
pub const GROUP: (&str, u32) = ("virtbus-users", 61100);
/// Every test user's password inside the namespace, and its crypt(3) hash.
#[allow(dead_code)]
pub const PASSWORD: &str = "correct horse";
const PASSWORD_HASH: &str = "$6$virtbustest$HqLtgN3PNdPkKP3MIhXs0qmzncjtIf4oGnu6mWGwAFn8h3pg9AJU8buOQaDtZ7XFNSr20BrbVfcHlrhXsMezG1";

pub struct PolkitEnv {
    pub dir: tempfile::TempDir,
    child: Child,
    pub address: String,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The project's shipped file at `rel`.
pub fn project_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).expect(rel)
}

impl PolkitEnv {
    /// Start dbus-daemon and polkitd with the project's actions and these rules files.
    pub fn start(rules: &[(&str, String)]) -> PolkitEnv {
        let dir = tempfile::Builder::new()
            .prefix("vbpk")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let w = dir.path();
        std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for d in [
            "polkit/actions",
            "polkit/rules.d",
            "polkit/empty",
            "state",
            "run",
        ] {
            mkdir(&w.join(d));
        }
        write(
            &w.join("polkit/actions/org.virtbus1.policy"),
            &project_file("polkit/org.virtbus1.policy"),
        );
        for (name, text) in rules {
            write(&w.join("polkit/rules.d").join(name), text);
        }
        let mut passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
        let mut group = std::fs::read_to_string("/etc/group").expect("group");
        let mut members = Vec::new();
        for (name, uid, member) in USERS {
            passwd.push_str(&format!(
                "{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n"
            ));
            group.push_str(&format!("{name}:x:{uid}:\n"));
            if *member {
                members.push(*name);
            }
        }
        group.push_str(&format!(
            "{}:x:{}:{}\n",
            GROUP.0,
            GROUP.1,
            members.join(",")
        ));
        write(&w.join("passwd"), &passwd);
        write(&w.join("group"), &group);
        // Test users' passwords (PASSWORD), for agents that authenticate through PAM.
        let mut shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
        for (name, _, _) in USERS {
            shadow.push_str(&format!("{name}:{PASSWORD_HASH}:19000:0:99999:7:::\n"));
        }
        write(&w.join("shadow"), &shadow);
        std::fs::set_permissions(w.join("shadow"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod shadow");
        let sock = w.join("system_bus_socket");
        let includes = [
            PathBuf::from("/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus/org.virtbus1.conf"),
        ];
        write(
            &w.join("system.conf"),
            &super::system_bus_config(&sock, &includes),
        );
        let script = w.join("ns.sh");
        std::fs::write(
            &script,
            r#"#!/bin/sh
set -e
W="$1"
mount --bind "$W/polkit/actions" /usr/share/polkit-1/actions
mount --bind "$W/polkit/rules.d" /etc/polkit-1/rules.d
mount --bind "$W/polkit/empty" /usr/share/polkit-1/rules.d
mount --bind "$W/passwd" /etc/passwd
mount --bind "$W/group" /etc/group
mount --bind "$W/shadow" /etc/shadow
dbus-daemon --config-file="$W/system.conf" --nofork 2>"$W/dbus.log" &
while [ ! -S "$W/system_bus_socket" ]; do sleep 0.005; done
# setuid programs (polkit-agent-helper-1) ignore DBUS_SYSTEM_BUS_ADDRESS: the default path
# leads to this bus, in this namespace only
mount -t tmpfs -o mode=0755 tmpfs /run/dbus
ln -s "$W/system_bus_socket" /run/dbus/system_bus_socket
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$W/system_bus_socket" /usr/lib/polkit-1/polkitd 2>"$W/polkitd.log" &
wait
"#,
        )
        .expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let child = Command::new("setsid")
            .args(["unshare", "--mount", "--propagation", "private"])
            .arg(&script)
            .arg(w)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setsid unshare (util-linux) must be installed");
        let env = PolkitEnv {
            address: format!("unix:path={}", sock.display()),
            dir,
            child,
        };
        env.wait_for_polkit();
        env
    }

    fn wait_for_polkit(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("busctl")
                .arg(format!("--address={}", self.address))
                .args(["status", "org.freedesktop.PolicyKit1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if out.is_ok_and(|s| s.success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "polkitd did not start: {}",
                self.log("polkitd.log")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The PID whose mount namespace holds the bind mounts.
    pub fn ns_pid(&self) -> u32 {
        self.child.id()
    }

    fn nsenter(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            format!("--mount=/proc/{}/ns/mnt", self.ns_pid()),
            "--".into(),
        ]
    }

    /// Add (or replace) a rules file while everything runs; polkitd reloads it.
    pub fn add_rule(&self, name: &str, text: &str) {
        write(&self.dir.path().join("polkit/rules.d").join(name), text);
    }

    /// Start virtbusd as root on the system bus, inside the namespace (so it resolves the
    /// test users' names as polkitd does).
    pub async fn daemon(&self, extra: &[&str]) -> Daemon {
        let w = self.dir.path();
        Daemon::launch(
            &self.address,
            w,
            &w.join("state"),
            &w.join("run"),
            Launch {
                system: true,
                prefix: self.nsenter(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
        .await
    }

    /// A command run as `user` (a test user, or "root") inside the namespace, with the system
    /// bus address set.
    pub fn command_as(&self, user: &str, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.ns_pid()))
            .arg("--")
            .args([
                "setpriv",
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
            ])
            .arg(program)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .current_dir("/");
        c
    }

    /// busctl as `user`, never asking for interactive authorization unless `interactive`.
    pub fn busctl_as(&self, user: &str, interactive: bool, args: &[&str]) -> Output {
        self.command_as(user, "busctl")
            .arg("--system")
            .arg(format!(
                "--allow-interactive-authorization={}",
                if interactive { "yes" } else { "no" }
            ))
            .args(args)
            .output()
            .expect("busctl")
    }

    /// Stop this environment's polkitd (others, of tests running beside, stay).
    pub fn stop_polkitd(&self) {
        let out = Command::new("pgrep")
            .args(["-P", &self.ns_pid().to_string(), "-x", "polkitd"])
            .output()
            .expect("pgrep");
        let pids = String::from_utf8_lossy(&out.stdout);
        let pid: i32 = pids.trim().parse().expect("one polkitd");
        // SAFETY: signalling the polkitd this environment started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }

    pub fn workdir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for PolkitEnv {
    fn drop(&mut self) {
        // The script leads its own session: end the whole group (dbus-daemon, polkitd).
        // SAFETY: signalling a process group we created.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
