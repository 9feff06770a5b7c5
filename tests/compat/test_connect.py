#!/usr/bin/python3
"""org.libvirt.Connect through dbus-python: every method and property, with libvirt's results
and errors, on /org/libvirt/Test (a fresh daemon: test:///default's state)."""
import os
import xml.etree.ElementTree as ET

from lvtest import *

b = bus()
c = iface(b, TEST, CONNECT)
props = iface(b, TEST, PROPS)
sigs = Signals(b)


def properties():
    eq(props.Get(CONNECT, "LibVersion"), 9000000, "LibVersion")
    eq(props.Get(CONNECT, "Version"), 2, "Version")
    eq(props.Get(CONNECT, "Encrypted"), False, "Encrypted")
    eq(props.Get(CONNECT, "Secure"), False, "Secure")
    with open("/proc/sys/kernel/hostname") as f:
        eq(props.Get(CONNECT, "Hostname"), f.read().strip(), "Hostname")
    every = props.GetAll(CONNECT)
    eq(sorted(every), ["Encrypted", "Hostname", "LibVersion", "Secure", "Version"], "GetAll")
    # libvirt-dbus wraps each value of GetAll in a second variant.
    eq(every["LibVersion"].variant_level, 2, "GetAll's variant nesting")
    expect_error(props.Get, CONNECT, "Bogus", name="org.freedesktop.DBus.Error.InvalidArgs",
                 message="No such property “Bogus”")
    expect_error(props.Set, CONNECT, "Hostname", "x", name="org.freedesktop.DBus.Error.InvalidArgs",
                 message="Property “Hostname” is not writable")
    expect_error(props.GetAll, "org.bogus", name="org.freedesktop.DBus.Error.InvalidArgs",
                 message="No such interface “org.bogus”")


def list_domains_with_filters():
    eq(list(c.ListDomains(0)), [TEST_DOM], "ListDomains(0)")
    want = {1: [TEST_DOM], 2: [], 4: [TEST_DOM], 8: [], 16: [TEST_DOM], 32: [], 64: [],
            128: [], 256: [], 512: [TEST_DOM], 1024: [], 2048: [TEST_DOM], 4096: [],
            8192: [TEST_DOM], 16384: [], 32768: [TEST_DOM], 1 | 2: [TEST_DOM]}
    for f, w in want.items():
        eq(list(c.ListDomains(f)), w, f"ListDomains({f})")
    expect_error(c.ListDomains, 1 << 16,
                 message="unsupported flags (0x10000) in function testConnectListAllDomains")


def lookups():
    eq(c.DomainLookupByName("test"), TEST_DOM, "by name")
    eq(c.DomainLookupByID(1), TEST_DOM, "by id")
    eq(c.DomainLookupByUUID(TEST_UUID), TEST_DOM, "by uuid")
    eq(c.DomainLookupByUUID(TEST_UUID.replace("-", "")), TEST_DOM, "by uuid without dashes")
    expect_error(c.DomainLookupByName, "nope", message="Domain not found")
    expect_error(c.DomainLookupByID, 7, message="Domain not found")
    expect_error(c.DomainLookupByID, -1,
                 message="id in virDomainLookupByID must be zero or greater")
    expect_error(c.DomainLookupByUUID, "nope", message="Invalid UUID")
    expect_error(c.DomainLookupByUUID, TEST_UUID[:-1] + "0", message="Domain not found")


def define_and_create_with_events():
    sigs.take()
    uuid = "0b5e4c1f-1d1e-4f7a-9f5e-1d2c3b4a5968"
    path = c.DomainDefineXML(domain_xml("d1", uuid))
    eq(path, TEST + "/domain/_" + uuid.replace("-", "_"), "defined path")
    eq(sigs.events(), [(path, 0, 0)], "defined/added")
    eq(c.DomainDefineXML(domain_xml("d1", uuid)), path, "redefined path")
    eq(sigs.events(), [(path, 0, 1)], "defined/updated")
    expect_error(c.DomainDefineXML, "<domain", contains="invalid argument: ")
    expect_error(c.DomainDefineXML, domain_xml("d1"), contains="operation failed: ")
    expect_error(c.DomainDefineXML, domain_xml("k").replace("'test'", "'kvm'"),
                 contains="unsupported configuration: ")
    t = c.DomainCreateXML(domain_xml("t1"), 1)
    eq(sigs.events(), [(t, 2, 0), (t, 3, 0)], "started/booted, suspended/paused")
    eq(tuple(iface(b, t, DOMAIN).GetState(0)), (3, 1), "created paused")
    expect_error(c.DomainCreateXML, domain_xml("t2"), 2,
                 message="unsupported flags (0x2) in function testDomainCreateXML")
    eq(sorted(c.ListDomains(8)), [t], "transient")
    eq(sorted(c.ListDomains(2)), [path], "inactive")
    eq(c.DomainLookupByID(2), t, "the created domain has the next id")


def all_domain_stats():
    records = {str(n): dict(s) for n, s in c.GetAllDomainStats(1, 0)}
    eq(sorted(records), ["d1", "t1", "test"], "records")
    eq(records["test"], {"state.state": 1, "state.reason": 0}, "test's state")
    eq(records["d1"], {"state.state": 5, "state.reason": 0}, "d1's state")
    eq(records["test"]["state.state"].variant_level, 2, "typed parameters nest variants")
    active = dict((str(n), s) for n, s in c.GetAllDomainStats(1 | 2, 1))
    eq(sorted(active), ["t1", "test"], "active only")
    full = dict((str(n), dict(s)) for n, s in c.GetAllDomainStats(0, 0))["test"]
    for k in ("cpu.time", "balloon.current", "vcpu.current", "vcpu.0.time", "block.count",
              "net.count"):
        if k not in full:
            fail(f"GetAllDomainStats(0) lacks {k}: {sorted(full)}")
    expect_error(c.GetAllDomainStats, 1 << 20, 1 << 31,
                 message="Operation not supported: Stats types bits 0x100000 are not supported by this daemon")
    expect_error(c.GetAllDomainStats, 1, 1 << 20,
                 message="unsupported flags (0x100000) in function testConnectGetAllDomainStats")


