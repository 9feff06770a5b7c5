//! An unprivileged peer through a real polkitd (see `support::polkit`): it authenticates
//! with AUTH_POLKIT, then polkit decides each call with the D-Bus APIs' actions and rules.

use std::{os::unix::fs::PermissionsExt, path::PathBuf, process::Output};

use super::wait_for;
use crate::support::{
    Daemon,
    polkit::{PolkitEnv, project_file},
    test_domain,
};

const URI: &str = "test+unix:///default";

/// A daemon under a real polkitd with the example owner rules, answering libvirt's RPC on a
/// socket of its own, and unchanged virsh run there as a given user.
pub struct OwnerRpc {
    // dropped before the polkit environment it runs in
    pub daemon: Daemon,
    pub env: PolkitEnv,
    sock_arg: String,
    home: PathBuf,
}

impl OwnerRpc {
    pub async fn start() -> OwnerRpc {
        let env = PolkitEnv::start(&[(
            "50-virtbus-owners.rules",
            project_file("polkit/examples/50-virtbus-owners.rules"),
        )]);
        let w = env.workdir();
        let sock = w.join("libvirt-sock");
        let sock_arg = sock.to_string_lossy().into_owned();
        let daemon = env.daemon(&["--libvirt-rpc-socket", &sock_arg]).await;
        wait_for(&sock, &daemon);
        let home = w.join("home");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        OwnerRpc {
            daemon,
            env,
            sock_arg,
            home,
        }
    }

    /// virsh as `user` on `uri` (the driver part of a URI) through the socket.
    pub fn virsh(&self, user: &str, uri: &str, args: &[&str]) -> Output {
        self.env
            .command_as(user, "/usr/bin/virsh")
            .arg("-c")
            .arg(format!("{uri}?socket={}", self.sock_arg))
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(user))
            .env("XDG_CACHE_HOME", self.home.join(user))
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .expect("virsh")
    }
}

/// What a client printed, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_peers_are_decided_by_polkit() {
    let o = OwnerRpc::start().await;
    let (w, daemon) = (o.env.workdir(), &o.daemon);
    let xml = w.join("vm.xml");
    let virsh = |user: &str, args: &[&str]| o.virsh(user, URI, args);
    let define_as = |user: &str, name: &str| {
        std::fs::write(&xml, test_domain(name)).expect("xml");
        std::fs::set_permissions(&xml, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        virsh(user, &["define", &xml.to_string_lossy()])
    };

    // root: no authentication asked, everything allowed
    let o = define_as("root", "web");
    assert!(o.status.success(), "{}", text(&o));

    // bob, in no group: reads (allowed to anyone), but starts nothing
    let o = virsh("bob", &["list", "--all"]);
    assert!(o.status.success(), "{}\n{}", text(&o), daemon.log_text());
    assert!(text(&o).contains("web"), "{}", text(&o));
    let o = virsh("bob", &["start", "web"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("access denied"), "{}", text(&o));
    let o = define_as("bob", "bobs");
    assert!(!o.status.success());
    assert!(text(&o).contains("access denied"), "{}", text(&o));

    // alice, in virtbus-users: her own domains, not root's
    let o = define_as("alice", "alices");
    assert!(o.status.success(), "{}", text(&o));
    let o = virsh("alice", &["start", "alices"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = virsh("alice", &["domstate", "alices"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "running");
    let o = virsh("alice", &["destroy", "web"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("access denied"), "{}", text(&o));

    // volumes (the test connect's pool, in memory): alice's are hers, root's are not; bob,
    // outside the group, creates none
    let pool = ["--pool", "default-pool"];
    let o = virsh("root", &["vol-create-as", "default-pool", "rootv", "1M"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = virsh("alice", &["vol-create-as", "default-pool", "alicev", "1M"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = virsh("bob", &["vol-create-as", "default-pool", "bobv", "1M"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("access denied"), "{}", text(&o));
    for (user, v) in [("alice", "rootv"), ("bob", "alicev"), ("dave", "alicev")] {
        let o = virsh(user, &[&["vol-delete", v][..], &pool].concat());
        assert!(!o.status.success(), "{user} deleted {v}");
        assert!(text(&o).contains("access denied"), "{}", text(&o));
    }
    let o = virsh("alice", &[&["vol-delete", "alicev"][..], &pool].concat());
    assert!(o.status.success(), "{}", text(&o));
    let o = virsh("root", &["vol-list", "default-pool"]);
    assert!(
        text(&o).contains("rootv") && !text(&o).contains("alicev"),
        "{}",
        text(&o)
    );

    let log = daemon.log_text();
    assert!(log.contains("uid 61001 connected"), "{log}");
}
