//! Round trips and refusals of the tuning elements, against libvirt 9.0's canonical output
//! (tests/qemuxml2xmloutdata).

use crate::model::tuning::*;
use crate::model::{DomainDef, FormatOptions, VcpuPlacement};

fn doc(top: &str, cpu: &str) -> String {
    format!(
        "<domain type='qemu'><name>t</name><uuid>9f4b6512-e73a-4a25-93e8-5307802821ce</uuid>\
         <memory unit='KiB'>219136</memory>{top}<os><type arch='x86_64'>hvm</type></os>{cpu}\
         </domain>"
    )
}

fn canonical(xml: &str) -> String {
    let opts = FormatOptions {
        id: None,
        secure: true,
    };
    let d = DomainDef::from_xml(xml).unwrap_or_else(|e| panic!("parse failed: {e}\n{xml}"));
    let out = d.to_xml(&opts);
    let again = DomainDef::from_xml(&out).unwrap_or_else(|e| panic!("reparse failed: {e}\n{out}"));
    assert_eq!(d, again, "reparse differs:\n{out}");
    assert_eq!(again.to_xml(&opts), out, "format is not a fixed point");
    out
}

/// The lines of `out` from the one starting with `from` to the one starting with `to`.
fn section(out: &str, from: &str, to: &str) -> String {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let a = lines.iter().position(|l| l.starts_with(from)).expect(from);
    let b = a + lines[a..].iter().position(|l| l.starts_with(to)).expect(to);
    lines[a..=b].join("\n")
}

#[test]
fn id_sets_are_written_as_libvirt_formats_bitmaps() {
    let s = IdSet::parse("0-3,^2,8,9,11").unwrap();
    assert_eq!(s.to_string(), "0-1,3,8-9,11");
    assert_eq!(IdSet::parse("1-2,5-7,^6").unwrap().to_string(), "1-2,5,7");
    assert!(IdSet::parse("^1").is_err());
    assert!(IdSet::parse("1,^1").is_err());
}

/// libvirt's cputune.xml plus every other cputune child, in libvirt's order.
#[test]
fn cputune_round_trips_in_libvirt_order() {
    let top = "<vcpu placement='static'>4</vcpu><iothreads>2</iothreads>\
        <cputune>\
          <iothreadsched iothreads='2' scheduler='batch'/>\
          <vcpusched vcpus='0-1' scheduler='fifo' priority='10'/>\
          <vcpusched vcpus='3' scheduler='idle'/>\
          <emulatorsched scheduler='rr' priority='5'/>\
          <iothreadpin iothread='2' cpuset='0-3,^2'/>\
          <emulatorpin cpuset='1'/>\
          <vcpupin vcpu='1' cpuset='1'/>\
          <vcpupin vcpu='0' cpuset='0'/>\
          <iothread_quota>-1</iothread_quota><iothread_period>5000</iothread_period>\
          <emulator_quota>2000</emulator_quota><emulator_period>10000</emulator_period>\
          <global_quota>4000</global_quota><global_period>1000000</global_period>\
          <quota>-1</quota><period>1000000</period><shares>2048</shares>\
        </cputune>";
    let out = canonical(&doc(top, ""));
    assert_eq!(
        section(&out, "<iothreads>", "</cputune>"),
        "<iothreads>2</iothreads>\n<cputune>\n<shares>2048</shares>\n<period>1000000</period>\n\
         <quota>-1</quota>\n<global_period>1000000</global_period>\n<global_quota>4000</global_quota>\n\
         <emulator_period>10000</emulator_period>\n<emulator_quota>2000</emulator_quota>\n\
         <iothread_period>5000</iothread_period>\n<iothread_quota>-1</iothread_quota>\n\
         <vcpupin vcpu='0' cpuset='0'/>\n<vcpupin vcpu='1' cpuset='1'/>\n\
         <emulatorpin cpuset='1'/>\n<iothreadpin iothread='2' cpuset='0-1,3'/>\n\
         <emulatorsched scheduler='rr' priority='5'/>\n\
         <vcpusched vcpus='0' scheduler='fifo' priority='10'/>\n\
         <vcpusched vcpus='1' scheduler='fifo' priority='10'/>\n\
         <vcpusched vcpus='3' scheduler='idle'/>\n\
         <iothreadsched iothreads='2' scheduler='batch'/>\n</cputune>"
    );
}

