//! Tuning arguments against libvirt 9.0's tests/qemuxml2argvdata/*.x86_64-latest.args.
//! libvirt's `-m` is in MiB, ours in KiB; its huge page paths have a per-domain directory
//! below the hugetlbfs mount, ours are the mount itself (QEMU makes an unlinked file there).

use std::path::{Path, PathBuf};

use super::super::{Accel, Env, Plan, build};
use super::*;
use crate::drivers::qemu::caps::tests::x86_64;

fn def(top: &str, cpu: &str) -> DomainDef {
    let xml = format!(
        "<domain type='qemu'><name>t</name><uuid>00000000-0000-4000-8000-000000000001</uuid>\
         <memory unit='KiB'>219136</memory>{top}<os><type arch='x86_64'>hvm</type></os>{cpu}\
         <devices/></domain>"
    );
    DomainDef::from_xml(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

fn host() -> Host {
    Host {
        hugepages: vec![(2048, 64), (1_048_576, 4)],
        hugetlbfs: vec![
            HugeTlb {
                page_kib: 2048,
                path: PathBuf::from("/dev/hugepages2M"),
                reserved: 64,
            },
            HugeTlb {
                page_kib: 1_048_576,
                path: PathBuf::from("/dev/hugepages1G"),
                reserved: 4,
            },
        ],
        default_huge_kib: 2048,
        system_page_kib: 4,
        nodes: vec![0, 1, 2, 3, 4, 5, 6, 7],
        cgroup_cpu: None,
        resctrl: false,
    }
}

fn plan(d: &DomainDef, host: Option<&Host>) -> std::result::Result<Plan, CmdlineError> {
    let caps = x86_64();
    let env = Env {
        caps: &caps,
        accel: Accel::Tcg,
        dir: Path::new("/run/vb/qemu/d1"),
        id: 1,
        free_port: &|| None,
        host,
    };
    build(d, &env)
}

/// The values of every `flag` argument, in order.
fn values(p: &Plan, flag: &str) -> Vec<String> {
    p.args
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].clone())
        .collect()
}

/// numatune-memnode: a backend per cell with host-nodes and policy from `<numatune>`.
#[test]
fn numatune_memnode() {
    let d = def(
        "<vcpu placement='static'>32</vcpu><numatune>\
         <memnode cellid='0' mode='preferred' nodeset='3'/><memory mode='strict' nodeset='0-7'/>\
         <memnode cellid='2' mode='strict' nodeset='1-2,5-7,^6'/></numatune>",
        "<cpu><numa><cell id='0' cpus='0' memory='20002' unit='KiB'/>\
         <cell id='1' cpus='1-27,29' memory='660066' unit='KiB'/>\
         <cell id='2' cpus='28,30-31' memory='24002400' unit='KiB'/></numa></cpu>",
    );
    let p = plan(&d, Some(&host())).expect("builds");
    assert_eq!(values(&p, "-m"), [format!("size={}k", 24105 * 1024)]);
    let objects = values(&p, "-object");
    assert_eq!(
        objects,
        [
            r#"{"qom-type":"memory-backend-ram","id":"ram-node0","size":20971520,"host-nodes":[3],"policy":"preferred"}"#,
            r#"{"qom-type":"memory-backend-ram","id":"ram-node1","size":676331520,"host-nodes":[0,1,2,3,4,5,6,7],"policy":"bind"}"#,
            r#"{"qom-type":"memory-backend-ram","id":"ram-node2","size":24578621440,"host-nodes":[1,2,5,7],"policy":"bind"}"#,
        ]
    );
    assert_eq!(
        values(&p, "-numa"),
        [
            "node,nodeid=0,cpus=0,memdev=ram-node0",
            "node,nodeid=1,cpus=1-27,cpus=29,memdev=ram-node1",
            "node,nodeid=2,cpus=28,cpus=30-31,memdev=ram-node2",
        ]
    );
    // -object and -numa alternate, after -smp
    let smp = p.args.iter().position(|a| a == "-smp").expect("smp");
    assert_eq!(p.args[smp + 2], "-object");
    assert_eq!(p.args[smp + 4], "-numa");
    // a host without those nodes refuses at start, not at define
    let small = Host {
        nodes: vec![0],
        ..host()
    };
    let e = plan(&d, Some(&small)).expect_err("node 3 is missing");
    assert!(
        e.to_string().contains("host NUMA node 1 does not exist"),
        "{e}"
    );
    assert!(plan(&d, None).is_ok());
}

