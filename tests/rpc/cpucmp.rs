//! `virsh cpu-compare` and `cpu-baseline` on `qemu:///system` against Debian's libvirtd on this
//! same host (both decode this host's CPU), over libvirt's own CPU test data
//! (`tests/cputestdata` of libvirt 9.0's source: guest and host CPUs of ~80 real processors and
//! the CPU driver's test cases), the host's CPU from either daemon's capabilities, and made-up
//! and broken definitions; `test+unix:///default` against libvirt's test driver.

use std::path::{Path, PathBuf};

use super::{Rpc, libvirt_test};
use crate::support::libvirtd::Libvirtd;

const QEMU: &str = "qemu:///system";
const TEST: &str = "test+unix:///default";
const DATA: &str = "/tmp/libvirt-9.0.0/tests/cputestdata";

fn triple(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// libvirt's x86 test CPUs: the driver's cases, then the real processors' host and guest CPUs.
fn test_data() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut cases = Vec::new();
    let mut cpuid = Vec::new();
    let dir = std::fs::read_dir(DATA)
        .unwrap_or_else(|e| panic!("{DATA} (libvirt 9.0's source, see the brief): {e}"));
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("x86_64-") || !name.ends_with(".xml") {
            continue;
        }
        if !name.starts_with("x86_64-cpuid-") {
            cases.push(e.path());
        } else if name.ends_with("-host.xml") || name.ends_with("-guest.xml") {
            cpuid.push(e.path());
        }
    }
    cases.sort();
    cpuid.sort();
    (cases, cpuid)
}

