#!/usr/bin/python3
"""org.libvirt.Domain through dbus-python: every method in scope, every property and the
signals, with libvirt's numbers and errors (a fresh daemon: test:///default's state)."""
from lvtest import *

b = bus()
c = iface(b, TEST, CONNECT)
sigs = Signals(b)
d = iface(b, TEST_DOM, DOMAIN)
dp = iface(b, TEST_DOM, PROPS)
NOT_RUNNING = "Requested operation is not valid: domain is not running"

WEB_XML = domain_xml("web", "1f0c3e5a-2b4d-4c6e-8f10-223344556677", extra=(
    "<devices><disk type='file' device='disk'><source file='/w.img'/>"
    "<target dev='vda' bus='virtio'/></disk>"
    "<interface type='network'><mac address='52:54:00:aa:bb:01'/><source network='default'/>"
    "<target dev='vnet7'/></interface><memballoon model='virtio'/></devices>"))


def web():
    path = c.DomainDefineXML(WEB_XML.replace("<vcpu current='1'>2</vcpu>",
                                             "<vcpu current='1'>4</vcpu>"))
    return path, iface(b, path, DOMAIN)


def members(signals, path):
    return [(m, tuple(a)) for (p, _, m, a) in signals if p == path and m != "PropertiesChanged"]


def changed(signals, path):
    out = {}
    for (p, i, m, a) in signals:
        if p == path and m == "PropertiesChanged":
            eq(str(a[0]), DOMAIN, "PropertiesChanged interface")
            out.update({str(k): v for k, v in a[1].items()})
    return out


def properties():
    want = {"Active": True, "Autostart": False, "Id": 1, "Name": "test", "OSType": "linux",
            "Persistent": True, "SchedulerType": ("fair", 1), "Updated": False,
            "UUID": TEST_UUID}
    for k, v in want.items():
        got = dp.Get(DOMAIN, k)
        eq(tuple(got) if k == "SchedulerType" else got, v, k)
    every = dp.GetAll(DOMAIN)
    eq({k: (tuple(v) if k == "SchedulerType" else v) for k, v in every.items()}, want, "GetAll")
    eq(every["Id"].variant_level, 2, "GetAll's variant nesting")
    sigs.take()
    dp.Set(DOMAIN, "Autostart", True)
    got = sigs.take()
    eq(changed(got, TEST_DOM), {"Autostart": True}, "PropertiesChanged")
    eq(dp.Get(DOMAIN, "Autostart"), True, "Autostart")
    eq(list(c.ListDomains(1024)), [TEST_DOM], "autostart filter")
    dp.Set(DOMAIN, "Autostart", False)
    expect_error(dp.Set, DOMAIN, "Name", "x", name="org.freedesktop.DBus.Error.InvalidArgs",
                 message="Property “Name” is not writable")
    expect_error(dp.Set, DOMAIN, "Autostart", "x", name="org.freedesktop.DBus.Error.InvalidArgs",
                 message="Error setting property “Autostart”: Expected type “b” but got “s”")


