#!/usr/bin/python3
"""Snapshots through GDBus (gi, explicit signatures): the Domain's snapshot methods and all six
org.libvirt.DomainSnapshot methods, with libvirt's flags and errors."""
import xml.etree.ElementTree as ET

from lvtest import *

g = gdbus()
b = bus()
sigs = Signals(b)


def dom(method, sig=None, args=None, reply=None, path=TEST_DOM):
    return gcall(g, path, DOMAIN, method, sig, args, reply)


def snap(path, method, flags=0, reply=None):
    return gcall(g, path, SNAPSHOT, method, "(u)", (flags,), reply)


def spath(name):
    return TEST + "/domainsnapshot/_6695eb01_f6a4_8304_79aa_97f2502e193f_" + "".join(
        ch if ch.isascii() and ch.isalnum() else "_%02x" % ord(ch) for ch in name)


def create(name, flags=0):
    xml = f"<domainsnapshot><name>{name}</name><description>about {name}</description></domainsnapshot>"
    return dom("SnapshotCreateXML", "(su)", (xml, flags), "(o)")[0]


def tree():
    eq(dom("ListDomainSnapshots", "(u)", (0,), "(ao)"), ([],), "no snapshots at first")
    expect_error(dom, "SnapshotCurrent", "(u)", (0,),
                 message="Domain snapshot not found: the domain does not have a current snapshot")
    a = create("a")
    eq(a, spath("a"), "path of a")
    b_ = create("b one")
    eq(b_, spath("b one"), "escaped name in the path")
    eq(dom("SnapshotCurrent", "(u)", (0,), "(o)"), (b_,), "the newest is current")
    gcall(g, TEST_DOM, DOMAIN, "Suspend")
    c_ = create("c")
    gcall(g, TEST_DOM, DOMAIN, "Resume")
    eq(dom("SnapshotLookupByName", "(su)", ("c", 0), "(o)"), (c_,), "lookup")
    expect_error(dom, "SnapshotLookupByName", "(su)", ("zz", 0),
                 message="Domain snapshot not found: no domain snapshot with matching name 'zz'")
    eq(dom("ListDomainSnapshots", "(u)", (0,), "(ao)"), ([a, b_, c_],), "all")
    eq(dom("ListDomainSnapshots", "(u)", (1,), "(ao)"), ([a],), "roots")
    eq(dom("ListDomainSnapshots", "(u)", (4,), "(ao)"), ([c_],), "leaves")
    eq(dom("ListDomainSnapshots", "(u)", (8,), "(ao)"), ([a, b_],), "no leaves")
    eq(dom("ListDomainSnapshots", "(u)", (16,), "(ao)"), ([],), "no metadata")
    eq(dom("ListDomainSnapshots", "(u)", (2,), "(ao)"), ([a, b_, c_],), "metadata")
    eq(dom("ListDomainSnapshots", "(u)", (64,), "(ao)"), ([a, b_, c_],), "active when taken")
    eq(dom("ListDomainSnapshots", "(u)", (32,), "(ao)"), ([],), "inactive when taken")
    eq(dom("ListDomainSnapshots", "(u)", (256,), "(ao)"), ([a, b_, c_],), "internal")
    eq(dom("ListDomainSnapshots", "(u)", (1024,), "(ao)"), ([a, b_, c_],), "topological")
    expect_error(dom, "ListDomainSnapshots", "(u)", (4 | 8,),
                 message="Flags 'VIR_DOMAIN_SNAPSHOT_LIST_LEAVES' and 'VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES' are mutually exclusive")
    expect_error(dom, "ListDomainSnapshots", "(u)", (1 << 12,),
                 message="unsupported flags (0x1000) in function testDomainListAllSnapshots")

    x = ET.fromstring(snap(c_, "GetXMLDesc", 0, "(s)")[0])
    eq(x.find("name").text, "c", "snapshot XML name")
    eq(x.find("state").text, "paused", "taken while paused")
    eq(x.find("parent/name").text, "b one", "parent in the XML")
    eq(x.find("description").text, "about c", "description")
    if x.find("domain/uuid").text != TEST_UUID:
        fail("the domain definition is in the snapshot")
    snap(c_, "GetXMLDesc", 1, "(s)")
    expect_error(snap, c_, "GetXMLDesc", 2,
                 message="unsupported flags (0x2) in function testDomainSnapshotGetXMLDesc")
    eq(snap(c_, "GetParent", 0, "(o)"), (b_,), "parent")
    expect_error(snap, a, "GetParent", 0,
                 message="Domain snapshot not found: snapshot 'a' does not have a parent")
    eq(snap(c_, "IsCurrent", 0, "(b)"), (True,), "c is current")
    eq(snap(a, "IsCurrent", 0, "(b)"), (False,), "a is not")
    expect_error(snap, a, "IsCurrent", 1,
                 message="unsupported flags (0x1) in function testDomainSnapshotIsCurrent")
    eq(snap(a, "ListChildren", 0, "(ao)"), ([b_],), "children")
    eq(snap(a, "ListChildren", 1, "(ao)"), ([b_, c_],), "descendants")
    eq(snap(a, "ListChildren", 1 | 4, "(ao)"), ([c_],), "descendant leaves")
    expect_error(snap, a, "ListChildren", 1 << 12,
                 message="unsupported flags (0x1000) in function testDomainSnapshotListAllChildren")
    expect_error(dom, "SnapshotCreateXML", "(su)", ("<domainsnapshot/>", 2),
                 message="Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT'")
    expect_error(dom, "SnapshotCreateXML", "(su)", ("<domainsnapshot/>", 1 | 4),
                 message="Flags 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA' are mutually exclusive")
    expect_error(dom, "SnapshotCreateXML", "(su)", ("<domainsnapshot/>", 1 << 10),
                 message="unsupported flags (0x400) in function testDomainSnapshotCreateXML")
    expect_error(dom, "SnapshotCreateXML", "(su)", ("<domainsnapshot><name>a</name></domainsnapshot>", 0),
                 contains="operation failed: ")
    nometa = dom("SnapshotCreateXML", "(su)",
                 ("<domainsnapshot><name>n</name></domainsnapshot>", 4), "(o)")[0]
    eq(nometa, spath("n"), "a snapshot without metadata has a path")
    expect_error(snap, nometa, "IsCurrent", 0,
                 message="Domain snapshot not found: no domain snapshot with matching name 'n'")