/// genericxml2xmlindata/cachetune and memorytune: caches by level, type and id; sizes in
/// the largest exact unit; a cachetune and a memorytune of the same vCPUs are one group.
#[test]
fn cachetune_and_memorytune_round_trip() {
    let top = "<vcpu>4</vcpu><cputune>\
        <cachetune vcpus='0-1'><cache id='1' level='3' type='code' size='7680' unit='KiB'/>\
        <cache id='0' level='3' type='both' size='3' unit='MiB'/>\
        <monitor level='3' vcpus='1'/></cachetune>\
        <memorytune vcpus='2-3'><node id='1' bandwidth='40'/><node id='0' bandwidth='60'/></memorytune>\
        <memorytune vcpus='0-1'><monitor vcpus='0-1'/></memorytune>\
        </cputune>";
    let out = canonical(&doc(top, ""));
    assert_eq!(
        section(&out, "<cachetune", "</cputune>"),
        "<cachetune vcpus='0-1'>\n<cache id='0' level='3' type='both' size='3' unit='MiB'/>\n\
         <cache id='1' level='3' type='code' size='7680' unit='KiB'/>\n\
         <monitor level='3' vcpus='1'/>\n</cachetune>\n\
         <memorytune vcpus='0-1'>\n<monitor vcpus='0-1'/>\n</memorytune>\n\
         <memorytune vcpus='2-3'>\n<node id='0' bandwidth='60'/>\n<node id='1' bandwidth='40'/>\n\
         </memorytune>\n</cputune>"
    );
    let e = DomainDef::from_xml(&doc(
        "<vcpu>4</vcpu><cputune><cachetune vcpus='0-1'><cache id='0' level='3' type='both' size='1'/>\
         </cachetune><cachetune vcpus='1-2'><cache id='0' level='3' type='both' size='1'/></cachetune></cputune>",
        "",
    ))
    .expect_err("overlap");
    assert_eq!(e.path(), Some("/domain/cputune/cachetune[2]/@vcpus"), "{e}");
}

/// libvirt's iothreads-ids-partial: the ids `<iothreads>` adds are the lowest unused.
#[test]
fn iothread_ids_are_filled_in_as_libvirt_does() {
    let top = "<vcpu placement='static'>2</vcpu><iothreads>5</iothreads>\
        <iothreadids><iothread id='2' thread_pool_min='0' thread_pool_max='60'/><iothread id='4'/>\
        </iothreadids><defaultiothread thread_pool_min='8' thread_pool_max='16'/>";
    let out = canonical(&doc(top, ""));
    assert_eq!(
        section(&out, "<iothreads>", "<defaultiothread"),
        "<iothreads>5</iothreads>\n<iothreadids>\n\
         <iothread id='2' thread_pool_min='0' thread_pool_max='60'/>\n<iothread id='4'/>\n\
         <iothread id='1'/>\n<iothread id='3'/>\n<iothread id='5'/>\n</iothreadids>\n\
         <defaultiothread thread_pool_min='8' thread_pool_max='16'/>"
    );
    // a count alone keeps its short form
    let out = canonical(&doc("<vcpu>1</vcpu><iothreads>2</iothreads>", ""));
    assert!(out.contains("<iothreads>2</iothreads>") && !out.contains("iothreadids"));
}

/// libvirt's cpu-hotplug-startup: `<vcpus>` decides the current count.
#[test]
fn individual_vcpus_set_the_current_count() {
    let top = "<vcpu placement='static' current='6'>6</vcpu><vcpus>\
        <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>\
        <vcpu id='1' enabled='no'/><vcpu id='2' enabled='no' hotpluggable='yes'/>\
        <vcpu id='3' enabled='no' hotpluggable='yes'/>\
        <vcpu id='4' enabled='yes' hotpluggable='yes' order='2'/>\
        <vcpu id='5' enabled='yes' hotpluggable='yes' order='3'/></vcpus>";
    let out = canonical(&doc(top, ""));
    assert_eq!(
        section(&out, "<vcpu ", "</vcpus>"),
        "<vcpu placement='static' current='3'>6</vcpu>\n<vcpus>\n\
         <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>\n\
         <vcpu id='1' enabled='no' hotpluggable='yes'/>\n\
         <vcpu id='2' enabled='no' hotpluggable='yes'/>\n\
         <vcpu id='3' enabled='no' hotpluggable='yes'/>\n\
         <vcpu id='4' enabled='yes' hotpluggable='yes' order='2'/>\n\
         <vcpu id='5' enabled='yes' hotpluggable='yes' order='3'/>\n</vcpus>"
    );
}