def lifecycle_states_and_events():
    sigs.take()
    d.Suspend()
    eq(tuple(d.GetState(0)), (3, 1), "paused by the user")
    eq(sigs.events(), [(TEST_DOM, 3, 0)], "suspended/paused")
    expect_error(d.Suspend, message="internal error: domain 'test' not running")
    d.Resume()
    eq(tuple(d.GetState(0)), (1, 5), "running, unpaused")
    eq(sigs.events(), [(TEST_DOM, 4, 0)], "resumed/unpaused")
    expect_error(d.Resume, message="internal error: domain 'test' not paused")
    d.Reboot(0)
    eq(members(sigs.take(), TEST_DOM), [("Reboot", ())], "Reboot signal")
    d.Reboot(1)
    sigs.take()
    expect_error(d.Reboot, 4, message="unsupported flags (0x4) in function testDomainReboot")
    d.Reset(0)
    eq(members(sigs.take(), TEST_DOM), [("Reboot", ())], "a reset reboots the guest")
    expect_error(d.Reset, 1, message="unsupported flags (0x1) in function testDomainReset")
    d.InjectNMI(0)
    d.Shutdown(0)
    got = sigs.take()
    eq([(int(a[1]), int(a[2])) for (_, _, m, a) in got if m == "DomainEvent"], [(6, 0), (5, 0)],
       "shutdown/finished, stopped/shutdown")
    eq(changed(got, TEST_DOM), {"Active": False, "Id": 0}, "PropertiesChanged on stop")
    eq(tuple(d.GetState(0)), (5, 1), "shut off, shutdown")
    expect_error(d.Shutdown, 0, message="internal error: domain 'test' not running")
    expect_error(d.InjectNMI, 0, message=NOT_RUNNING)
    expect_error(d.Reset, 0, message=NOT_RUNNING)
    d.Create(0)
    eq(sigs.events(), [(TEST_DOM, 2, 0)], "started/booted")
    eq(tuple(d.GetState(0)), (1, 1), "running, booted")
    eq(dp.Get(DOMAIN, "Id"), 2, "a new id")
    expect_error(d.Create, 0, message="internal error: Domain 'test' is already running")
    d.Destroy(0)
    eq(sigs.events(), [(TEST_DOM, 5, 1)], "stopped/destroyed")
    eq(tuple(d.GetState(0)), (5, 2), "shut off, destroyed")
    expect_error(d.Destroy, 0, message=NOT_RUNNING)
    d.Create(1)
    eq(sigs.events(), [(TEST_DOM, 2, 0), (TEST_DOM, 3, 0)], "started paused")
    d.Destroy(1)
    expect_error(d.Create, 2, message="unsupported flags (0x2) in function testDomainCreateWithFlags")
    expect_error(d.Destroy, 2, message="unsupported flags (0x2) in function testDomainDestroyFlags")
    d.Create(0)
    sigs.take()


def xml_and_state():
    running = d.GetXMLDesc(0)
    if not running.startswith("<domain type='test' id="):
        fail(running)
    inactive = d.GetXMLDesc(2)
    if not inactive.startswith("<domain type='test'>\n  <name>test</name>"):
        fail(inactive)
    eq(d.GetXMLDesc(3), inactive, "secure inactive")
    eq(d.GetXMLDesc(8), running, "migratable")
    expect_error(d.GetXMLDesc, 4, message="unsupported flags (0x4) in function testDomainGetXMLDesc")
    expect_error(d.GetState, 1, message="unsupported flags (0x1) in function testDomainGetState")


def statistics():
    eq(dict(d.GetStats(1, 0)), {"state.state": 1, "state.reason": 1}, "state")
    eq(d.GetStats(1, 0)["state.state"].variant_level, 2, "typed parameters nest variants")
    cockpit = d.GetStats(45, 0)
    groups = {k.split(".")[0] for k in cockpit}
    eq(groups, {"state", "balloon", "vcpu", "block"}, "groups of 45")
    for k in ("balloon.rss", "vcpu.maximum", "vcpu.0.time", "block.0.name"):
        if k not in cockpit:
            fail(f"GetStats(45) lacks {k}")
    if "cpu.time" not in d.GetStats(0, 0):
        fail("GetStats(0) lacks cpu.time")
    expect_error(d.GetStats, 1 << 20, 1 << 31, contains="Stats types bits 0x100000")
    expect_error(d.GetStats, 1, 1 << 20, contains="unsupported flags (0x100000)")


