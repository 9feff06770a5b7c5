//! What `meson install` puts where, and the files that systemd's own tools consume.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use crate::fixture::*;

/// Every installed file, relative to the root.
fn installed_files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(format!(
                    "/{}",
                    p.strip_prefix(root).expect("under root").display()
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The polkit files in the source tree (actions in polkit/, example rules there or in
/// polkit/examples/), where meson installs them.
fn polkit_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("polkit");
    let mut out = Vec::new();
    for sub in [dir.clone(), dir.join("examples")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for e in entries {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            if name.ends_with(".policy") && sub == dir {
                out.push(format!("/usr/share/polkit-1/actions/{name}"));
            } else if name.ends_with(".rules") {
                out.push(format!("/usr/share/doc/virtbus/examples/polkit/{name}"));
            }
        }
    }
    out
}

#[test]
fn meson_installs_exactly_the_service_files() {
    let inst = Installed::get();
    let mut want: Vec<String> = [
        "/usr/libexec/virtbusd",
        "/usr/bin/virtbusctl",
        "/usr/share/bash-completion/completions/virtbusctl.bash",
        "/usr/share/zsh/vendor-completions/_virtbusctl",
        "/usr/share/fish/vendor_completions.d/virtbusctl.fish",
        "/usr/share/man/man1/virtbusctl.1",
        "/usr/share/dbus-1/system.d/org.virtbus1.conf",
        "/usr/share/dbus-1/system-services/org.virtbus1.service",
        "/usr/share/dbus-1/services/org.virtbus1.service",
        "/usr/share/dbus-1/interfaces/org.virtbus1.Manager.xml",
        "/usr/share/dbus-1/interfaces/org.virtbus1.Domain.xml",
        "/usr/share/dbus-1/interfaces/org.virtbus1.Snapshot.xml",
        "/usr/share/dbus-1/interfaces/org.virtbus1.HostInterface.xml",
        "/usr/share/dbus-1/interfaces/org.virtbus1.NodeDevice.xml",
        "/usr/share/dbus-1/interfaces/org.virtbus1.StoragePool.xml",
        "/usr/share/dbus-1/interfaces/org.virtbus1.StorageVolume.xml",
        "/usr/share/dbus-1/interfaces/org.virtbus1.Network.xml",
        "/usr/lib/systemd/system/virtbusd.service",
        "/usr/lib/systemd/user/virtbusd.service",
        "/usr/lib/systemd/system/virtbusd-libvirt.socket",
        "/usr/lib/systemd/system/virtbusd-libvirt-ro.socket",
        "/usr/lib/tmpfiles.d/virtbus.conf",
        "/usr/lib/sysusers.d/virtbus.conf",
        "/usr/share/virtbus/virtbusd.toml",
    ]
    .map(String::from)
    .into();
    want.extend(polkit_files());
    want.sort();
    assert_eq!(installed_files(&inst.dest), want);

    let bin = inst.virtbusd();
    let mode = std::fs::metadata(&bin)
        .expect("virtbusd")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "virtbusd is executable: {mode:o}");
    assert_eq!(
        std::fs::read(&bin).expect("installed"),
        std::fs::read(cargo_bin()).expect("built"),
        "meson installs the binary cargo built"
    );
    assert_eq!(
        std::fs::read(inst.path("/usr/bin/virtbusctl")).expect("virtbusctl installed"),
        std::fs::read(env!("CARGO_BIN_EXE_virtbusctl")).expect("built"),
        "meson installs the client cargo built"
    );
    let man = inst.read("/usr/share/man/man1/virtbusctl.1");
    assert!(man.contains(".TH virtbusctl 1"), "a man page: {man}");
    let bash = inst.read("/usr/share/bash-completion/completions/virtbusctl.bash");
    assert!(
        bash.contains("complete -F _virtbusctl_domains"),
        "bash completion"
    );
    let version = stdout(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("virtbusd {}", env!("CARGO_PKG_VERSION"))
    );

    // Unchanged copies of the source files.
    for (installed, source) in [
        (
            "/usr/share/dbus-1/system.d/org.virtbus1.conf",
            "dbus/org.virtbus1.conf",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.Manager.xml",
            "dbus/org.virtbus1.Manager.xml",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.Domain.xml",
            "dbus/org.virtbus1.Domain.xml",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.Snapshot.xml",
            "dbus/org.virtbus1.Snapshot.xml",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.HostInterface.xml",
            "dbus/org.virtbus1.HostInterface.xml",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.NodeDevice.xml",
            "dbus/org.virtbus1.NodeDevice.xml",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.StoragePool.xml",
            "dbus/org.virtbus1.StoragePool.xml",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.StorageVolume.xml",
            "dbus/org.virtbus1.StorageVolume.xml",
        ),
        (
            "/usr/share/dbus-1/interfaces/org.virtbus1.Network.xml",
            "dbus/org.virtbus1.Network.xml",
        ),
        ("/usr/share/virtbus/virtbusd.toml", "data/virtbusd.toml"),
    ] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
        assert_eq!(
            inst.read(installed),
            std::fs::read_to_string(src).expect("source"),
            "{installed}"
        );
    }
}

