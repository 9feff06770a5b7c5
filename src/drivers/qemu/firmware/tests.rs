use std::path::Path;

use super::*;
use crate::model::DomainDef;

/// Debian's three OVMF descriptors, in their priority order.
fn debian() -> Vec<Descriptor> {
    let d = |file: &str, code: &str, vars: &str, machines: &[&str], features: &[&str]| {
        let json = serde_json::json!({
            "description": file,
            "interface-types": ["uefi"],
            "mapping": {
                "device": "flash",
                "executable": {"filename": code, "format": "raw"},
                "nvram-template": {"filename": vars, "format": "raw"},
            },
            "targets": [{"architecture": "x86_64", "machines": machines}],
            "features": features,
            "tags": [],
        });
        Descriptor::parse(Path::new(file), &json.to_string()).unwrap()
    };
    let sb = [
        "acpi-s3",
        "amd-sev",
        "requires-smm",
        "secure-boot",
        "verbose-dynamic",
    ];
    let mut enrolled = sb.to_vec();
    enrolled.push("enrolled-keys");
    vec![
        d(
            "40-edk2-x86_64-secure-enrolled.json",
            "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
            &["pc-q35-*"],
            &enrolled,
        ),
        d(
            "50-edk2-x86_64-secure.json",
            "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
            &["pc-q35-*"],
            &sb,
        ),
        d(
            "60-edk2-x86_64.json",
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
            &["pc-i440fx-*", "pc-q35-*"],
            &["acpi-s3", "amd-sev", "verbose-dynamic"],
        ),
    ]
}

fn def(os: &str) -> DomainDef {
    let features = if os.contains("<features>") {
        ""
    } else {
        "<features><acpi/></features>"
    };
    DomainDef::from_xml(&format!(
        "<domain type='qemu'><name>vm1</name><memory>65536</memory>{os}{features}</domain>"
    ))
    .unwrap()
}

fn resolve_on(os: &str, machine: &str) -> Result<DomainDef> {
    resolve(&def(os), &debian(), machine, "x86_64", Path::new("/nv"))
}

#[test]
fn efi_on_q35_takes_the_first_descriptor_in_priority_order() {
    let r = resolve_on("<os firmware='efi'><type>hvm</type></os>", "pc-q35-7.2").unwrap();
    let l = r.os.loader.as_ref().unwrap();
    assert_eq!(
        l.path.as_deref(),
        Some("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
    );
    assert_eq!(l.secure, Some(true));
    assert_eq!(l.readonly, Some(true));
    assert_eq!(l.loader_type, Some(LoaderType::Pflash));
    let n = r.os.nvram.as_ref().unwrap();
    assert_eq!(
        n.template.as_deref(),
        Some("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
    );
    assert_eq!(n.path.as_deref(), Some("/nv/vm1_VARS.fd"));
    assert_eq!(r.features.smm, Some(FeatureState::On));
    assert_eq!(r.os.firmware, None);
}

#[test]
fn efi_on_i440fx_takes_the_insecure_firmware() {
    let r = resolve_on("<os firmware='efi'><type>hvm</type></os>", "pc-i440fx-7.2").unwrap();
    let l = r.os.loader.as_ref().unwrap();
    assert_eq!(l.path.as_deref(), Some("/usr/share/OVMF/OVMF_CODE_4M.fd"));
    assert_eq!(l.secure, None);
    assert_eq!(r.features.smm, None);
}

#[test]
fn features_choose_among_descriptors() {
    let feat = |sb: &str, keys: &str| {
        let mut f = String::from("<firmware>");
        if !sb.is_empty() {
            f += &format!("<feature enabled='{sb}' name='secure-boot'/>");
        }
        if !keys.is_empty() {
            f += &format!("<feature enabled='{keys}' name='enrolled-keys'/>");
        }
        format!("<os firmware='efi'><type>hvm</type>{f}</firmware></os>")
    };
    let code =
        |os: String| resolve_on(&os, "pc-q35-7.2").map(|r| r.os.loader.unwrap().path.unwrap());
    assert_eq!(
        code(feat("yes", "no")).unwrap(),
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
    );
    assert_eq!(
        code(feat("no", "")).unwrap(),
        "/usr/share/OVMF/OVMF_CODE_4M.fd"
    );
    assert_eq!(
        code(feat("", "yes")).unwrap(),
        "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
    );
    // secure boot only on q35: refused on i440fx, naming the machine
    let e = resolve_on(&feat("yes", ""), "pc-i440fx-7.2").unwrap_err();
    assert!(
        matches!(&e, FirmwareError::NotSupported(m) if m.contains("pc-i440fx-7.2") && m.contains("secure-boot=yes")),
        "{e:?}"
    );
    let e = resolve_on(&feat("no", "yes"), "pc-q35-7.2").unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Invalid(m) if m.contains("enrolled-keys")),
        "{e:?}"
    );
}

#[test]
fn smm_off_is_refused_for_firmware_that_needs_it() {
    let os = "<os firmware='efi'><type>hvm</type><firmware>\
              <feature enabled='yes' name='secure-boot'/></firmware></os>\
              <features><acpi/><smm state='off'/></features>";
    let e = resolve_on(os, "pc-q35-7.2").unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Invalid(m) if m.contains("smm")),
        "{e:?}"
    );
}

