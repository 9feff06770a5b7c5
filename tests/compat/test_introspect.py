#!/usr/bin/python3
"""The introspection the facade serves equals libvirt-dbus 1.4.1's: for each of Connect, Domain
and DomainSnapshot, every member with its arguments (names, types, directions), properties
(types, access) and annotations, compared with the interface XML Debian's libvirt-dbus installs
and with what the real libvirt-dbus (REFERENCE_ADDRESS) serves."""
import os
import re
import xml.etree.ElementTree as ET

from lvtest import *

OURS = gdbus()
THEIRS = gdbus(os.environ["REFERENCE_ADDRESS"])
INSTALLED = "/usr/share/dbus-1/interfaces"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "dbus")
SNAP = TEST + "/domainsnapshot/_6695eb01_f6a4_8304_79aa_97f2502e193f_s1"


def introspect(conn, path):
    return conn.call_sync(NAME, path, "org.freedesktop.DBus.Introspectable", "Introspect",
                          None, GLib.VariantType.new("(s)"), Gio.DBusCallFlags.NONE, 30000,
                          None).unpack()[0]


def canon(el):
    """An element as comparable data: its tag, attributes (whitespace in values collapsed),
    annotations as a set, and its other children in order."""
    attrs = tuple(sorted((k, " ".join(v.split())) for k, v in el.attrib.items()))
    notes = frozenset(canon(c) for c in el if c.tag == "annotation")
    kids = tuple(canon(c) for c in el if c.tag != "annotation")
    return (el.tag, attrs, notes, kids)


def interface(xml, name):
    for i in ET.fromstring(xml).iter("interface"):
        if i.get("name") == name:
            return i
    fail(f"no interface {name} in:\n{xml[:2000]}")


def members(i):
    return sorted((c.tag, c.get("name")) for c in i if c.tag != "annotation")


def same(path, name):
    ours = introspect(OURS, path)
    mine = interface(ours, name)
    installed = interface(open(f"{INSTALLED}/{name}.xml").read(), name)
    served = interface(introspect(THEIRS, path), name)
    for what, other in (("the installed XML", installed), ("libvirt-dbus's introspection", served)):
        if members(mine) != members(other):
            fail(f"{name}: members differ from {what}:\n"
                 f"only ours: {sorted(set(members(mine)) - set(members(other)))}\n"
                 f"only theirs: {sorted(set(members(other)) - set(members(mine)))}")
        for a, b_ in zip(sorted(mine, key=lambda e: (e.tag, e.get("name") or "")),
                         sorted(other, key=lambda e: (e.tag, e.get("name") or ""))):
            if canon(a) != canon(b_):
                fail(f"{name}.{a.get('name')} differs from {what}:\n{canon(a)}\n{canon(b_)}")
    # Served verbatim from the shipped file, the single source.
    text = open(f"{SOURCE}/{name}.xml").read()
    verbatim = re.search(r"<interface .*?</interface>", text, re.S).group(0)
    if verbatim not in ours:
        fail(f"{name} is not served verbatim from dbus/{name}.xml")
    for std in ("org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
                "org.freedesktop.DBus.Peer"):
        interface(ours, std)
    return len(members(mine))


def connect_interface():
    n = same(TEST, CONNECT)
    if n < 60:
        fail(f"only {n} members")


def domain_interface():
    if same(TEST_DOM, DOMAIN) < 120:
        fail("too few Domain members")


def snapshot_interface():
    eq(same(SNAP, SNAPSHOT), 6, "DomainSnapshot members")


def tree():
    names = lambda xml: [n.get("name") for n in ET.fromstring(xml).findall("node")]
    eq(names(introspect(OURS, "/")), ["org"], "/")
    # /org/libvirt/LXC is there too when the LXC driver runs (as root), as in libvirt-dbus
    connects = names(introspect(OURS, "/org/libvirt"))
    want = ["QEMU", "Test"] + (["LXC"] if os.geteuid() == 0 else [])
    eq(sorted(connects), sorted(want), "/org/libvirt")
    if not {"domain", "domainsnapshot"} <= set(names(introspect(OURS, TEST))):
        fail("connect children")
    eq(names(introspect(OURS, TEST + "/domain")),
       ["_6695eb01_f6a4_8304_79aa_97f2502e193f"], "domain directory")


run([connect_interface, domain_interface, snapshot_interface, tree])