def metadata():
    sigs.take()
    expect_error(d.GetMetadata, 1, "", 0,
                 message="metadata not found: Requested metadata element is not present")
    d.SetMetadata(1, "Web", "", "", 0)
    eq(members(sigs.take(), TEST_DOM), [("MetadataChange", (1, ""))], "MetadataChange")
    eq(d.GetMetadata(1, "", 0), "Web", "title")
    d.SetMetadata(0, "A description", "", "", 0)
    eq(d.GetMetadata(0, "", 0), "A description", "description")
    d.SetMetadata(2, '<foo a="1">bar<b/></foo>', "app", "http://app/", 0)
    eq(members(sigs.take(), TEST_DOM)[-1], ("MetadataChange", (2, "http://app/")), "element signal")
    eq(d.GetMetadata(2, "http://app/", 0), '<foo a="1">bar<b/></foo>', "element")
    if '<app:foo xmlns:app="http://app/" a="1">bar<app:b/></app:foo>' not in d.GetXMLDesc(0):
        fail(d.GetXMLDesc(0))
    d.SetMetadata(2, "", "app", "http://app/", 0)
    expect_error(d.GetMetadata, 2, "http://app/", 0, contains="metadata not found")
    d.SetMetadata(1, "Configured", "", "", 2)
    eq(d.GetMetadata(1, "", 2), "Configured", "config title")
    eq(d.GetMetadata(1, "", 1), "Web", "live title")
    expect_error(d.GetMetadata, 1, "http://x/", 0, message="uri in virDomainGetMetadata must be NULL")
    expect_error(d.GetMetadata, 2, "", 0, message="uri in virDomainGetMetadata must not be NULL")
    expect_error(d.GetMetadata, 5, "", 0, message="invalid argument: unknown metadata type '5'")
    expect_error(d.GetMetadata, 1, "", 3,
                 message="Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive")
    expect_error(d.GetMetadata, 1, "", 4,
                 message="unsupported flags (0x4) in function testDomainGetMetadata")
    expect_error(d.SetMetadata, 1, "x", "k", "", 0, message="key in virDomainSetMetadata must be NULL")
    expect_error(d.SetMetadata, 2, "<x/>", "", "http://y/", 0,
                 message="key in virDomainSetMetadata must not be NULL")
    expect_error(d.SetMetadata, 1, "a\nb", "", "", 0, contains="newlines")
    expect_error(d.SetMetadata, 2, "<x", "k", "http://y/", 0, contains="invalid argument: ")


def managed_save():
    sigs.take()
    expect_error(d.ManagedSave, 6,
                 message="Flags 'VIR_DOMAIN_SAVE_RUNNING' and 'VIR_DOMAIN_SAVE_PAUSED' are mutually exclusive")
    expect_error(d.ManagedSave, 8, message="unsupported flags (0x8) in function testDomainManagedSave")
    d.ManagedSave(0)
    eq(sigs.events(), [(TEST_DOM, 5, 4)], "stopped/saved")
    eq(d.HasManagedSaveImage(0), True, "has an image")
    eq(tuple(d.GetState(0)), (5, 5), "shut off, saved")
    eq(list(c.ListDomains(256)), [TEST_DOM], "managed save filter")
    expect_error(d.Undefine, 0, contains="managed save image")
    expect_error(d.ManagedSave, 0, message=NOT_RUNNING)
    d.Create(0)
    eq(sigs.events(), [(TEST_DOM, 2, 2)], "started/restored")
    eq(tuple(d.GetState(0)), (1, 3), "running, restored")
    eq(d.HasManagedSaveImage(0), False, "the image is used up")
    d.ManagedSave(4)
    d.Create(0)
    eq(sigs.events(), [(TEST_DOM, 5, 4), (TEST_DOM, 2, 2), (TEST_DOM, 3, 4)],
       "restored paused (suspended/restored)")
    d.Resume()
    d.ManagedSave(0)
    d.ManagedSaveRemove(0)
    eq(d.HasManagedSaveImage(0), False, "removed")
    d.ManagedSaveRemove(0)
    d.Create(0)
    eq(sigs.events()[-1], (TEST_DOM, 2, 0), "boots afresh")
    t = c.DomainCreateXML(domain_xml("transient"), 0)
    expect_error(iface(b, t, DOMAIN).ManagedSave, 0, contains="Requested operation is not valid: ")
    iface(b, t, DOMAIN).Destroy(0)