#[test]
fn autoselection_refuses_a_loader_chosen_by_hand() {
    let e = resolve_on(
        "<os firmware='efi'><type>hvm</type><loader>/x.fd</loader></os>",
        "pc-q35-7.2",
    )
    .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Invalid(m) if m.contains("loader path")),
        "{e:?}"
    );
    let e = resolve_on(
        "<os firmware='efi'><type>hvm</type><loader secure='no'/></os>",
        "pc-q35-7.2",
    )
    .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Invalid(m) if m.contains("@secure")),
        "{e:?}"
    );
    let e = resolve_on(
        "<os firmware='bios'><type>hvm</type><nvram>/v.fd</nvram></os>",
        "pc-q35-7.2",
    )
    .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::Invalid(m) if m.contains("'bios'")),
        "{e:?}"
    );
}

#[test]
fn a_hand_chosen_loader_gets_its_nvram_path_and_the_template_of_its_descriptor() {
    let mut d = def("<os><type>hvm</type><loader readonly='yes' type='pflash'>\
         /usr/share/OVMF/OVMF_CODE_4M.fd</loader></os>");
    post_parse(&mut d, Path::new("/nv"));
    assert_eq!(
        d.os.nvram.as_ref().unwrap().path.as_deref(),
        Some("/nv/vm1_VARS.fd")
    );
    assert_eq!(d.os.nvram.as_ref().unwrap().template, None);
    let r = resolve(&d, &debian(), "pc-q35-7.2", "x86_64", Path::new("/nv")).unwrap();
    assert_eq!(
        r.os.nvram.as_ref().unwrap().template.as_deref(),
        Some("/usr/share/OVMF/OVMF_VARS_4M.fd")
    );
    // a ROM loader gets nothing
    let mut d = def("<os><type>hvm</type><loader>/usr/share/seabios/bios.bin</loader></os>");
    post_parse(&mut d, Path::new("/nv"));
    assert!(d.os.nvram.is_none());
}

#[test]
fn globs_match_machine_types() {
    assert!(glob("pc-q35-*", "pc-q35-7.2"));
    assert!(!glob("pc-q35-*", "pc-i440fx-7.2"));
    assert!(glob("pc-?35-*", "pc-q35-"));
    assert!(glob("*", ""));
}

#[test]
fn the_nvram_copy_is_made_once_from_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("VARS.fd");
    std::fs::write(&tmpl, b"template").unwrap();
    let mut d = def("<os><type>hvm</type></os>");
    d.os.nvram = Some(Box::new(Nvram {
        path: Some(dir.path().join("n/vm1_VARS.fd").display().to_string()),
        template: Some(tmpl.display().to_string()),
        source_form: false,
    }));
    prepare_nvram(&d).unwrap();
    let copy = dir.path().join("n/vm1_VARS.fd");
    assert_eq!(std::fs::read(&copy).unwrap(), b"template");
    std::fs::write(&copy, b"changed").unwrap();
    prepare_nvram(&d).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"changed");
    d.os.nvram.as_mut().unwrap().template = None;
    std::fs::remove_file(&copy).unwrap();
    assert!(prepare_nvram(&d).unwrap_err().contains("template"));
}

#[test]
fn domain_capabilities_offer_each_loader_of_the_machines_once() {
    let q35 = ["pc-q35-7.2".to_owned()];
    let (loaders, secure, kinds) = offered(&debian(), "x86_64", &q35);
    // Debian describes OVMF only: SeaBIOS has no descriptor, so `firmware='bios'` is not offered
    assert_eq!(kinds, ["efi"]);
    assert_eq!(
        loaders,
        [
            "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
            "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
            "/usr/share/OVMF/OVMF_CODE_4M.fd"
        ]
    );
    assert!(secure);
    let (loaders, secure, _) = offered(&debian(), "x86_64", &["pc-i440fx-7.2".to_owned()]);
    assert_eq!(loaders, ["/usr/share/OVMF/OVMF_CODE_4M.fd"]);
    assert!(!secure);
    assert!(offered(&debian(), "aarch64", &q35).0.is_empty());
}

#[test]
fn uefi_needs_acpi_on_x86() {
    let e = resolve_on(
        "<os firmware='efi'><type>hvm</type></os><features><pae/></features>",
        "pc-q35-7.2",
    )
    .unwrap_err();
    assert!(
        matches!(&e, FirmwareError::NotSupported(m) if m.contains("ACPI")),
        "{e:?}"
    );
}

/// libvirt's firmware-manual-efi-stateless and firmware-auto-efi-stateless: a stateless
/// loader runs without NVRAM, and automatic selection needs a stateless descriptor
/// (Debian's are all split).
#[test]
fn stateless_loader_has_no_nvram() {
    let os = "<os><type>hvm</type><loader readonly='yes' type='pflash' stateless='yes'>\
              /usr/share/OVMF/OVMF_CODE_4M.fd</loader></os>";
    let mut d = def(os);
    post_parse(&mut d, Path::new("/nv"));
    assert!(d.os.nvram.is_none());
    let r = resolve(&d, &debian(), "pc-i440fx-7.2", "x86_64", Path::new("/nv")).unwrap();
    assert!(r.os.nvram.is_none());
    let x = r.to_xml(&Default::default());
    assert!(x.contains("stateless='yes'"), "{x}");
    let e = resolve_on(
        "<os firmware='efi'><type>hvm</type><loader stateless='yes'/></os>",
        "pc-q35-7.2",
    )
    .unwrap_err();
    assert!(e.to_string().contains("no firmware descriptor"), "{e}");
    let e = resolve_on(
        "<os><type>hvm</type><loader readonly='yes' type='pflash' stateless='yes'>\
         /usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram>/nv/x.fd</nvram></os>",
        "pc-q35-7.2",
    )
    .unwrap_err();
    assert!(e.to_string().contains("stateless"), "{e}");
}
