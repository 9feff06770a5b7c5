#!/usr/bin/python3
"""The same calls to virtbus's /org/libvirt/Test (BUS_ADDRESS) and to Debian's libvirt-dbus over
libvirt's test:///default (REFERENCE_ADDRESS), in the same order, from fresh daemons: the
answers (values, or error names and messages) and the DomainEvent signals must agree.

Normalized or left out, with the reason:
  - Host figures (NodeGet*, GetSysinfo, GetCPUModelNames' list):
    virtbus reports the real host; libvirt's test driver a fixed fake one.
  - Networks: test:///default has some; virtbus manages none. (Interfaces and node
    devices are compared in test_hostdev.py, storage pools and volumes in test_storage.py.)
  - XML of newly defined domains: libvirt fills in defaults (arch, clock, on_*), virtbus keeps
    what was given; only paths and events are compared for those.
  - Shutdown: virtbus reports shutdown/finished before stopped/shutdown, as QEMU guests do;
    libvirt's test driver only the second.
  - Reset: virtbus's test driver reports the reboot (Domain.Reboot); libvirt's nothing.
  - Lease and ARP addresses: libvirt's test driver invents them; virtbus runs no network and
    the host's ARP cache has no test guest, so both are empty.
  - FS freeze: libvirt's test guest has two filesystems, virtbus's one.
  - Hot-plug: virtbus's test driver simulates it; libvirt's has none.
  - Starting after a managed save: virtbus restores from the image (as QEMU); libvirt's test
    driver boots and keeps the image.
  - Flags: virtbus takes QEMU's shutdown and reboot modes (ACPI, agent) on both connects, where
    libvirt's test driver takes no shutdown mode and reboot's INITCTL, SIGNAL and PARAVIRT too; listing snapshots that are both
    leaves and not (an error, as the native API has it; libvirt lists none).
  - Order of snapshot lists: libvirt's follows a hash table; they are compared as sets (the
    topological order, which has a meaning, as is).
  - A call on a deleted snapshot's path: libvirt-dbus answers "unknown error" (it loses
    libvirt's error); virtbus says which snapshot is not found.
  - An empty metadata element removes it in virtbus; libvirt-dbus, which cannot pass NULL,
    fails to parse it, leaving no way to remove one.
"""
import os

from lvtest import *

A = bus()
B = bus(os.environ["REFERENCE_ADDRESS"])
SA, SB = Signals(A), Signals(B)



def both(path, name, method, *args, strip=None):
    a = answer(A, path, name, method, args)
    b_ = answer(B, path, name, method, args)
    if strip and a[0] == b_[0] == "ok":
        a, b_ = ("ok", strip(a[1])), ("ok", strip(b_[1]))
    eq(a, b_, f"{method}{args} (virtbus, libvirt-dbus)")
    return a


def events():
    eq(SA.events(0.2), SB.events(0.2), "DomainEvent signals")




D = TEST_DOM


def starting_state():
    for f in [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
              1 << 16]:
        both(TEST, CONNECT, "ListDomains", f)
    for n in ("test", "nope"):
        both(TEST, CONNECT, "DomainLookupByName", n)
    for i in (1, 2, -1):
        both(TEST, CONNECT, "DomainLookupByID", i)
    for u in (TEST_UUID, TEST_UUID.replace("-", ""), "nope", TEST_UUID[:-1] + "0"):
        both(TEST, CONNECT, "DomainLookupByUUID", u)
    both(TEST, PROPS, "GetAll", CONNECT)
    for p in ("Encrypted", "Hostname", "LibVersion", "Secure", "Version", "Bogus"):
        both(TEST, PROPS, "Get", CONNECT, p)
    both(D, PROPS, "GetAll", DOMAIN)
    for p in ("Active", "Autostart", "Id", "Name", "OSType", "Persistent", "SchedulerType",
              "Updated", "UUID", "Bogus"):
        both(D, PROPS, "Get", DOMAIN, p)
    for f in (0, 1, 2, 3, 4, 8, 16):
        both(D, DOMAIN, "GetXMLDesc", f)
    for f in (0, 1):
        both(D, DOMAIN, "GetState", f)
    for f in (0, 1, 2, 4, 5, 6, 8):
        both(D, DOMAIN, "GetVcpus", f)
    for f in (0, 1, 2):
        both(D, DOMAIN, "GetVcpuPinInfo", f)
    both(D, DOMAIN, "HasManagedSaveImage", 0)
    both(D, DOMAIN, "ListDomainSnapshots", 0)
    both(D, DOMAIN, "SnapshotCurrent", 0)
    both(D, DOMAIN, "SnapshotLookupByName", "x", 0)
    both(D, DOMAIN, "MemoryStats", 0)
    both(D, DOMAIN, "MemoryStats", 1)
    both(D, DOMAIN, "InterfaceAddresses", 1, 0)
    both(D, DOMAIN, "InterfaceAddresses", 3, 0)
    both(D, DOMAIN, "GetStats", 1, 0)
    both(D, DOMAIN, "GetHostname", 0)
    both(TEST, CONNECT, "GetAllDomainStats", 1, 0)
    both(TEST, CONNECT, "GetCPUModelNames", "bogus", 0)
    both(TEST, CONNECT, "NetworkLookupByName", "nope")
    both(TEST, CONNECT, "StoragePoolLookupByName", "nope")
    both(TEST, CONNECT, "StorageVolLookupByPath", "/nope")