/// Made-up and broken definitions, written under `dir`.
fn made_up(dir: &Path) -> Vec<PathBuf> {
    let cpus: &[(&str, &str)] = &[
        ("bare-model", "<cpu><model>qemu64</model></cpu>"),
        (
            "custom-strict",
            "<cpu mode='custom' match='strict'><model>qemu64</model></cpu>",
        ),
        (
            "minimum",
            "<cpu match='minimum'><model>Nehalem</model><feature policy='optional' name='avx512f'/></cpu>",
        ),
        (
            "forbid-sse2",
            "<cpu><model>qemu64</model><feature policy='forbid' name='sse2'/></cpu>",
        ),
        (
            "disable-all",
            "<cpu><model>Haswell</model><feature policy='disable' name='avx2'/><feature policy='force' name='sse4.2'/></cpu>",
        ),
        (
            "optional",
            "<cpu><model>Broadwell</model><feature policy='optional' name='hle'/><feature policy='optional' name='rtm'/></cpu>",
        ),
        ("amd", "<cpu><model>EPYC</model><vendor>AMD</vendor></cpu>"),
        (
            "intel-vendor",
            "<cpu><model>qemu64</model><vendor>Intel</vendor></cpu>",
        ),
        ("host-model", "<cpu mode='host-model'/>"),
        (
            "host-passthrough",
            "<cpu mode='host-passthrough' migratable='on'/>",
        ),
        ("maximum", "<cpu mode='maximum'/>"),
        (
            "topology-only",
            "<cpu><topology sockets='1' cores='2' threads='1'/></cpu>",
        ),
        (
            "domain",
            "<domain type='kvm'><name>x</name><cpu><model>Westmere</model><feature name='pcid'/></cpu></domain>",
        ),
        (
            "two-host",
            "<cpu><arch>x86_64</arch><model>Westmere</model><vendor>Intel</vendor><feature name='aes'/></cpu>\
            <cpu><arch>x86_64</arch><model>SandyBridge</model><vendor>Intel</vendor></cpu>",
        ),
        (
            "host-no-vendor",
            "<cpu><arch>x86_64</arch><model>Penryn</model><feature name='ssse3'/></cpu>",
        ),
        (
            "i686-host",
            "<cpu><arch>i686</arch><model>pentium3</model></cpu>",
        ),
        (
            "arm-host",
            "<cpu><arch>aarch64</arch><model>cortex-a57</model><feature name='x'/></cpu>",
        ),
        (
            "ppc-host",
            "<cpu><arch>ppc64le</arch><model>POWER9</model></cpu>",
        ),
        (
            "s390-host",
            "<cpu><arch>s390x</arch><model>z13</model></cpu>",
        ),
        (
            "riscv-host",
            "<cpu><arch>riscv64</arch><model>x</model></cpu>",
        ),
        // refusals
        ("unknown-model", "<cpu><model>Pentium9000</model></cpu>"),
        (
            "unknown-feature",
            "<cpu><model>qemu64</model><feature name='warp-drive'/></cpu>",
        ),
        (
            "unknown-forced",
            "<cpu><model>qemu64</model><feature policy='force' name='warp-drive'/></cpu>",
        ),
        (
            "unknown-arch",
            "<cpu><arch>vax</arch><model>qemu64</model></cpu>",
        ),
        ("host-no-model", "<cpu><arch>x86_64</arch></cpu>"),
        (
            "arch-and-match",
            "<cpu match='exact'><arch>x86_64</arch><model>qemu64</model></cpu>",
        ),
        (
            "host-mode",
            "<cpu mode='custom'><arch>x86_64</arch><model>qemu64</model></cpu>",
        ),
        ("bad-mode", "<cpu mode='magic'><model>qemu64</model></cpu>"),
        (
            "bad-match",
            "<cpu match='roughly'><model>qemu64</model></cpu>",
        ),
        (
            "bad-policy",
            "<cpu><model>qemu64</model><feature policy='maybe' name='sse2'/></cpu>",
        ),
        (
            "twice",
            "<cpu><model>qemu64</model><feature name='sse2'/><feature name='sse2'/></cpu>",
        ),
        (
            "no-name",
            "<cpu><model>qemu64</model><feature policy='require'/></cpu>",
        ),
        ("features-no-model", "<cpu><feature name='sse2'/></cpu>"),
        ("vendor-no-model", "<cpu><vendor>Intel</vendor></cpu>"),
        (
            "bad-fallback",
            "<cpu><model fallback='never'>qemu64</model></cpu>",
        ),
        (
            "bad-vendor-id",
            "<cpu><model vendor_id='short'>qemu64</model></cpu>",
        ),
        (
            "migratable-custom",
            "<cpu migratable='on'><model>qemu64</model></cpu>",
        ),
        (
            "zero-sockets",
            "<cpu><model>qemu64</model><topology sockets='0' cores='1' threads='1'/></cpu>",
        ),
        (
            "unknown-vendor",
            "<cpu><arch>x86_64</arch><model>qemu64</model><vendor>Cyrix</vendor></cpu>",
        ),
        (
            "vendor-mismatch",
            "<cpu><arch>x86_64</arch><model>Haswell</model><vendor>Intel</vendor></cpu>\
            <cpu><arch>x86_64</arch><model>Haswell</model><vendor>AMD</vendor></cpu>",
        ),
        (
            "vendors-differ",
            "<cpu><arch>x86_64</arch><model>Haswell</model><vendor>Intel</vendor></cpu>\
            <cpu><arch>x86_64</arch><model>Opteron_G4</model></cpu>",
        ),
        (
            "incompatible",
            "<cpu><arch>x86_64</arch><model>486</model></cpu>\
            <cpu><arch>x86_64</arch><model>qemu64</model><vendor>AMD</vendor></cpu>",
        ),
        ("no-cpu", "<domain><name>x</name></domain>"),
    ];
    cpus.iter()
        .map(|(name, xml)| {
            let p = dir.join(format!("{name}.xml"));
            std::fs::write(&p, xml).expect("write");
            p
        })
        .collect()
}

