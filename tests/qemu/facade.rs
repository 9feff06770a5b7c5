//! The libvirt-dbus facade's `/org/libvirt/QEMU` over the real QEMU driver: the version and
//! domain capabilities Cockpit reads come from the probed emulator.

use std::time::{Duration, Instant};

use zbus::OwnedVariant;

use crate::support::*;

const LIBVIRT: &str = "org.libvirt";
const QEMU: &str = "/org/libvirt/QEMU";
const CONNECT: &str = "org.libvirt.Connect";

/// `qemu-system-x86_64 --version`'s version in libvirt's encoding.
fn emulator_version() -> u64 {
    let out = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .expect("qemu-system-x86_64 --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in {text}"));
    let n: Vec<u64> = v.split('.').map(|p| p.parse().expect("number")).collect();
    n[0] * 1_000_000 + n[1] * 1_000 + n[2]
}

async fn call<B, R>(conn: &zbus::Connection, member: &str, body: &B) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    conn.call_method(Some(LIBVIRT), QEMU, Some(CONNECT), member, body)
        .await?
        .body()
        .deserialize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libvirt_facade_reports_the_emulator() {
    let bus = Bus::start();
    let state = bus.dir.path().join("state");
    let runtime = bus.dir.path().join("run");
    let d = Daemon::start_with(&bus, &state, &runtime, &["--libvirt-compat"]).await;
    let conn = bus.connect().await;
    let props = |name: &'static str| {
        let conn = conn.clone();
        async move {
            conn.call_method(
                Some(LIBVIRT),
                QEMU,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(CONNECT, name),
            )
            .await
            .and_then(|m| m.body().deserialize::<OwnedVariant>())
        }
    };
    // org.libvirt is owned just after org.virtbus1.
    let t = Instant::now();
    let version = loop {
        match props("Version").await {
            Ok(v) => break v,
            Err(e) => {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "{e}\n{}",
                    d.log_text()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        u64::try_from(version).expect("t"),
        emulator_version(),
        "Version is the emulator's"
    );
    let lib: OwnedVariant = props("LibVersion").await.expect("LibVersion");
    assert_eq!(u64::try_from(lib).expect("t"), 9_000_000);

    let caps: String = call(&conn, "GetDomainCapabilities", &("", "", "", "qemu", 0u32))
        .await
        .expect("domain capabilities");
    for want in [
        "<path>/usr/bin/qemu-system-x86_64</path>",
        "<domain>qemu</domain>",
        "<machine>pc-i440fx-",
        "<arch>x86_64</arch>",
        "<vcpu max='255'/>",
        "<value>efi</value>",
        "<mode name='host-passthrough' supported='no'/>",
        ">qemu64</model>",
        ">Haswell</model>",
        "<value>virtio</value>",
        "<value>vnc</value>",
    ] {
        assert!(caps.contains(want), "{want} in {caps}");
    }
    let q35: String = call(
        &conn,
        "GetDomainCapabilities",
        &("", "", "q35", "qemu", 0u32),
    )
    .await
    .expect("q35");
    // the alias answered by the full name, as libvirt does, with q35's own limit
    assert!(q35.contains("<machine>pc-q35-7.2</machine>"), "{q35}");
    assert!(q35.contains("<vcpu max='288'/>"), "{q35}");
    let e = call::<_, String>(
        &conn,
        "GetDomainCapabilities",
        &("", "", "nope", "qemu", 0u32),
    )
    .await
    .expect_err("unknown machine");
    assert!(
        matches!(&e, zbus::Error::MethodError(n, _, _) if n.as_str() == "org.libvirt.Error"),
        "{e}"
    );

    let models: Vec<String> = call(&conn, "GetCPUModelNames", &("x86_64", 0u32))
        .await
        .expect("CPU models");
    for m in ["qemu64", "Haswell", "EPYC"] {
        assert!(models.iter().any(|x| x == m), "{m} in {models:?}");
    }
    assert!(!models.iter().any(|x| x == "max" || x == "base"));
}
