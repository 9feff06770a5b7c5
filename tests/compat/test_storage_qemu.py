#!/usr/bin/python3
"""Storage on /org/libvirt/QEMU (BUS_ADDRESS): a dir pool in a directory of the daemon's
state (STATE_DIR, where pools may be) driven through libvirt-dbus's interfaces, the files
checked on disk and with `qemu-img info`; the StoragePoolEvent and Refresh signals; and bad
input (a volume name with '/', a pool outside the allowed directories) refused with typed
errors, nothing created.
"""
import json
import os
import subprocess

from lvtest import *

A = bus()
SIG = Signals(A)
c = iface(A, QEMU, CONNECT)
POOL = "org.libvirt.StoragePool"
VOL = "org.libvirt.StorageVol"
UUID = "0b8c1b5e-8f44-4a0c-9d47-5d2f2c1f6a11"
PATH = QEMU + "/storagepool/_" + UUID.replace("-", "_")
DIR = os.path.join(os.environ["STATE_DIR"], "images", "facade-pool")


def pool_events():
    return [(str(a[0]), int(a[1]), int(a[2])) if m == "StoragePoolEvent" else (p, m)
            for (p, _, m, a) in SIG.take() if m in ("StoragePoolEvent", "Refresh")]


def img_info(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def vol_path(key):
    return QEMU + "/storagevol/" + "".join(c if c.isalnum() else "_%02x" % ord(c) for c in key)


def pool_life_cycle_and_volumes():
    xml = (f"<pool type='dir'><name>facade</name><uuid>{UUID}</uuid>"
           f"<target><path>{DIR}</path></target></pool>")
    eq(str(c.StoragePoolDefineXML(xml, U(0))), PATH, "defined pool's path")
    p = iface(A, PATH, POOL)
    p.Build(U(0))
    eq(os.path.isdir(DIR), True, "built directory")
    p.Create(U(0))
    eq(pool_events(), [(PATH, 0, 0), (PATH, 4, 0), (PATH, 2, 0)], "define, build, start")
    eq(str(c.StoragePoolLookupByName("facade")), PATH, "lookup by name")
    eq(str(c.StoragePoolLookupByUUID(UUID)), PATH, "lookup by UUID")
    if PATH not in [str(x) for x in c.ListStoragePools(U(2))]:
        fail("active pool not listed")
    props = iface(A, PATH, PROPS).GetAll(POOL)
    eq((bool(props["Active"]), bool(props["Persistent"]), str(props["Name"])),
       (True, True, "facade"), "pool properties")
    state, cap, alloc, avail = p.GetInfo()
    eq(int(state), 2, "running")
    if not (cap > 0 and avail <= cap):
        fail(f"sizes {cap} {alloc} {avail}")
    has(p.GetXMLDesc(U(0)), f"<path>{DIR}</path>", "pool XML")

    raw = p.StorageVolCreateXML(
        "<volume><name>a.raw</name><capacity unit='MiB'>8</capacity></volume>", U(0))
    key = os.path.join(DIR, "a.raw")
    eq(str(raw), vol_path(key), "volume path is its escaped key")
    eq(os.path.getsize(key), 8 << 20, "raw file size")
    eq(str(c.StorageVolLookupByKey(key)), str(raw), "lookup by key")
    eq(str(c.StorageVolLookupByPath(key)), str(raw), "lookup by path")
    eq(str(p.StorageVolLookupByName("a.raw")), str(raw), "lookup by name")
    v = iface(A, raw, VOL)
    eq(tuple(int(x) for x in v.GetInfo(U(0)))[:2], (0, 8 << 20), "type and capacity")
    has(v.GetXMLDesc(U(0)), "<format type='raw'/>", "volume XML")
    vp = iface(A, raw, PROPS).GetAll(VOL)
    eq((str(vp["Name"]), str(vp["Key"]), str(vp["Path"])), ("a.raw", key, key), "vol props")
    with open(key, "r+b") as f:
        f.write(b"\xff" * 4096)
    v.Wipe(U(0), U(0))
    with open(key, "rb") as f:
        eq(f.read(4096), b"\0" * 4096, "wiped")
    v.Resize(dbus.UInt64(16 << 20), U(0))
    eq(os.path.getsize(key), 16 << 20, "resized")
    expect_error(v.Resize, dbus.UInt64(1 << 20), U(0), contains="shrink")
    expect_error(v.Resize, dbus.UInt64(1 << 20), U(64),
                 message="unsupported flags (0x40) in function storageVolResize")
    q = p.StorageVolCreateXML(
        "<volume><name>b.qcow2</name><capacity unit='MiB'>64</capacity>"
        "<target><format type='qcow2'/></target></volume>", U(0))
    qk = os.path.join(DIR, "b.qcow2")
    eq((img_info(qk)["format"], img_info(qk)["virtual-size"]), ("qcow2", 64 << 20), "qcow2")
    clone = p.StorageVolCreateXMLFrom(
        "<volume><name>c.qcow2</name><target><format type='qcow2'/></target></volume>",
        key, U(0))
    ck = os.path.join(DIR, "c.qcow2")
    eq(str(clone), vol_path(ck), "clone path")
    eq((img_info(ck)["format"], img_info(ck)["virtual-size"]), ("qcow2", 16 << 20), "clone")
    eq(sorted(str(x) for x in p.ListStorageVolumes(U(0))),
       sorted([str(raw), str(q), str(clone)]), "volumes")
    for x in (raw, q, clone):
        iface(A, x, VOL).Delete(U(0))
    eq(sorted(os.listdir(DIR)), [], "volumes deleted")
    expect_error(v.GetXMLDesc, U(0), contains="Storage volume not found: ")
    p.Refresh(U(0))
    p.Destroy()
    eq(pool_events(), [(PATH, "Refresh"), (PATH, 3, 0)], "refresh, stop")
    expect_error(p.ListStorageVolumes, U(0),
                 message="Requested operation is not valid: storage pool 'facade' is not active")
    p.Delete(U(0))
    eq(os.path.exists(DIR), False, "pool directory deleted")
    p.Undefine()
    eq(pool_events(), [(PATH, 5, 0), (PATH, 1, 0)], "delete, undefine")
    expect_error(p.GetInfo, message=f"Storage pool not found: no storage pool with matching "
                                    f"uuid '{UUID}'")


def bad_input():
    before = [str(x) for x in c.ListStoragePools(U(0))]
    outside = "/var/tmp/virtbus-facade-outside"
    xml = f"<pool type='dir'><name>out</name><target><path>{outside}</path></target></pool>"
    for m in (c.StoragePoolDefineXML, c.StoragePoolCreateXML):
        expect_error(m, xml, U(0), contains=f"pool path '{outside}' is outside the directories")
    eq(os.path.exists(outside), False, "nothing created outside")
    expect_error(c.StoragePoolDefineXML, xml, U(2),
                 message="unsupported flags (0x2) in function storagePoolDefineXML")
    eq([str(x) for x in c.ListStoragePools(U(0))], before, "no pool defined")
    p = iface(A, c.StoragePoolCreateXML(
        f"<pool type='dir'><name>bad</name><target><path>{DIR}</path></target></pool>", U(1)),
        POOL)
    expect_error(p.StorageVolCreateXML,
                 "<volume><name>a/b</name><capacity>1024</capacity></volume>", U(0),
                 contains="/volume/name")
    expect_error(p.StorageVolCreateXML,
                 "<volume><name>x</name><capacity>1</capacity><bogus/></volume>", U(0),
                 contains="bogus")
    eq(os.listdir(DIR), [], "no volume created")
    eq([x for x in p.ListStorageVolumes(U(0))], [], "no volume listed")
    p.Destroy()
    expect_error(c.StoragePoolLookupByName, "bad",
                 message="Storage pool not found: no storage pool with matching name 'bad'")
    expect_error(c.FindStoragePoolSources, "dir", "", U(0),
                 message="this function is not supported by the connection driver: "
                         "pool type 'dir' does not support source discovery")
    SIG.take()


run([pool_life_cycle_and_volumes, bad_input])
