use std::path::Path;

use super::*;

fn map() -> map::Map {
    map::Map::load(Path::new(crate::host::cpumodels::CPU_MAP)).expect("libvirt's CPU map")
}

fn cpus(host: &str) -> Cpus {
    Cpus {
        map: map(),
        ppc64: map::Ppc64Map::load(Path::new(crate::host::cpumodels::CPU_MAP)).expect("ppc64"),
        host: def::parse(host, None).expect("host"),
    }
}

const HASWELL_HOST: &str = "<cpu><arch>x86_64</arch><model>Haswell</model><vendor>Intel</vendor>\
    <feature name='vme'/><feature name='ss'/></cpu>";

#[test]
fn models_inherit_and_features_carry_bits() {
    let m = map();
    let fpu = m.feature("fpu").expect("fpu");
    assert_eq!(fpu.data.get(map::Leaf::Cpuid(1, 0)), [0, 0, 0, 1]);
    let haswell = m.model("Haswell").expect("Haswell");
    let noibrs = m.model("Haswell-IBRS").expect("Haswell-IBRS");
    assert!(noibrs.data.contains(&haswell.data));
    assert_eq!(m.vendors[haswell.vendor.expect("vendor")].name, "Intel");
    assert!(!m.feature("invtsc").expect("invtsc").migratable);
}

#[test]
fn compare_follows_libvirts_rules() {
    let c = cpus(HASWELL_HOST);
    let cmp = |x: &str| c.compare(None, x, false);
    assert_eq!(cmp(HASWELL_HOST), Ok(Comparison::Identical));
    assert_eq!(
        cmp("<cpu><model>Haswell</model></cpu>"),
        Ok(Comparison::Superset)
    );
    assert_eq!(
        cmp("<cpu><model>Nehalem</model></cpu>"),
        Ok(Comparison::Superset)
    );
    assert_eq!(
        cmp("<cpu><model>Skylake-Client</model></cpu>"),
        Ok(Comparison::Incompatible)
    );
    let e = c
        .compare(
            None,
            "<cpu><model>Haswell</model><feature name='avx512f'/></cpu>",
            true,
        )
        .expect_err("incompatible");
    assert_eq!(
        e.message(),
        "the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f"
    );
    let e = c
        .compare(
            None,
            "<cpu match='strict'><model>Haswell</model></cpu>",
            true,
        )
        .expect_err("strict");
    assert_eq!(
        e.message(),
        "the CPU is incompatible with host CPU: Host CPU does not strictly match guest CPU: Extra features: vme, ss"
    );
    let e = c
        .compare(
            None,
            "<cpu><model>Haswell</model><feature policy='forbid' name='ss'/></cpu>",
            true,
        )
        .expect_err("forbid");
    assert!(
        e.message()
            .ends_with("Host CPU provides forbidden features: ss"),
        "{e}"
    );
    let e = c
        .compare(None, "<cpu><model>Nope</model></cpu>", false)
        .expect_err("unknown");
    assert_eq!(e.message(), "internal error: Unknown CPU model Nope");
    let e = c
        .compare(
            None,
            "<cpu><model>Haswell</model><vendor>AMD</vendor></cpu>",
            true,
        )
        .expect_err("vendor");
    assert!(
        e.message()
            .ends_with("host CPU vendor does not match required CPU vendor AMD")
    );
}

