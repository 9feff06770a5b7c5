//! Memory devices against libvirt 9.0's tests/qemuxml2argvdata/memory-hotplug-*.args
//! (libvirt writes `-device` as JSON, we as `key=value`; huge page paths are the mount).

use std::path::Path;

use super::*;
use crate::drivers::qemu::caps::tests::x86_64;
use crate::model::FormatOptions;

fn caps() -> Caps {
    let mut c = x86_64();
    c.devices
        .extend(["pc-dimm", "nvdimm", "virtio-mem-pci", "virtio-pmem-pci"].map(String::from));
    c.devices.sort();
    c
}

const NUMA: &str = "<cpu><numa><cell id='0' cpus='0-1' memory='219136' unit='KiB'/></numa></cpu>";

fn domain(max: &str, cpu: &str, mems: &str) -> String {
    format!(
        "<domain type='qemu'><name>t</name><uuid>00000000-0000-4000-8000-000000000001</uuid>\
         {max}<memory unit='KiB'>1267710</memory><vcpu>2</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os>{cpu}<devices>{mems}</devices>\
         </domain>"
    )
}

const MAX: &str = "<maxMemory slots='16' unit='KiB'>1099511627776</maxMemory>";

/// The definition after the driver's defaults, and its command line or refusal.
fn run(xml: &str) -> (DomainDef, std::result::Result<String, CmdlineError>) {
    let mut d = DomainDef::from_xml(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let caps = caps();
    crate::drivers::qemu::defaults::apply(&mut d, &caps).expect("defaults");
    let env = Env {
        caps: &caps,
        accel: Accel::Tcg,
        dir: Path::new("/run/vb/qemu/d1"),
        id: 3,
        free_port: &|| Some(5901),
        host: None,
    };
    let args = build(&d, &env).map(|p| p.args.join(" "));
    (d, args)
}

fn args(xml: &str) -> String {
    run(xml).1.unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(xml: &str) -> CmdlineError {
    match run(xml).1 {
        Ok(a) => panic!("built: {a}"),
        Err(e) => e,
    }
}

const DIMMS: &str = "<memory model='dimm'><source><nodemask>1-3</nodemask>\
    <pagesize unit='KiB'>2048</pagesize></source><target><size unit='KiB'>524287</size>\
    <node>0</node></target><address type='dimm' slot='0' base='0x100000000'/></memory>\
    <memory model='dimm'><target><size unit='KiB'>524287</size><node>0</node></target>\
    <address type='dimm' slot='2'/></memory>";

#[test]
fn dimms_as_memory_hotplug_dimm_addr() {
    let a = args(&domain(MAX, NUMA, DIMMS));
    assert!(
        a.contains("-m size=219136k,slots=16,maxmem=1099511627776k "),
        "{a}"
    );
    assert!(
        a.contains(
            "-object {\"qom-type\":\"memory-backend-file\",\"id\":\"memdimm0\",\
             \"mem-path\":\"/dev/hugepages\",\"prealloc\":true,\"size\":536870912,\
             \"host-nodes\":[1,2,3],\"policy\":\"bind\",\"prealloc-context\":\"tc-memdimm0\"} \
             -device pc-dimm,node=0,memdev=memdimm0,id=dimm0,slot=0,addr=4294967296 "
        ),
        "{a}"
    );
    assert!(
        a.contains(
            "-object {\"qom-type\":\"thread-context\",\"id\":\"tc-memdimm0\",\
             \"node-affinity\":[1,2,3]}"
        ),
        "{a}"
    );
    assert!(
        a.contains(
            "-object {\"qom-type\":\"memory-backend-ram\",\"id\":\"memdimm2\",\
             \"size\":536870912} -device pc-dimm,node=0,memdev=memdimm2,id=dimm2,slot=2"
        ),
        "{a}"
    );
    assert!(!a.contains("nvdimm=on"), "{a}");
}

#[test]
fn nvdimm_label_readonly_and_access() {
    let nv = "<memory model='nvdimm' access='private'><source><path>/tmp/nvdimm</path>\
              <alignsize unit='KiB'>2048</alignsize></source><target>\
              <size unit='KiB'>523264</size><node>0</node><label><size unit='KiB'>128</size>\
              </label><readonly/></target></memory>";
    let (d, a) = run(&domain(MAX, NUMA, nv));
    let a = a.expect("builds");
    assert!(
        a.contains("-machine pc-i440fx-7.2,usb=off,dump-guest-core=off,acpi=off,nvdimm=on"),
        "{a}"
    );
    assert!(
        a.contains(
            "-object {\"qom-type\":\"memory-backend-file\",\"id\":\"memnvdimm0\",\
             \"mem-path\":\"/tmp/nvdimm\",\"share\":false,\"prealloc\":true,\
             \"size\":536870912,\"align\":2097152} \
             -device nvdimm,node=0,label-size=131072,unarmed=on,memdev=memnvdimm0,\
             id=nvdimm0,slot=0"
        ),
        "{a}"
    );
    // the driver gave it the first free slot, which libvirt writes back
    let xml = d.to_xml(&FormatOptions::default());
    assert!(
        xml.contains(
            "      <target>\n        <size unit='KiB'>523264</size>\n        <node>0</node>\n\
             \x20       <label>\n          <size unit='KiB'>128</size>\n        </label>\n\
             \x20       <readonly/>\n      </target>\n      <address type='dimm' slot='0'/>"
        ),
        "{xml}"
    );
    // with NUMA, <memory> is the cells plus the devices
    assert!(xml.contains("<memory unit='KiB'>742400</memory>"), "{xml}");
    let pmem = "<memory model='nvdimm'><source><path>/tmp/nvdimm</path><pmem/></source>\
                <target><size unit='KiB'>523264</size><node>0</node></target></memory>";
    let a = args(&domain(MAX, NUMA, pmem));
    assert!(
        a.contains(
            "\"mem-path\":\"/tmp/nvdimm\",\"size\":536870912,\"pmem\":true} \
             -device nvdimm,node=0,memdev=memnvdimm0,id=nvdimm0,slot=0"
        ),
        "{a}"
    );
}

#[test]
fn virtio_mem_and_pmem() {
    let cpu = "<cpu><numa><cell id='0' cpus='0-1' memory='2095104' unit='KiB'/></numa></cpu>";
    let mems = "<memory model='virtio-mem'><target><size unit='KiB'>1048576</size>\
        <node>0</node><block unit='KiB'>2048</block><requested unit='KiB'>524288</requested>\
        </target><address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>\
        </memory><memory model='virtio-pmem' access='shared'><source>\
        <path>/tmp/virtio_pmem</path></source><target><size unit='KiB'>524288</size>\
        </target></memory>";
    let (d, a) = run(&domain(MAX, cpu, mems));
    let a = a.expect("builds");
    assert!(
        a.contains(
            "-object {\"qom-type\":\"memory-backend-ram\",\"id\":\"memvirtiomem0\",\
             \"reserve\":false,\"size\":1073741824} -device virtio-mem-pci,node=0,\
             block-size=2097152,requested-size=536870912,memdev=memvirtiomem0,\
             id=virtiomem0,addr=0x2.0"
        ),
        "{a}"
    );
    assert!(
        a.contains(
            "-object {\"qom-type\":\"memory-backend-file\",\"id\":\"memvirtiopmem0\",\
             \"mem-path\":\"/tmp/virtio_pmem\",\"share\":true,\"size\":536870912} \
             -device virtio-pmem-pci,memdev=memvirtiopmem0,id=virtiopmem0,addr=0x"
        ),
        "{a}"
    );
    // the virtio-pmem device got a PCI slot at define; virtio-mem kept its own
    let pmem = &d.devices.memories[1];
    assert_eq!(
        pmem.info.address.as_ref().map(|a| a.kind),
        Some(crate::model::AddressType::Pci)
    );
    let xml = d.to_xml(&FormatOptions::default());
    assert!(
        xml.contains(
            "<block unit='KiB'>2048</block>\n        \
             <requested unit='KiB'>524288</requested>\n      </target>"
        ),
        "{xml}"
    );
}

#[test]
fn hotplug_rules_as_libvirt() {
    let dimm = |extra: &str| {
        format!(
            "<memory model='dimm'><target><size unit='KiB'>524288</size>{extra}</target>\
             </memory>"
        )
    };
    let node0 = dimm("<node>0</node>");
    let e = refusal(&domain("", NUMA, &node0));
    assert!(e.to_string().contains("needs <maxMemory"), "{e}");
    let e = refusal(&domain(MAX, "", ""));
    assert!(e.to_string().contains("at least one NUMA cell"), "{e}");
    let e = refusal(&domain(MAX, NUMA, &dimm("")));
    assert!(e.to_string().contains("<target><node> is required"), "{e}");
    let e = refusal(&domain(MAX, NUMA, &dimm("<node>1</node>")));
    assert!(e.to_string().contains("the guest has 1 NUMA cells"), "{e}");
    let one = "<maxMemory slots='1' unit='KiB'>2000000</maxMemory>";
    let e = refusal(&domain(one, NUMA, &format!("{node0}{node0}")));
    assert!(e.to_string().contains("2 memory devices do not fit"), "{e}");
    let slot = "<memory model='dimm'><target><size unit='KiB'>524288</size><node>0</node>\
                </target><address type='dimm' slot='16'/></memory>";
    let e = refusal(&domain(MAX, NUMA, slot));
    assert!(e.to_string().contains("slot 16 is beyond"), "{e}");
    let twice = slot.replace("16", "3").repeat(2);
    let e = refusal(&domain(MAX, NUMA, &twice));
    assert!(e.to_string().contains("slot 3 is used"), "{e}");
    let sgx = "<memory model='sgx-epc'><target><size unit='KiB'>16384</size><node>0</node>\
               </target></memory>";
    assert!(matches!(
        refusal(&domain(MAX, NUMA, sgx)),
        CmdlineError::NotSupported(_)
    ));
}

#[test]
fn model_rules_and_round_trip() {
    let bad = [
        // a size without slots
        (
            domain("<maxMemory unit='KiB'>2000000</maxMemory>", NUMA, ""),
            "/domain/maxMemory/@slots",
        ),
        // below the total memory
        (
            domain("<maxMemory slots='2' unit='KiB'>1</maxMemory>", NUMA, ""),
            "/domain/maxMemory",
        ),
        (
            domain(
                MAX,
                NUMA,
                "<memory model='nvdimm'><target><size unit='KiB'>1024</size></target></memory>",
            ),
            "/domain/devices/memory/source/path",
        ),
        (
            domain(
                MAX,
                NUMA,
                "<memory model='virtio-mem'><target><size unit='KiB'>3072</size>\
                 <block unit='KiB'>2048</block></target></memory>",
            ),
            "/domain/devices/memory/target/block",
        ),
        (
            domain(
                MAX,
                NUMA,
                "<memory model='dimm'><source><path>/x</path></source>\
                 <target><size unit='KiB'>1024</size></target></memory>",
            ),
            "/domain/devices/memory/source/path",
        ),
    ];
    for (xml, path) in bad {
        let e = DomainDef::from_xml(&xml).expect_err(&xml).to_string();
        assert!(e.contains(path), "{e} (wanted {path})");
    }
    let d = DomainDef::from_xml(&domain(MAX, NUMA, DIMMS)).expect("parses");
    let out = d.to_xml(&FormatOptions::default());
    assert!(
        out.contains(
            "<maxMemory slots='16' unit='KiB'>1099511627776</maxMemory>\n  \
             <memory unit='KiB'>1267710</memory>"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "    <memory model='dimm'>\n      <source>\n        <nodemask>1-3</nodemask>\n\
             \x20       <pagesize unit='KiB'>2048</pagesize>\n      </source>"
        ),
        "{out}"
    );
    assert_eq!(DomainDef::from_xml(&out).expect("reparses"), d);
}