/// libvirt's numatune-memnode: memnodes by cell, nodesets canonical, memory the cells' sum.
#[test]
fn numatune_and_cells_as_libvirt_writes_them() {
    let top = "<vcpu placement='static'>32</vcpu><numatune>\
        <memnode cellid='0' mode='preferred' nodeset='3'/>\
        <memory mode='strict' nodeset='0-7'/>\
        <memnode cellid='2' mode='strict' nodeset='1-2,5-7,^6'/></numatune>";
    let cpu = "<cpu><numa><cell id='0' cpus='0' memory='20002' unit='KiB'/>\
        <cell id='1' cpus='1-27,29' memory='660066' unit='KiB'/>\
        <cell id='2' cpus='28,30-31' memory='24002400' unit='KiB'/></numa></cpu>";
    let out = canonical(&doc(top, cpu));
    assert!(
        out.contains("<memory unit='KiB'>24682468</memory>"),
        "{out}"
    );
    assert_eq!(
        section(&out, "<numatune>", "</numatune>"),
        "<numatune>\n<memory mode='strict' nodeset='0-7'/>\n\
         <memnode cellid='0' mode='preferred' nodeset='3'/>\n\
         <memnode cellid='2' mode='strict' nodeset='1-2,5,7'/>\n</numatune>"
    );
    assert_eq!(
        section(&out, "<cpu>", "</cpu>"),
        "<cpu>\n<numa>\n<cell id='0' cpus='0' memory='20002' unit='KiB'/>\n\
         <cell id='1' cpus='1-27,29' memory='660066' unit='KiB'/>\n\
         <cell id='2' cpus='28,30-31' memory='24002400' unit='KiB'/>\n</numa>\n</cpu>"
    );
}

/// libvirt's numatune-distances: a distance given one way is filled in the other.
#[test]
fn numa_distances_are_made_symmetric() {
    let cpu = "<cpu><numa>\
        <cell id='0' cpus='0' memory='1' unit='GiB' memAccess='shared' discard='yes'>\
          <distances><sibling id='0' value='10'/><sibling id='1' value='21'/></distances></cell>\
        <cell id='1' cpus='1' memory='1048576' unit='KiB'/></numa></cpu>";
    let out = canonical(&doc("<vcpu>2</vcpu>", cpu));
    assert_eq!(
        section(&out, "<numa>", "</numa>"),
        "<numa>\n<cell id='0' cpus='0' memory='1048576' unit='KiB' memAccess='shared' discard='yes'>\n\
         <distances>\n<sibling id='0' value='10'/>\n<sibling id='1' value='21'/>\n</distances>\n\
         </cell>\n<cell id='1' cpus='1' memory='1048576' unit='KiB'>\n<distances>\n\
         <sibling id='0' value='21'/>\n<sibling id='1' value='10'/>\n</distances>\n</cell>\n</numa>"
    );
}

#[test]
fn memory_backing_round_trips() {
    let top = "<memoryBacking><discard/><allocation mode='immediate' threads='8'/>\
        <access mode='shared'/><source type='memfd'/><locked/><nosharepages/>\
        <hugepages><page size='2' unit='M' nodeset='0'/><page size='1048576'/></hugepages>\
        </memoryBacking><vcpu>2</vcpu>";
    let cpu =
        "<cpu><numa><cell cpus='0' memory='1024'/><cell cpus='1' memory='1024'/></numa></cpu>";
    let out = canonical(&doc(top, cpu));
    assert_eq!(
        section(&out, "<memoryBacking>", "</memoryBacking>"),
        "<memoryBacking>\n<hugepages>\n<page size='2048' unit='KiB' nodeset='0'/>\n\
         <page size='1048576' unit='KiB'/>\n</hugepages>\n<nosharepages/>\n<locked/>\n\
         <source type='memfd'/>\n<access mode='shared'/>\n\
         <allocation mode='immediate' threads='8'/>\n<discard/>\n</memoryBacking>"
    );
    let out = canonical(&doc(
        "<memoryBacking><hugepages/></memoryBacking><vcpu>1</vcpu>",
        "",
    ));
    assert!(out.contains("<hugepages/>"), "{out}");
}