def vcpus():
    eq(d.GetVcpus(0), 2, "current")
    eq(d.GetVcpus(4), 2, "maximum")
    expect_error(d.GetVcpus, 8, message="unsupported flags (0x8) in function testDomainGetVcpusFlags")
    expect_error(d.GetVcpus, 3,
                 message="Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive")
    path, w = web()
    eq((w.GetVcpus(0), w.GetVcpus(4)), (1, 4), "web's counts")
    w.SetVcpus(3, 2)
    eq(w.GetVcpus(2), 3, "config count")
    expect_error(w.SetVcpus, 8, 4,
                 message="Flag 'VIR_DOMAIN_AFFECT_CONFIG' is required by flag 'VIR_DOMAIN_VCPU_MAXIMUM'")
    w.SetVcpus(8, 6)
    eq(w.GetVcpus(6), 8, "config maximum")
    expect_error(w.SetVcpus, 9, 2, contains="invalid argument: ")
    expect_error(w.SetVcpus, 2, 1, message=NOT_RUNNING)
    w.Create(0)
    w.SetVcpus(5, 1)
    eq((w.GetVcpus(1), w.GetVcpus(2)), (5, 3), "live and config counts")
    pins = w.GetVcpuPinInfo(0)
    eq(len(pins), 5, "a row per vCPU")
    for row in pins:
        eq(list(row), [True] * 8, "every CPU of test:///default's 8-CPU host allowed")
    eq(len(w.GetVcpuPinInfo(2)), 3, "config rows")
    w.Destroy(0)


def memory_and_guest():
    want = {6: 2097152, 0: 0, 1: 0, 2: 0, 3: 0, 4: 1048576, 5: 2097152, 8: 1048576,
            9: 627319920, 10: 262144, 11: 0, 12: 0, 7: 1048576}
    stats = d.MemoryStats(0)
    eq(dict(stats), want, "memory stats")
    eq([int(k) for k in stats], list(want), "in libvirt's order")
    expect_error(d.MemoryStats, 1, message="unsupported flags (0x1) in function testDomainMemoryStats")
    # As libvirt's test driver hands them out: 20 addresses further on per domain id.
    addr = f"192.168.122.{min(254, 3 + 20 * (int(dp.Get(DOMAIN, 'Id')) - 1))}"
    eq([(str(n), str(m), [tuple(a) for a in addrs]) for n, m, addrs in d.InterfaceAddresses(1, 0)],
       [("testnet0", "aa:bb:cc:dd:ee:ff", [(0, addr, 24)])], "agent addresses")
    eq(list(d.InterfaceAddresses(0, 0)), [], "no leases")
    expect_error(d.InterfaceAddresses, 3, 0,
                 message="argument unsupported: Unknown IP address data source 3")
    eq(d.GetHostname(0), "testhost", "host name from the agent")
    expect_error(d.GetHostname, 1, contains="no hostname found")
    eq(d.FSFreeze([], 0), 1, "frozen")
    expect_error(d.FSFreeze, [], 0, contains="Requested operation is not valid: ")
    eq(d.FSThaw([], 0), 1, "thawed")
    eq(d.FSThaw([], 0), 0, "nothing to thaw")
    path, w = web()
    expect_error(w.MemoryStats, 0, message=NOT_RUNNING)
    expect_error(w.InterfaceAddresses, 1, 0, message=NOT_RUNNING)
    expect_error(w.FSFreeze, [], 0, message=NOT_RUNNING)