def capabilities_and_host():
    caps = ET.fromstring(c.GetCapabilities())
    eq(caps.find("host/cpu/arch").text, os.uname().machine, "host arch")
    types = {d.get("type") for d in caps.iter("domain")}
    eq(types, {"test"}, "guest domain types")
    dc = ET.fromstring(c.GetDomainCapabilities("", "x86_64", "", "", 0))
    eq(dc.find("domain").text, "test", "domcaps domain")
    eq(dc.find("vcpu").get("max"), "255", "domcaps vcpu max")
    if dc.find("cpu/mode[@name='custom']/model") is None:
        fail("domcaps lists no CPU model")
    expect_error(c.GetDomainCapabilities, "", "", "", "kvm", 0,
                 message="Operation not supported: domains of type 'kvm' are not served here")
    expect_error(c.GetDomainCapabilities, "", "", "q35", "", 0, contains="invalid argument: ")
    models = list(c.GetCPUModelNames("x86_64", 0))
    if "qemu64" not in models:
        fail(f"models: {models}")
    expect_error(c.GetCPUModelNames, "bogus", 0,
                 message="invalid argument: cannot find architecture bogus")
    if not c.GetSysinfo(0).startswith("<sysinfo type='smbios'>"):
        fail("sysinfo")
    expect_error(c.GetSysinfo, 1, message="unsupported flags (0x1) in function testConnectGetSysinfo")
    with open("/sys/devices/system/cpu/present") as f:
        last = int(f.read().strip().split(",")[-1].split("-")[-1])
    eq(len(c.NodeGetCPUMap(0)), last + 1, "CPU map length")
    cpu = c.NodeGetCPUStats(-1, 0)
    eq(sorted(cpu), ["idle", "iowait", "kernel", "user"], "CPU stats keys")
    expect_error(c.NodeGetCPUStats, 100000, 0, contains="invalid argument: ")
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1])
    mem = c.NodeGetMemoryStats(-1, 0)
    eq(sorted(mem), ["buffers", "cached", "free", "total"], "memory stats keys")
    eq(int(mem["total"]), total, "total memory")
    node0 = c.NodeGetMemoryStats(0, 0)
    eq(sorted(node0), ["free", "total"], "node 0 memory keys")
    expect_error(c.NodeGetMemoryStats, 4096, 0, contains="invalid argument: ")
    if not 0 < c.NodeGetFreeMemory() <= total * 1024:
        fail("free memory")
    params = c.NodeGetMemoryParameters(0)
    for k in params:
        if not k.startswith("shm_"):
            fail(f"memory parameter {k}")
    eq(tuple(c.NodeGetSecurityModel()), ("none", "0"), "security model")


def unmanaged_objects():
    eq(list(c.ListStoragePools(0)),
       [TEST + "/storagepool/_dfe224cb_28fb_8dd0_c4b2_64eb3f0f4566"], "test:///default's pool")
    # test:///default's network (tests/compat/test_network.py compares it with libvirt's)
    eq(list(c.ListNetworks(0)), [TEST + "/network/_dd8fe884_6c02_601e_7551_cca97df1c5df"],
       "networks")
    eq(list(c.ListNWFilters(0)), [], "nwfilters")
    eq(list(c.ListSecrets(0)), [], "secrets")
    expect_error(c.NetworkLookupByName, "nope",
                 message="Network not found: no network with matching name 'nope'")
    expect_error(c.StoragePoolLookupByName, "default",
                 message="Storage pool not found: no storage pool with matching name 'default'")
    expect_error(c.StorageVolLookupByPath, "/x.img",
                 message="Storage volume not found: no storage vol with matching path '/x.img'")
    expect_error(c.InterfaceLookupByName, "eth0",
                 message="Interface not found: no interface with matching name 'eth0'")
    expect_error(c.NodeDeviceLookupByName, "scsi_host3",
                 message="Node device not found: no node device with matching name 'scsi_host3'")
    expect_error(c.SecretLookupByUUID, TEST_UUID, contains="Secret not found: ")
    expect_error(c.NWFilterLookupByName, "clean-traffic", contains="Network filter not found: ")
    expect_error(c.NetworkCreateXML, "<network/>", contains="/network/name")
    expect_error(c.CompareCPU, "<cpu/>", 0,
                 message="this function is not supported by the connection driver: virConnectCompareCPU")


def bus_level_errors():
    def raw(path, member, sig, args):
        return lambda: b.call_blocking(NAME, path, CONNECT, member, sig, args)
    expect_error(raw(TEST, "ListDomains", "s", ("x",)),
                 name="org.freedesktop.DBus.Error.InvalidArgs",
                 message="Type of message, “(s)”, does not match expected type “(u)”")
    expect_error(raw(TEST, "Bogus", "", ()), name="org.freedesktop.DBus.Error.UnknownMethod",
                 message="No such method “Bogus”")
    expect_error(raw("/org/libvirt/Xen", "ListDomains", "u", (0,)),
                 name="org.freedesktop.DBus.Error.UnknownMethod",
                 message="No such interface “org.libvirt.Connect” on object at path /org/libvirt/Xen")


run([properties, list_domains_with_filters, lookups, define_and_create_with_events,
     all_domain_stats, capabilities_and_host, unmanaged_objects, bus_level_errors])