/// hugepages-shared: per-cell page sizes and memAccess, thread contexts for preallocation.
#[test]
fn hugepages_shared() {
    let d = def(
        "<memoryBacking><hugepages><page size='2048' unit='KiB' nodeset='1'/>\
         <page size='1048576' unit='KiB' nodeset='0,2-3'/></hugepages></memoryBacking>\
         <vcpu placement='static'>4</vcpu><numatune><memory mode='strict' nodeset='0-3'/>\
         <memnode cellid='3' mode='strict' nodeset='3'/></numatune>",
        "<cpu><numa><cell id='0' cpus='0' memory='1048576' unit='KiB'/>\
         <cell id='1' cpus='1' memory='1048576' unit='KiB' memAccess='shared'/>\
         <cell id='2' cpus='2' memory='1048576' unit='KiB' memAccess='private'/>\
         <cell id='3' cpus='3' memory='1048576' unit='KiB'/></numa></cpu>",
    );
    let p = plan(&d, Some(&host())).expect("builds");
    assert_eq!(
        values(&p, "-object"),
        [
            r#"{"qom-type":"thread-context","id":"tc-ram-node0","node-affinity":[0,1,2,3]}"#,
            r#"{"qom-type":"memory-backend-file","id":"ram-node0","mem-path":"/dev/hugepages1G","prealloc":true,"size":1073741824,"host-nodes":[0,1,2,3],"policy":"bind","prealloc-context":"tc-ram-node0"}"#,
            r#"{"qom-type":"thread-context","id":"tc-ram-node1","node-affinity":[0,1,2,3]}"#,
            r#"{"qom-type":"memory-backend-file","id":"ram-node1","mem-path":"/dev/hugepages2M","share":true,"prealloc":true,"size":1073741824,"host-nodes":[0,1,2,3],"policy":"bind","prealloc-context":"tc-ram-node1"}"#,
            r#"{"qom-type":"thread-context","id":"tc-ram-node2","node-affinity":[0,1,2,3]}"#,
            r#"{"qom-type":"memory-backend-file","id":"ram-node2","mem-path":"/dev/hugepages1G","share":false,"prealloc":true,"size":1073741824,"host-nodes":[0,1,2,3],"policy":"bind","prealloc-context":"tc-ram-node2"}"#,
            r#"{"qom-type":"thread-context","id":"tc-ram-node3","node-affinity":[3]}"#,
            r#"{"qom-type":"memory-backend-file","id":"ram-node3","mem-path":"/dev/hugepages1G","prealloc":true,"size":1073741824,"host-nodes":[3],"policy":"bind","prealloc-context":"tc-ram-node3"}"#,
        ]
    );
    // no 1 GiB pages reserved: refused at start naming the size
    let none = Host {
        hugepages: vec![(2048, 64), (1_048_576, 0)],
        ..host()
    };
    let e = plan(&d, Some(&none)).expect_err("no 1G pages");
    assert!(
        matches!(&e, CmdlineError::NotSupported(m)
            if m.contains("<page size='1048576' unit='KiB'>") && m.contains("no 1048576 KiB huge pages reserved")),
        "{e}"
    );
}

/// memfd-memory-numa (without its NVDIMM): memfd with huge pages, shared, preallocated by
/// 8 threads, bound to node 3.
#[test]
fn memfd_memory_numa() {
    let d = def(
        "<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages>\
         <source type='memfd'/><access mode='shared'/><allocation mode='immediate' threads='8'/>\
         </memoryBacking><vcpu placement='static'>8</vcpu>\
         <numatune><memnode cellid='0' mode='preferred' nodeset='3'/></numatune>",
        "<cpu><topology sockets='1' dies='1' cores='8' threads='1'/>\
         <numa><cell id='0' cpus='0-7' memory='14680064' unit='KiB'/></numa></cpu>",
    );
    let p = plan(&d, Some(&host())).expect("builds");
    assert_eq!(
        values(&p, "-object"),
        [
            r#"{"qom-type":"thread-context","id":"tc-ram-node0","node-affinity":[3]}"#,
            r#"{"qom-type":"memory-backend-memfd","id":"ram-node0","hugetlb":true,"hugetlbsize":2097152,"share":true,"prealloc":true,"prealloc-threads":8,"size":15032385536,"host-nodes":[3],"policy":"preferred","prealloc-context":"tc-ram-node0"}"#,
        ]
    );
    assert_eq!(
        values(&p, "-numa"),
        ["node,nodeid=0,cpus=0-7,memdev=ram-node0"]
    );
    assert_eq!(
        values(&p, "-smp"),
        ["8,maxcpus=8,sockets=1,dies=1,cores=8,threads=1"]
    );
}