/// The activation files start the installed binary, the system one through systemd.
#[test]
fn activation_files_name_the_installed_binary_and_unit() {
    let inst = Installed::get();
    let lines = |f: &str| -> Vec<String> {
        inst.read(f)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(
        lines("/usr/share/dbus-1/system-services/org.virtbus1.service"),
        [
            "[D-BUS Service]",
            "Name=org.virtbus1",
            "Exec=/usr/libexec/virtbusd --system",
            "User=root",
            "SystemdService=virtbusd.service",
        ]
    );
    assert_eq!(
        lines("/usr/share/dbus-1/services/org.virtbus1.service"),
        [
            "[D-BUS Service]",
            "Name=org.virtbus1",
            "Exec=/usr/libexec/virtbusd --session",
            "SystemdService=virtbusd.service",
        ]
    );
}

/// systemd-tmpfiles creates the system instance's directories with the unit's modes.
#[test]
fn tmpfiles_entry_creates_the_directories() {
    let inst = Installed::get();
    let root = tempfile::tempdir().expect("root");
    run(Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(format!("--root={}", root.path().display()))
        .arg(inst.path("/usr/lib/tmpfiles.d/virtbus.conf")));
    for (dir, mode) in [("var/lib/virtbus", 0o700), ("run/virtbus", 0o755)] {
        let m = std::fs::metadata(root.path().join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert!(m.is_dir());
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{dir}");
    }
    let unit = inst.read("/usr/lib/systemd/system/virtbusd.service");
    assert!(unit.contains("\nStateDirectoryMode=0700\n"), "modes agree");
}

/// systemd-sysusers creates the group the polkit example rules name.
#[test]
fn sysusers_entry_creates_the_group() {
    let inst = Installed::get();
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir(root.path().join("etc")).expect("etc");
    run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(inst.path("/usr/lib/sysusers.d/virtbus.conf")));
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("group");
    assert!(
        group.lines().any(|l| l.starts_with("virtbus-users:x:")),
        "{group}"
    );
}

/// The installed defaults are the built-in ones.
#[test]
fn installed_configuration_is_the_defaults() {
    let inst = Installed::get();
    let path = inst.path("/usr/share/virtbus/virtbusd.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let parsed = virtbus::config::parse(&text, &path).expect("parses");
    assert_eq!(parsed, virtbus::config::Config::default());
}

/// Each polkit actions file is well-formed XML and declares exactly the actions the daemon
/// checks; polkitd itself loads it in the policy test (`pkaction`). Not `xmllint --dtdvalid`:
/// the DTD polkit 122 ships lacks the `gettext-domain` attribute its parser accepts.
#[test]
fn polkit_actions_are_valid_and_match_the_code() {
    let inst = Installed::get();
    let mut declared = Vec::new();
    for f in polkit_files().iter().filter(|f| f.ends_with(".policy")) {
        run(Command::new("xmllint").arg("--noout").arg(inst.path(f)));
        let text = inst.read(f);
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(&text, opts).expect("parses");
        declared.extend(
            doc.descendants()
                .filter(|n| n.has_tag_name("action"))
                .filter_map(|n| n.attribute("id").map(String::from)),
        );
    }
    assert!(!declared.is_empty(), "no polkit actions installed");
    declared.sort();
    let mut used: Vec<String> = virtbus::server::authz::Action::ALL
        .iter()
        .map(|a| a.id().to_owned())
        .collect();
    used.sort();
    assert_eq!(declared, used);
}