/// libvirt's numad-auto-vcpu-no-numatune and numatune-auto-prefer.
#[test]
fn automatic_placement_goes_both_ways() {
    let out = canonical(&doc("<vcpu placement='auto'>2</vcpu>", ""));
    assert!(
        out.contains("<numatune>\n    <memory mode='strict' placement='auto'/>"),
        "{out}"
    );
    let d = DomainDef::from_xml(&doc(
        "<vcpu>2</vcpu><numatune><memory mode='preferred' placement='auto'/></numatune>",
        "",
    ))
    .unwrap();
    assert_eq!(d.vcpu_placement, Some(VcpuPlacement::Auto));
    // a pin keeps it static
    let d = DomainDef::from_xml(&doc(
        "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/></cputune>\
         <numatune><memory placement='auto'/></numatune>",
        "",
    ))
    .unwrap();
    assert_eq!(d.vcpu_placement, None);
}

#[test]
fn bad_tuning_is_refused_with_its_path() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "pin beyond the vCPUs",
            doc(
                "<vcpu>2</vcpu><cputune><vcpupin vcpu='2' cpuset='0'/></cputune>",
                "",
            ),
            "/domain/cputune/vcpupin/@vcpu",
        ),
        (
            "duplicate pin",
            doc(
                "<vcpu>2</vcpu><cputune><vcpupin vcpu='1' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/></cputune>",
                "",
            ),
            "/domain/cputune/vcpupin[2]/@vcpu",
        ),
        (
            "pin of an I/O thread that does not exist",
            doc(
                "<vcpu>1</vcpu><iothreads>1</iothreads><cputune><iothreadpin iothread='2' cpuset='0'/></cputune>",
                "",
            ),
            "/domain/cputune/iothreadpin/@iothread",
        ),
        (
            "period out of range",
            doc("<vcpu>1</vcpu><cputune><period>10</period></cputune>", ""),
            "/domain/cputune/period",
        ),
        (
            "real-time scheduler without a priority",
            doc(
                "<vcpu>1</vcpu><cputune><vcpusched vcpus='0' scheduler='fifo'/></cputune>",
                "",
            ),
            "/domain/cputune/vcpusched/@priority",
        ),
        (
            "memnode without cells",
            doc(
                "<vcpu>1</vcpu><numatune><memnode cellid='0' nodeset='0'/></numatune>",
                "",
            ),
            "/domain/numatune/memnode/@cellid",
        ),
        (
            "cell vCPUs beyond the count",
            doc(
                "<vcpu>2</vcpu>",
                "<cpu><numa><cell cpus='0-2' memory='1024'/></numa></cpu>",
            ),
            "/domain/cpu/numa/cell/@cpus",
        ),
        (
            "overlapping cells",
            doc(
                "<vcpu>2</vcpu>",
                "<cpu><numa><cell cpus='0-1' memory='1'/><cell cpus='1' memory='1'/></numa></cpu>",
            ),
            "/domain/cpu/numa/cell[2]/@cpus",
        ),
        (
            "distance to itself",
            doc(
                "<vcpu>1</vcpu>",
                "<cpu><numa><cell cpus='0' memory='1'><distances><sibling id='0' value='20'/></distances></cell></numa></cpu>",
            ),
            "/domain/cpu/numa/cell/distances/sibling",
        ),
        (
            "static placement without a nodeset",
            doc(
                "<vcpu>1</vcpu><numatune><memory placement='static'/></numatune>",
                "",
            ),
            "/domain/numatune/memory/@nodeset",
        ),
        (
            "unknown memoryBacking child",
            doc("<memoryBacking><bogus/></memoryBacking><vcpu>1</vcpu>", ""),
            "/domain/memoryBacking/bogus",
        ),
        (
            "vcpus id beyond the maximum",
            doc(
                "<vcpu>1</vcpu><vcpus><vcpu id='1' enabled='yes'/></vcpus>",
                "",
            ),
            "/domain/vcpus/vcpu/@id",
        ),
    ];
    for (what, xml, path) in cases {
        let err = DomainDef::from_xml(&xml).map(|_| ()).expect_err(what);
        assert_eq!(err.path(), Some(path), "{what}: {err}");
    }
}