/// numatune-system-memory and hugepages-default: the default RAM as a backend object.
#[test]
fn system_memory_backends() {
    let d = def(
        "<vcpu placement='static'>2</vcpu><numatune><memory mode='strict' nodeset='0'/></numatune>",
        "",
    );
    let p = plan(&d, Some(&host())).expect("builds");
    assert!(values(&p, "-machine")[0].ends_with(",memory-backend=pc.ram"));
    assert_eq!(
        values(&p, "-object"),
        [
            r#"{"qom-type":"memory-backend-ram","id":"pc.ram","size":224395264,"host-nodes":[0],"policy":"bind"}"#
        ]
    );
    let d = def(
        "<memoryBacking><hugepages/><nosharepages/><locked/></memoryBacking><vcpu>1</vcpu>",
        "",
    );
    let p = plan(&d, Some(&host())).expect("builds");
    assert!(
        values(&p, "-machine")[0].ends_with(",mem-merge=off,memory-backend=pc.ram"),
        "{:?}",
        p.args
    );
    assert_eq!(
        values(&p, "-object"),
        [
            r#"{"qom-type":"memory-backend-file","id":"pc.ram","mem-path":"/dev/hugepages2M","x-use-canonical-path-for-ramblock-id":false,"prealloc":true,"size":224395264}"#
        ]
    );
    assert_eq!(values(&p, "-overcommit"), ["mem-lock=on"]);
    // this machine reserves no huge pages: refused at start, accepted at define
    let bare = Host {
        hugepages: vec![(2048, 0)],
        hugetlbfs: Vec::new(),
        ..host()
    };
    assert!(plan(&d, Some(&bare)).is_err());
    assert!(plan(&d, None).is_ok());
    // a guest without tuning keeps the plain -m
    let p = plan(&def("<vcpu>1</vcpu>", ""), Some(&host())).expect("builds");
    assert!(
        values(&p, "-object").is_empty() && !values(&p, "-machine")[0].contains("memory-backend")
    );
}

/// iothreads-ids-pool-sizes.
#[test]
fn iothread_objects() {
    let d = def(
        "<vcpu placement='static'>6</vcpu><iothreads>5</iothreads><iothreadids>\
         <iothread id='2' thread_pool_min='0' thread_pool_max='60'/>\
         <iothread id='4' thread_pool_min='1' thread_pool_max='1'/>\
         <iothread id='1'/><iothread id='3'/><iothread id='5'/></iothreadids>\
         <defaultiothread thread_pool_min='8' thread_pool_max='16'/>",
        "",
    );
    let p = plan(&d, None).expect("builds");
    assert_eq!(
        values(&p, "-object"),
        [
            r#"{"qom-type":"iothread","id":"iothread2","thread-pool-min":0,"thread-pool-max":60}"#,
            r#"{"qom-type":"iothread","id":"iothread4","thread-pool-min":1,"thread-pool-max":1}"#,
            r#"{"qom-type":"iothread","id":"iothread1"}"#,
            r#"{"qom-type":"iothread","id":"iothread3"}"#,
            r#"{"qom-type":"iothread","id":"iothread5"}"#,
            r#"{"qom-type":"main-loop","id":"main-loop","thread-pool-min":8,"thread-pool-max":16}"#,
        ]
    );
}