#[tokio::test]
async fn cpu_compare_and_baseline_are_libvirtds() {
    if let Err(why) = Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let lv = Libvirtd::start();
    let tmp = tempfile::Builder::new()
        .prefix("vbcpucmp")
        .tempdir()
        .expect("tempdir");
    let (mut cases, cpuid) = test_data();
    // the driver's multi-CPU cases come wrapped in <cpuTest>, which virsh does not look into
    for c in &mut cases {
        let text = std::fs::read_to_string(&*c).expect("read");
        if let Some(inner) = text.trim().strip_prefix("<cpuTest>") {
            let inner = inner.trim_end().trim_end_matches("</cpuTest>");
            let p = tmp.path().join(c.file_name().expect("name"));
            std::fs::write(&p, inner).expect("write");
            *c = p;
        }
    }
    assert!(cases.len() > 50 && cpuid.len() > 100, "{cases:?} {cpuid:?}");
    let mine = made_up(tmp.path());
    // the host's CPU as each daemon shows it, and the domain capabilities' host-model
    let mut host_files = Vec::new();
    for (name, out) in [
        ("caps-libvirtd", triple(lv.virsh(&["capabilities"]))),
        ("caps-ours", r.virsh(QEMU, &["capabilities"])),
        ("domcaps-libvirtd", triple(lv.virsh(&["domcapabilities"]))),
    ] {
        assert!(out.0, "{name}: {}", out.2);
        let p = tmp.path().join(format!("{name}.xml"));
        std::fs::write(&p, &out.1).expect("write");
        host_files.push(p);
    }

    let mut mismatches = Vec::new();
    let mut run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = triple(lv.virsh(&a));
        let got = r.virsh(QEMU, &[&["-q"][..], &a].concat());
        if got != want {
            mismatches.push(format!(
                "virsh {a:?}\n  ours:     {got:?}\n  libvirtd: {want:?}"
            ));
        }
        want
    };
    let mut seen = [0usize; 3];
    let all: Vec<&PathBuf> = cases
        .iter()
        .chain(&cpuid)
        .chain(&mine)
        .chain(&host_files)
        .collect();
    for f in &all {
        let f = f.display().to_string();
        let (ok, out, _) = run(vec!["cpu-compare".into(), f.clone()]);
        if out.contains("identical") {
            seen[0] += 1;
        } else if out.contains("superset") {
            seen[1] += 1;
        } else if out.contains("incompatible") && !ok {
            seen[2] += 1;
        }
        run(vec!["cpu-compare".into(), "--error".into(), f.clone()]);
        run(vec!["cpu-baseline".into(), f.clone()]);
        run(vec!["cpu-baseline".into(), "--features".into(), f.clone()]);
        run(vec!["cpu-baseline".into(), "--migratable".into(), f]);
    }
    // baselines of real processors two and three at a time
    let hosts: Vec<&PathBuf> = cpuid
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("-host.xml"))
        .collect();
    for (i, w) in hosts.windows(2).enumerate() {
        let joined = tmp.path().join(format!("pair{i}.xml"));
        let mut text = String::new();
        for p in w.iter().chain(hosts.get(i + 5)) {
            text += &std::fs::read_to_string(p).expect("read");
        }
        std::fs::write(&joined, text).expect("write");
        let j = joined.display().to_string();
        run(vec!["cpu-baseline".into(), j.clone()]);
        run(vec![
            "cpu-baseline".into(),
            "--features".into(),
            "--migratable".into(),
            j,
        ]);
    }
    assert!(
        mismatches.is_empty(),
        "{} of the calls differ from libvirtd's:\n{}\ndaemon log:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        r.daemon.log_text()
    );
    // the inputs exercise every outcome
    assert!(
        seen.iter().all(|n| *n > 0),
        "identical/superset/incompatible: {seen:?}"
    );

    // libvirt's test driver computes baselines (without --migratable) and compares nothing
    for f in cases.iter().take(30).chain(&mine) {
        let f = f.display().to_string();
        for args in [
            vec!["cpu-baseline", &f],
            vec!["cpu-baseline", "--features", &f],
            vec!["cpu-baseline", "--migratable", &f],
            vec!["cpu-compare", &f],
        ] {
            assert_eq!(
                r.virsh(TEST, &args),
                libvirt_test(&args),
                "virsh {args:?}: ours (left) differs from libvirt's test driver"
            );
        }
    }
}
