#!/usr/bin/python3
"""Storage pools and volumes on /org/libvirt/Test (BUS_ADDRESS) against Debian's libvirt-dbus
over libvirt's test:///default (REFERENCE_ADDRESS): the same calls, in the same order, give
the same answers (values, or error names and messages) and the same StoragePoolEvent and
Refresh signals. Both keep the pools in memory: the temporary directory a pool names stays
empty.

Compared as sets: lists of pools (libvirt's order follows a hash table) and of volumes
(creation order in libvirt, name order in virtbus).

Left out, with the reason: a volume name with '/', which libvirt's test driver takes (it
writes no file) and virtbus refuses on every connect (checked in test_storage_qemu.py).
"""
import functools
import os
import tempfile

from lvtest import *

A = bus()
B = bus(os.environ["REFERENCE_ADDRESS"])
SA, SB = Signals(A), Signals(B)
POOL = "org.libvirt.StoragePool"
VOL = "org.libvirt.StorageVol"
DEFAULT_UUID = "dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566"
DEFAULT = TEST + "/storagepool/_" + DEFAULT_UUID.replace("-", "_")
NEW_UUID = "3e3fce45-4f53-4fa7-bb32-11f34168b82b"
NEW = TEST + "/storagepool/_" + NEW_UUID.replace("-", "_")
DIR = tempfile.mkdtemp(prefix="virtbus-pool-")



# Differences of the check running: all are reported when it ends.
DIFFS = []


def both(path, name, method, *args, key=None):
    a = answer(A, path, name, method, args)
    b_ = answer(B, path, name, method, args)
    if key and a[0] == b_[0] == "ok":
        a, b_ = ("ok", key(a[1])), ("ok", key(b_[1]))
    if a != b_:
        DIFFS.append(f"{path} {method}{args}:\n  virtbus:     {a!r}\n  libvirt-dbus: {b_!r}")
    return a


def check(fn):
    """A check that fails with every difference it met."""
    @functools.wraps(fn)
    def wrapped():
        DIFFS.clear()
        fn()
        if DIFFS:
            fail("\n".join(DIFFS))
    return wrapped


def storage_signals():
    def pick(s):
        return [(p, m, norm(a)) for (p, _, m, a) in s.take()
                if m in ("StoragePoolEvent", "Refresh")]
    return pick(SA), pick(SB)


def same_signals(what):
    a, b_ = storage_signals()
    if a != b_:
        DIFFS.append(f"signals of {what}:\n  virtbus:     {a!r}\n  libvirt-dbus: {b_!r}")
    return a


def pool_xml(name, uuid, path):
    return (f"<pool type='dir'><name>{name}</name><uuid>{uuid}</uuid>"
            f"<target><path>{path}</path></target></pool>")


def vol_xml(name, capacity, allocation=None, fmt=None):
    a = f"<allocation>{allocation}</allocation>" if allocation is not None else ""
    f = f"<target><format type='{fmt}'/></target>" if fmt else ""
    return f"<volume><name>{name}</name><capacity>{capacity}</capacity>{a}{f}</volume>"


@check
def connect_lists_and_lookups():
    for flags in (0, 1, 2, 3, 4, 8, 16, 32, 64, 128, 64 | 2, 128 | 1, 1 << 19, 1 << 20, 1 << 31):
        both(TEST, CONNECT, "ListStoragePools", U(flags), key=sorted)
    for name in ("default-pool", "nope"):
        both(TEST, CONNECT, "StoragePoolLookupByName", name)
    for uuid in (DEFAULT_UUID, DEFAULT_UUID.replace("-", ""), NEW_UUID):
        both(TEST, CONNECT, "StoragePoolLookupByUUID", uuid)
    for key in ("/default-pool/nope", "nope"):
        both(TEST, CONNECT, "StorageVolLookupByKey", key)
        both(TEST, CONNECT, "StorageVolLookupByPath", key)
    for t in ("dir", "logical", "bogus"):
        both(TEST, CONNECT, "FindStoragePoolSources", t, "", U(0))
    both(TEST, CONNECT, "FindStoragePoolSources", "logical", "", U(1))


@check
def default_pool():
    for flags in (0, 1):
        both(DEFAULT, POOL, "GetXMLDesc", U(flags))
        both(DEFAULT, POOL, "ListStorageVolumes", U(flags), key=sorted)
    both(DEFAULT, POOL, "GetInfo")
    for prop in ("Active", "Autostart", "Name", "Persistent", "UUID", "Nope"):
        both(DEFAULT, PROPS, "Get", POOL, prop)
    both(DEFAULT, PROPS, "GetAll", POOL)
    for flags in (1, 2):
        both(DEFAULT, POOL, "Refresh", U(flags))
    both(DEFAULT, POOL, "Refresh", U(0))
    same_signals("Refresh")


@check
def autostart():
    for on in (True, False):
        both(DEFAULT, PROPS, "Set", POOL, "Autostart", dbus.Boolean(on))
        both(DEFAULT, PROPS, "Get", POOL, "Autostart")
        both(TEST, CONNECT, "ListStoragePools", U(16), key=sorted)
    same_signals("Autostart")