def revert_and_delete():
    a, b_, c_ = spath("a"), spath("b one"), spath("c")
    expect_error(snap, a, "Revert", 3,
                 message="Flags 'VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING' and 'VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED' are mutually exclusive")
    expect_error(snap, a, "Revert", 8,
                 message="unsupported flags (0x8) in function testDomainRevertToSnapshot")
    sigs.take()
    snap(c_, "Revert", 0)
    eq(gcall(g, TEST_DOM, DOMAIN, "GetState", "(u)", (0,), "((ii))"), ((3, 7),),
       "paused, from snapshot")
    events = sigs.events()
    eq(events[-2:], [(TEST_DOM, 2, 3), (TEST_DOM, 3, 5)], "started and suspended from snapshot")
    snap(a, "Revert", 1)
    eq(gcall(g, TEST_DOM, DOMAIN, "GetState", "(u)", (0,), "((ii))"), ((1, 4),),
       "running, from snapshot")
    eq(snap(a, "IsCurrent", 0, "(b)"), (True,), "a is current after the revert")
    expect_error(snap, a, "Delete", 1 | 4,
                 message="Flags 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN' and 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY' are mutually exclusive")
    snap(b_, "Delete", 4)
    eq(gcall(g, TEST_DOM, DOMAIN, "ListDomainSnapshots", "(u)", (0,), "(ao)"), ([a, b_],),
       "children only")
    snap(b_, "Delete", 0)
    eq(gcall(g, TEST_DOM, DOMAIN, "ListDomainSnapshots", "(u)", (0,), "(ao)"), ([a],), "alone")
    snap(a, "Delete", 1)
    eq(gcall(g, TEST_DOM, DOMAIN, "ListDomainSnapshots", "(u)", (0,), "(ao)"), ([],), "all gone")
    expect_error(snap, a, "GetXMLDesc", 0,
                 message="Domain snapshot not found: no domain snapshot with matching name 'a'")


run([tree, revert_and_delete])