/// iothreads-disk: a virtio disk runs in the I/O thread its driver names.
#[test]
fn disk_in_an_iothread() {
    let xml = |io: &str, bus: &str| {
        format!(
            "<domain type='qemu'><name>t</name><memory unit='KiB'>219136</memory>\
             <vcpu>1</vcpu><iothreads>2</iothreads><os><type>hvm</type></os><devices>\
             <disk type='file'><driver name='qemu' type='raw' iothread='{io}'/>\
             <source file='/d/a.img'/><target dev='{bus}a' bus='{}'/></disk></devices></domain>",
            if bus == "vd" { "virtio" } else { "sata" }
        )
    };
    let d = DomainDef::from_xml(&xml("2", "vd")).expect("parses");
    assert!(
        d.to_xml(&Default::default())
            .contains("<driver name='qemu' type='raw' iothread='2'/>")
    );
    let p = plan(&d, None).expect("builds");
    assert!(
        values(&p, "-device")
            .iter()
            .any(|v| v.starts_with("virtio-blk-pci")
                && v.contains(",id=virtio-disk0,iothread=iothread2")),
        "{:?}",
        p.args
    );
    let e = plan(&DomainDef::from_xml(&xml("3", "vd")).expect("parses"), None)
        .expect_err("no thread 3");
    assert!(e.to_string().contains("iothread='3'"), "{e}");
    let e = plan(&DomainDef::from_xml(&xml("1", "sd")).expect("parses"), None).expect_err("sata");
    assert!(e.to_string().contains("virtio disks only"), "{e}");
}

/// numatune-distances: once one distance is set, all pairs are given.
#[test]
fn numa_distances() {
    let d = def(
        "<vcpu>3</vcpu>",
        "<cpu><numa><cell id='0' cpus='0' memory='1048576'>\
         <distances><sibling id='1' value='21'/><sibling id='2' value='31'/></distances></cell>\
         <cell id='1' cpus='1' memory='1048576'/><cell id='2' cpus='2' memory='1048576'/>\
         </numa></cpu>",
    );
    let p = plan(&d, None).expect("builds");
    let dist: Vec<String> = values(&p, "-numa")
        .into_iter()
        .filter(|v| v.starts_with("dist"))
        .collect();
    assert_eq!(
        dist,
        [
            "dist,src=0,dst=0,val=10",
            "dist,src=0,dst=1,val=21",
            "dist,src=0,dst=2,val=31",
            "dist,src=1,dst=0,val=21",
            "dist,src=1,dst=1,val=10",
            "dist,src=1,dst=2,val=20",
            "dist,src=2,dst=0,val=31",
            "dist,src=2,dst=1,val=20",
            "dist,src=2,dst=2,val=10",
        ]
    );
    assert!(numa_mem_supported("pc-i440fx-2.3") && !numa_mem_supported("pc-q35-7.2"));
}

#[test]
fn refusals() {
    let cases = [
        (
            "<vcpu>1</vcpu><numatune><memory mode='restrictive' nodeset='0'/></numatune>",
            "mode='restrictive'",
        ),
        (
            "<vcpu>3</vcpu><vcpus><vcpu id='0' enabled='yes'/><vcpu id='1' enabled='no'/>\
             <vcpu id='2' enabled='yes'/></vcpus>",
            "vCPU 2 is enabled after offline vCPU 1",
        ),
    ];
    for (top, want) in cases {
        let e = plan(&def(top, ""), None).expect_err(top);
        assert!(e.to_string().contains(want), "{top}: {e}");
    }
    // CPU bandwidth needs a cgroup: refused at start only
    let d = def("<vcpu>1</vcpu><cputune><shares>2048</shares></cputune>", "");
    assert!(plan(&d, None).is_ok());
    let e = plan(&d, Some(&host())).expect_err("no cgroup");
    assert!(e.to_string().contains("<cputune><shares>"), "{e}");
    // resctrl is not mounted: refused at start naming the element
    let d = def(
        "<vcpu>2</vcpu><cputune><cachetune vcpus='0-1'>\
         <cache id='0' level='3' type='both' size='3' unit='MiB'/></cachetune></cputune>",
        "",
    );
    assert!(plan(&d, None).is_ok());
    let e = plan(&d, Some(&host())).expect_err("no resctrl");
    assert!(
        matches!(&e, CmdlineError::NotSupported(m) if m.contains("<cputune><cachetune vcpus='0-1'>") && m.contains("/sys/fs/resctrl")),
        "{e}"
    );
    // pinning is applied after start: the command line does not change
    let d = def(
        "<vcpu cpuset='0'>2</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/></cputune>",
        "",
    );
    assert_eq!(
        values(&plan(&d, None).expect("builds"), "-smp"),
        ["2,maxcpus=2,sockets=2,cores=1,threads=1"]
    );
}