@check
def pool_life_cycle():
    xml = pool_xml("p1", NEW_UUID, DIR + "/p1")
    both(TEST, CONNECT, "StoragePoolDefineXML", xml, U(1))
    both(TEST, CONNECT, "StoragePoolDefineXML", xml, U(0))
    both(TEST, CONNECT, "StoragePoolDefineXML", pool_xml("p2", NEW_UUID, DIR + "/p2"), U(0))
    for flags in (0, 1, 2):
        both(TEST, CONNECT, "ListStoragePools", U(flags), key=sorted)
    both(NEW, POOL, "GetInfo")
    both(NEW, POOL, "GetXMLDesc", U(0))
    both(NEW, POOL, "ListStorageVolumes", U(0), key=sorted)
    both(NEW, POOL, "Refresh", U(0))
    both(NEW, POOL, "StorageVolCreateXML", vol_xml("v", 1024), U(0))
    for flags in (1, 0):
        both(NEW, POOL, "Build", U(flags))
    both(NEW, POOL, "Create", U(1))
    both(NEW, POOL, "Create", U(0))
    both(NEW, POOL, "Create", U(0))
    both(NEW, POOL, "Build", U(0))
    both(NEW, POOL, "GetInfo")
    both(NEW, PROPS, "GetAll", POOL)
    both(NEW, POOL, "Undefine")
    both(NEW, POOL, "Delete", U(0))
    same_signals("define, build, start")
    volumes()
    both(NEW, POOL, "Destroy")
    both(NEW, POOL, "Destroy")
    both(NEW, POOL, "ListStorageVolumes", U(0), key=sorted)
    both(NEW, POOL, "StorageVolLookupByName", "raw")
    both(TEST, CONNECT, "StorageVolLookupByPath", DIR + "/p1/raw")
    both(NEW, POOL, "Refresh", U(0))
    both(NEW, POOL, "GetInfo")
    both(NEW, POOL, "Delete", U(1))
    both(NEW, POOL, "Delete", U(0))
    # the volumes stay with the stopped pool, as in libvirt's test driver
    both(NEW, POOL, "Create", U(0))
    both(NEW, POOL, "ListStorageVolumes", U(0), key=sorted)
    both(NEW, POOL, "Destroy")
    both(NEW, POOL, "Undefine")
    both(NEW, POOL, "GetInfo")
    both(NEW, PROPS, "GetAll", POOL)
    both(TEST, CONNECT, "ListStoragePools", U(0), key=sorted)
    same_signals("stop, delete, undefine")
    eq(os.listdir(DIR), [], "nothing written into the pool's directory")


def volumes():
    raw = vol_xml("raw", 10 << 20, 1 << 20)
    both(NEW, POOL, "StorageVolCreateXML", raw, U(1))
    both(NEW, POOL, "StorageVolCreateXML", raw, U(0))
    both(NEW, POOL, "StorageVolCreateXML", raw, U(0))
    both(NEW, POOL, "StorageVolCreateXML", vol_xml("q", 5 << 20, None, "qcow2"), U(0))
    both(NEW, POOL, "StorageVolCreateXML", vol_xml("big", 200 << 30, 200 << 30), U(0))
    both(NEW, POOL, "StorageVolCreateXML", "<volume><name>x</name></volume>", U(0))
    both(NEW, POOL, "GetInfo")
    both(NEW, POOL, "GetXMLDesc", U(0))
    paths = both(NEW, POOL, "ListStorageVolumes", U(0), key=sorted)[1]
    eq(len(paths), 2, "volumes")
    for name in ("raw", "q", "nope"):
        both(NEW, POOL, "StorageVolLookupByName", name)
    key = DIR + "/p1/raw"
    v = both(TEST, CONNECT, "StorageVolLookupByKey", key)[1]
    both(TEST, CONNECT, "StorageVolLookupByPath", key)
    both(TEST, CONNECT, "StorageVolLookupByPath", DIR + "/p1/nope")
    for flags in (0, 1, 2):
        both(v, VOL, "GetXMLDesc", U(flags))
        both(v, VOL, "GetInfo", U(flags))
    for prop in ("Name", "Key", "Path", "Nope"):
        both(v, PROPS, "Get", VOL, prop)
    both(v, PROPS, "GetAll", VOL)
    both(v, VOL, "Resize", dbus.UInt64(20 << 20), U(0))
    both(v, VOL, "Resize", dbus.UInt64(20 << 20), U(8))
    both(v, VOL, "Wipe", U(0), U(0))
    both(NEW, POOL, "StorageVolCreateXMLFrom", vol_xml("copy", 1000), key, U(0))
    both(NEW, POOL, "StorageVolCreateXMLFrom", vol_xml("copy2", 1000), key, U(1))
    both(NEW, POOL, "StorageVolCreateXMLFrom", vol_xml("copy3", 1000), "/nope", U(0))
    copy = TEST + "/storagevol/" + "".join(
        c if c.isalnum() else "_%02x" % ord(c) for c in DIR + "/p1/copy")
    both(copy, VOL, "GetXMLDesc", U(0))
    both(copy, VOL, "GetInfo", U(0))
    both(NEW, POOL, "GetInfo")
    both(copy, VOL, "Delete", U(1))
    both(copy, VOL, "Delete", U(0))
    both(copy, VOL, "GetXMLDesc", U(0))
    both(copy, PROPS, "GetAll", VOL)
    both(NEW, POOL, "GetInfo")
    same_signals("volumes")


@check
def transient_pool():
    xml = pool_xml("t1", NEW_UUID, DIR + "/t1")
    both(TEST, CONNECT, "StoragePoolCreateXML", xml, U(8))
    both(TEST, CONNECT, "StoragePoolCreateXML", xml, U(0))
    both(NEW, PROPS, "GetAll", POOL)
    both(NEW, PROPS, "Set", POOL, "Autostart", dbus.Boolean(True))
    both(NEW, POOL, "Undefine")
    both(TEST, CONNECT, "ListStoragePools", U(8), key=sorted)
    both(NEW, POOL, "Destroy")
    both(NEW, POOL, "GetInfo")
    both(TEST, CONNECT, "ListStoragePools", U(0), key=sorted)
    same_signals("transient pool")


run([connect_lists_and_lookups, default_pool, autostart, pool_life_cycle, transient_pool])