#[test]
fn bad_definitions_are_refused_in_libvirts_words() {
    for (xml, msg) in [
        (
            "<cpu><arch>x86_64</arch></cpu>",
            "XML error: Missing CPU model name",
        ),
        (
            "<cpu><vendor>Intel</vendor></cpu>",
            "XML error: CPU vendor specified without CPU model",
        ),
        (
            "<cpu mode='bogus'/>",
            "unsupported configuration: Invalid mode attribute 'bogus'",
        ),
        (
            "<cpu><feature name='x'/></cpu>",
            "XML error: Non-empty feature list specified without CPU model",
        ),
        (
            "<cpu><model>A</model><feature name='x'/><feature name='x'/></cpu>",
            "XML error: CPU feature 'x' specified more than once",
        ),
        (
            "<cpu><model>A</model><feature policy='maybe' name='x'/></cpu>",
            "unsupported configuration: Invalid CPU feature policy",
        ),
        (
            "<cpu><arch>vax</arch><model>A</model></cpu>",
            "unsupported configuration: Unknown architecture vax",
        ),
    ] {
        assert_eq!(
            def::parse(xml, None).map_err(|e| e.message()),
            Err(msg.to_owned()),
            "{xml}"
        );
    }
}

#[test]
fn baselines_pick_the_model_all_share() {
    let c = cpus(HASWELL_HOST);
    let a = "<cpu><arch>x86_64</arch><model>Haswell</model><vendor>Intel</vendor></cpu>".to_owned();
    let b = "<cpu><arch>x86_64</arch><model>Nehalem</model><vendor>Intel</vendor>\
        <feature name='aes'/></cpu>"
        .to_owned();
    let out = c
        .baseline(&[a.clone(), b.clone()], 0, true)
        .expect("baseline");
    assert_eq!(
        out,
        "<cpu mode='custom' match='exact'>\n  <model fallback='allow'>Westmere</model>\n  \
         <vendor>Intel</vendor>\n</cpu>\n"
    );
    let one = c.baseline(std::slice::from_ref(&a), 0, true).expect("one");
    assert!(
        one.contains("<model fallback='forbid'>Haswell</model>"),
        "{one}"
    );
    let expanded = c
        .baseline(&[a], BASELINE_EXPAND_FEATURES, true)
        .expect("expanded");
    assert!(
        expanded.contains("<feature policy='require' name='avx2'/>"),
        "{expanded}"
    );
    let amd =
        "<cpu><arch>x86_64</arch><model>Opteron_G3</model><vendor>AMD</vendor></cpu>".to_owned();
    assert_eq!(
        c.baseline(&[b, amd], 0, true).map_err(|e| e.message()),
        Err("operation failed: CPU vendors do not match".to_owned())
    );
}

#[test]
fn other_architectures_as_libvirts_drivers() {
    let c = cpus(HASWELL_HOST);
    let b = |x: &str| {
        c.baseline(&[x.to_owned()], 0, true)
            .map_err(|e| e.message())
    };
    assert_eq!(
        b("<cpu><arch>ppc64le</arch><model>POWER9</model></cpu>"),
        Ok("<cpu mode='custom' match='exact'>\n  <model fallback='forbid'>POWER9</model>\n</cpu>\n".to_owned())
    );
    assert_eq!(
        b("<cpu><arch>aarch64</arch><model>cortex-a57</model></cpu>"),
        Ok("<cpu mode='custom' match='exact'>\n  <model fallback='allow'>cortex-a57</model>\n</cpu>\n".to_owned())
    );
    assert_eq!(
        b("<cpu><arch>s390x</arch><model>z13</model></cpu>"),
        Err("this function is not supported by the connection driver: cannot compute baseline CPU of s390x architecture".to_owned())
    );
    assert_eq!(
        b("<cpu><arch>riscv64</arch><model>x</model></cpu>"),
        Err("this function is not supported by the connection driver: 'riscv64' architecture is not supported by CPU driver".to_owned())
    );
}

#[test]
fn the_host_cpu_decodes_to_a_model_of_its_vendor() {
    let c = Cpus::load(Path::new(crate::host::cpumodels::CPU_MAP)).expect("host");
    assert!(c.host.model.is_some(), "{:?}", c.host);
    // the host is a superset of its own model and identical to itself
    let own = c.host.format();
    assert_eq!(
        c.compare(None, &own, true),
        Ok(Comparison::Identical),
        "{own}"
    );
}