def devices():
    disk = ("<disk type='file' device='disk'><source file='/extra.img'/>"
            "<target dev='vdb' bus='virtio'/></disk>")
    sigs.take()
    d.AttachDevice(disk, 0)
    eq(members(sigs.take(), TEST_DOM), [("DeviceAdded", ("vdb",))], "DeviceAdded")
    if "/extra.img" not in d.GetXMLDesc(0) or "/extra.img" in d.GetXMLDesc(2):
        fail("hot-plugged into the running definition only")
    expect_error(d.AttachDevice, disk, 0, contains="invalid argument: ")
    d.UpdateDevice(disk.replace("extra", "other"), 4)
    if "/other.img" not in d.GetXMLDesc(0):
        fail("updated")
    d.DetachDevice(disk, 0)
    eq(members(sigs.take(), TEST_DOM), [("DeviceRemoved", ("vdb",))], "DeviceRemoved")
    d.AttachDevice(disk, 2)
    eq(members(sigs.take(), TEST_DOM), [], "a change to the definition signals nothing")
    if "/extra.img" not in d.GetXMLDesc(2) or "/extra.img" in d.GetXMLDesc(0):
        fail("attached to the persistent definition only")
    d.DetachDevice(disk, 2)
    expect_error(d.AttachDevice, "<disk", 0, contains="invalid argument: ")
    expect_error(d.AttachDevice, disk, 8,
                 message="unsupported flags (0x8) in function testDomainAttachDeviceFlags")
    expect_error(d.UpdateDevice, "<watchdog model='i6300esb'/>", 0, contains="invalid argument: ")


def undefine_and_stale_paths():
    sigs.take()
    path, w = web()
    w.SnapshotCreateXML("<domainsnapshot><name>s</name></domainsnapshot>", 0)
    expect_error(w.Undefine, 0, contains="snapshot")
    expect_error(w.Undefine, 4 | 8, message="Requested operation is not valid: cannot both keep and delete nvram")
    expect_error(w.Undefine, 32, message="unsupported flags (0x20) in function testDomainUndefineFlags")
    sigs.take()
    w.Undefine(2 | 4 | 1)
    eq(sigs.events(), [(path, 1, 0)], "undefined/removed")
    expect_error(w.GetState, 0, message="Domain not found")
    eq(dict(iface(b, path, PROPS).GetAll(DOMAIN)), {}, "GetAll of a domain that is gone")
    expect_error(iface(b, path, PROPS).Get, DOMAIN, "Name", message="Domain not found")
    expect_error(iface(b, TEST + "/domain/xyz", DOMAIN).GetState, 0, message="Invalid UUID")
    d.Undefine(0)
    eq(sigs.events(), [(TEST_DOM, 1, 0)], "the running domain is now transient")
    eq(dp.Get(DOMAIN, "Persistent"), False, "transient")
    expect_error(dp.Set, DOMAIN, "Autostart", True, contains="Requested operation is not valid: ")


def set_memory():
    path, w = web()
    w.SetMemory(131072, 2)
    has(w.GetXMLDesc(2), "<currentMemory unit='KiB'>131072</currentMemory>", "config current memory")
    expect_error(w.SetMemory, 1024, 1, message=NOT_RUNNING)
    expect_error(w.SetMemory, 1024, 8, message="unsupported flags (0x8) in function testDomainSetMemoryFlags")
    expect_error(w.SetMemory, 1024, 1 | 4, contains="mutually exclusive")
    expect_error(w.SetMemory, 1048576, 2, contains="invalid argument: ")
    w.SetMemory(524288, 2 | 4)
    xml = w.GetXMLDesc(2)
    has(xml, "<memory unit='KiB'>524288</memory>", "config maximum")
    has(xml, "<currentMemory unit='KiB'>131072</currentMemory>", "current memory kept below it")
    w.SetMemory(65536, 2 | 4)
    lacks(w.GetXMLDesc(2), "<currentMemory unit='KiB'>131072", "current memory comes down with the maximum")
    w.Create(0)
    w.SetMemory(32768, 1)
    has(w.GetXMLDesc(0), "<currentMemory unit='KiB'>32768</currentMemory>", "live balloon target")
    lacks(w.GetXMLDesc(2), "32768", "the persistent definition untouched")
    w.Destroy(0)
    w.Undefine(0)


def unsupported():
    expect_error(d.Rename, "x", 0,
                 message="this function is not supported by the connection driver: virDomainRename")
    expect_error(d.GetJobInfo,
                 message="this function is not supported by the connection driver: virDomainGetJobInfo")


run([properties, lifecycle_states_and_events, xml_and_state, statistics, metadata,
     managed_save, vcpus, memory_and_guest, set_memory, devices, unsupported,
     undefine_and_stale_paths])
