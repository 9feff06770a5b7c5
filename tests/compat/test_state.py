#!/usr/bin/python3
"""/org/libvirt/Test before and after a daemon restart: PHASE=change changes everything it can,
PHASE=fresh checks it is test:///default again. /org/libvirt/QEMU shows no test domain."""
import os

from lvtest import *

b = bus()
c = iface(b, TEST, CONNECT)
d = iface(b, TEST_DOM, DOMAIN)
POOL = TEST + "/storagepool/_dfe224cb_28fb_8dd0_c4b2_64eb3f0f4566"


def fresh():
    eq(list(c.ListDomains(0)), [TEST_DOM], "one domain")
    props = dict(iface(b, TEST_DOM, PROPS).GetAll(DOMAIN))
    props["SchedulerType"] = tuple(props["SchedulerType"])
    eq(props,
       {"Active": True, "Autostart": False, "Id": 1, "Name": "test", "OSType": "linux",
        "Persistent": True, "SchedulerType": ("fair", 1), "Updated": False, "UUID": TEST_UUID},
       "its properties")
    eq(tuple(d.GetState(0)), (1, 0), "running, for no recorded reason")
    eq(list(d.ListDomainSnapshots(0)), [], "no snapshots")
    eq(d.HasManagedSaveImage(0), False, "no managed save image")
    eq(list(iface(b, QEMU, CONNECT).ListDomains(0)), [], "no qemu or kvm domains")
    expect_error(iface(b, QEMU, CONNECT).DomainLookupByName, "native",
                 message="Domain not found: no domain with matching name 'native'")
    eq(list(c.ListStoragePools(0)), [POOL], "default-pool alone")
    eq(list(iface(b, POOL, "org.libvirt.StoragePool").ListStorageVolumes(0)), [], "no volumes")
    eq(tuple(iface(b, POOL, "org.libvirt.StoragePool").GetInfo()),
       (2, 100 << 30, 0, 100 << 30), "running, empty")


def change():
    fresh()
    sigs = Signals(b)
    native = dbus.Interface(b.get_object("org.virtbus1", "/org/virtbus1"), "org.virtbus1.Manager")
    path = native.DefineDomain(domain_xml("native2"), dbus.Dictionary({}, signature="sv"))
    dbus.Interface(b.get_object("org.virtbus1", path), "org.virtbus1.Domain").Start(
        dbus.Dictionary({}, signature="sv"))
    eq([e for e in sigs.events() if e[0].startswith(QEMU) or e[0].startswith(TEST)], [],
       "no libvirt signal for a native test domain")
    d.SnapshotCreateXML("<domainsnapshot><name>s</name></domainsnapshot>", 0)
    d.SetMetadata(1, "changed", "", "", 3 & 2)
    iface(b, TEST_DOM, PROPS).Set(DOMAIN, "Autostart", True)
    d.Destroy(0)
    c.DomainDefineXML(domain_xml("extra"))
    eq(len(c.ListDomains(0)), 2, "two domains now")
    pool = iface(b, POOL, "org.libvirt.StoragePool")
    pool.StorageVolCreateXML("<volume><name>v</name><capacity>1024</capacity></volume>", 0)
    c.StoragePoolDefineXML("<pool type='dir'><name>p</name><target><path>/nowhere/p</path>"
                           "</target></pool>", 0)
    eq(len(c.ListStoragePools(0)), 2, "two pools now")
    eq(os.path.exists("/default-pool") or os.path.exists("/nowhere"), False,
       "nothing on the host's disk")


run([fresh] if os.environ["PHASE"] == "fresh" else [change])