def metadata():
    for args in ((0, "", 0), (1, "", 0), (2, "", 0), (1, "http://x/", 0), (9, "", 0),
                 (1, "", 3), (1, "", 4), (2, "http://app/", 0)):
        both(D, DOMAIN, "GetMetadata", *args)
    for args in ((1, "A title", "", "", 0), (0, "A description", "", "", 0),
                 (2, '<foo a="1">bar<b/></foo>', "app", "http://app/", 0),
                 (1, "x", "key", "", 0), (2, "<x/>", "", "http://y/", 0), (1, "t", "", "", 8),
                 (1, "Configured", "", "", 2)):
        both(D, DOMAIN, "SetMetadata", *args)
    for args in ((0, "", 0), (1, "", 0), (1, "", 1), (1, "", 2), (2, "http://app/", 0)):
        both(D, DOMAIN, "GetMetadata", *args)
    for f in (0, 2):
        both(D, DOMAIN, "GetXMLDesc", f)


def lifecycle():
    SA.take(), SB.take()
    for m, args in (("Suspend", ()), ("GetState", (0,)), ("Suspend", ()), ("Resume", ()),
                    ("GetState", (0,)), ("Resume", ()), ("Destroy", (0,)), ("GetState", (0,)),
                    ("Destroy", (0,)), ("Create", (0,)), ("GetState", (0,)), ("Create", (0,)),
                    ("Create", (2,)), ("GetXMLDesc", (0,)), ("InjectNMI", (0,)),
                    ("Reset", (1,)), ("Reboot", (32,)), ("Shutdown", (32,))):
        both(D, DOMAIN, m, *args)
    events()
    both(D, PROPS, "GetAll", DOMAIN)
    both(TEST, CONNECT, "GetAllDomainStats", 1, 0)
    both(D, DOMAIN, "ManagedSave", 6)
    both(D, DOMAIN, "ManagedSave", 0)
    events()
    for m, args in (("HasManagedSaveImage", (0,)), ("GetState", (0,)),
                    ("ManagedSaveRemove", (0,)), ("HasManagedSaveImage", (0,))):
        both(D, DOMAIN, m, *args)
    both(TEST, CONNECT, "ListDomains", 256)
    both(D, DOMAIN, "Create", 0)
    events()
    iface(A, D, PROPS).Set(DOMAIN, "Autostart", True)
    iface(B, D, PROPS).Set(DOMAIN, "Autostart", True)
    both(D, PROPS, "Get", DOMAIN, "Autostart")
    both(TEST, CONNECT, "ListDomains", 1024)


def define_create_undefine():
    SA.take(), SB.take()
    uuid = "0b5e4c1f-1d1e-4f7a-9f5e-1d2c3b4a5968"
    xml = domain_xml("d1", uuid)
    both(TEST, CONNECT, "DomainDefineXML", xml)
    both(TEST, CONNECT, "DomainDefineXML", xml)
    events()
    path = TEST + "/domain/_" + uuid.replace("-", "_")
    both(path, DOMAIN, "GetXMLDesc", 2)
    for m, args in (("GetState", (0,)), ("Create", (0,)), ("GetState", (0,)),
                    ("Destroy", (0,)), ("Undefine", (0,)), ("GetState", (0,))):
        both(path, DOMAIN, m, *args)
    events()
    t = both(TEST, CONNECT, "DomainCreateXML", domain_xml("t1", uuid), 0)
    both(TEST, CONNECT, "ListDomains", 8)
    both(t[1], DOMAIN, "Destroy", 0)
    both(t[1], DOMAIN, "GetState", 0)
    events()
    both(TEST, CONNECT, "ListDomains", 0)


def snapshots():
    SA.take(), SB.take()
    s1 = both(D, DOMAIN, "SnapshotCreateXML", "<domainsnapshot><name>s 1</name></domainsnapshot>", 0)
    s2 = both(D, DOMAIN, "SnapshotCreateXML", "<domainsnapshot><name>s2</name></domainsnapshot>", 0)
    s1, s2 = s1[1], s2[1]
    for f in (0, 1, 4, 8, 1024, 1 << 12):
        both(D, DOMAIN, "ListDomainSnapshots", f, strip=None if f == 1024 else sorted)
    both(D, DOMAIN, "SnapshotCurrent", 0)
    both(D, DOMAIN, "SnapshotLookupByName", "s 1", 0)
    for path in (s1, s2):
        for m, f in (("IsCurrent", 0), ("GetParent", 0), ("ListChildren", 0), ("ListChildren", 1),
                     ("IsCurrent", 1)):
            both(path, SNAPSHOT, m, f, strip=sorted if m == "ListChildren" else None)
    both(s1, SNAPSHOT, "Revert", 3)
    both(s1, SNAPSHOT, "Delete", 5)
    both(s2, SNAPSHOT, "Delete", 0)
    both(D, DOMAIN, "ListDomainSnapshots", 0, strip=sorted)
    both(D, DOMAIN, "SnapshotCurrent", 0)
    both(s1, SNAPSHOT, "Delete", 1)
    both(D, DOMAIN, "ListDomainSnapshots", 0, strip=sorted)
    events()


def bus_level():
    def raw(b, member, sig, args):
        try:
            return ("ok", b.call_blocking(NAME, TEST, CONNECT, member, sig, args))
        except dbus.DBusException as e:
            return (e.get_dbus_name(), e.get_dbus_message())
    for member, sig, args in (("ListDomains", "s", ("x",)), ("Bogus", "", ())):
        eq(raw(A, member, sig, args), raw(B, member, sig, args), f"{member}({sig})")


run([starting_state, metadata, lifecycle, define_create_undefine, snapshots, bus_level])
