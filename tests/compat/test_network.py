#!/usr/bin/python3
"""Virtual networks on /org/libvirt/Test (BUS_ADDRESS) against Debian's libvirt-dbus over
libvirt's test:///default (REFERENCE_ADDRESS): the same calls, in the same order, from fresh
daemons, give the same answers (values, or error names and messages) and the same
NetworkEvent signals. Nothing is made on the host: test:///default's networks are records.

Normalized, with the reason:
  - The UUID of a network defined without one is random on both sides: a path or XML naming
    it is compared with the UUID replaced.
  - Refusals worded by virtbus's network code (an Update that matches an existing entry or
    targets a stopped network, starting a running one, undefining a running one): only the
    error name is compared (virtbus refuses a duplicate DHCP host as an invalid argument,
    libvirt as an invalid operation); README lists them.
  - Malformed XML: libvirt quotes libxml2's message, virtbus its parser's.
  - Unknown elements: libvirt ignores them, virtbus refuses them naming their path; checked
    on virtbus alone.
"""
import os
import re

from lvtest import *

A = bus()
B = bus(os.environ["REFERENCE_ADDRESS"])
SA, SB = Signals(A), Signals(B)
NET = "org.libvirt.Network"
DEFAULT_UUID = "dd8fe884-6c02-601e-7551-cca97df1c5df"
DEFAULT = TEST + "/network/_" + DEFAULT_UUID.replace("-", "_")
UUID1 = "0f8e6a52-3b1c-4d2e-9f10-1a2b3c4d5e6f"
N1 = TEST + "/network/_" + UUID1.replace("-", "_")
UUID_RE = re.compile(r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}")



def no_uuids(v):
    return UUID_RE.sub("UUID", repr(v))


def code_only(r):
    """An error without its message."""
    return r if r[0] == "ok" else r[:2]


def both(path, name, method, *args, key=None, loose=False):
    a = answer(A, path, name, method, args)
    b_ = answer(B, path, name, method, args)
    if key and a[0] == b_[0] == "ok":
        a, b_ = ("ok", key(a[1])), ("ok", key(b_[1]))
    if loose:
        a, b_ = code_only(a), code_only(b_)
    eq(a, b_, f"{path} {method}{args} (virtbus, libvirt-dbus)")
    return a


def events():
    def net(s):
        return [(str(a[0]), int(a[1])) for (_, _, m, a) in s.take(0.2) if m == "NetworkEvent"]
    eq(net(SA), net(SB), "NetworkEvent signals")


def net_xml(name, uuid=None, extra=""):
    u = f"<uuid>{uuid}</uuid>" if uuid else ""
    return f"<network><name>{name}</name>{u}{extra}</network>"


# libvirt lists networks in its hash table's order (seeded per process): compared as sets.


def starting_state():
    for f in (0, 1, 2, 3, 4, 8, 16, 32, 48, 64, 1 << 31):
        both(TEST, CONNECT, "ListNetworks", U(f), key=sorted)
    for n in ("default", "nope", ""):
        both(TEST, CONNECT, "NetworkLookupByName", n)
    for u in (DEFAULT_UUID, DEFAULT_UUID.replace("-", ""), UUID1, "nope"):
        both(TEST, CONNECT, "NetworkLookupByUUID", u)
    both(DEFAULT, PROPS, "GetAll", NET)
    for p in ("Active", "Autostart", "BridgeName", "Name", "Persistent", "UUID", "Bogus"):
        both(DEFAULT, PROPS, "Get", NET, p)
    for f in (0, 1, 2):
        both(DEFAULT, NET, "GetXMLDesc", U(f))
    for mac, f in (("", 0), ("aa:bb:cc:dd:ee:ff", 0), ("", 1)):
        both(DEFAULT, NET, "GetDHCPLeases", mac, U(f))
    both(N1, NET, "GetXMLDesc", U(0))
    both(N1, PROPS, "Get", NET, "Name")


def define_start_stop_undefine():
    SA.take(), SB.take()
    xml = net_xml("n1", UUID1, "<bridge name='vbt1'/><ip address='10.77.0.1' prefix='24'>"
                  "<dhcp><range start='10.77.0.10' end='10.77.0.20'/></dhcp></ip>")
    both(TEST, CONNECT, "NetworkDefineXML", xml)
    # again (same name and UUID: a redefinition), then clashes
    both(TEST, CONNECT, "NetworkDefineXML", xml)
    both(TEST, CONNECT, "NetworkDefineXML", net_xml("n1", DEFAULT_UUID))
    both(TEST, CONNECT, "NetworkDefineXML", net_xml("other", UUID1))
    expect_error(iface(A, TEST, CONNECT).NetworkDefineXML,
                 "<network><name>bad</name><nope/></network>",
                 message="invalid argument: unknown element /network/nope")
    both(TEST, CONNECT, "NetworkDefineXML", "not xml", loose=True)
    events()
    for f in (0, 1, 2, 4, 8, 16, 32):
        both(TEST, CONNECT, "ListNetworks", U(f), key=sorted)
    for f in (0, 1):
        both(N1, NET, "GetXMLDesc", U(f))
    both(N1, PROPS, "GetAll", NET)
    for m, args in (("Destroy", ()), ("Create", ()), ("Create", ()), ("GetXMLDesc", (U(0),)),
                    ("Undefine", ())):
        both(N1, NET, m, *args, loose=m in ("Create", "Undefine"))
    both(N1, PROPS, "GetAll", NET)
    events()
    for m in ("Destroy", "Undefine"):
        both(N1, NET, m)
    both(N1, PROPS, "GetAll", NET)
    both(N1, NET, "GetXMLDesc", U(0))
    both(TEST, CONNECT, "ListNetworks", U(0), key=sorted)
    events()


def autostart():
    SA.take(), SB.take()
    for on in (True, False, True):
        for b in (A, B):
            iface(b, DEFAULT, PROPS).Set(NET, "Autostart", on)
        both(DEFAULT, PROPS, "Get", NET, "Autostart")
        both(TEST, CONNECT, "ListNetworks", U(16), key=sorted)
    events()


def transient():
    SA.take(), SB.take()
    xml = net_xml("t1", UUID1, "<ip address='10.78.0.1' prefix='24'/>")
    both(TEST, CONNECT, "NetworkCreateXML", xml)
    both(TEST, CONNECT, "NetworkCreateXML", xml)
    both(N1, PROPS, "GetAll", NET)
    both(TEST, CONNECT, "ListNetworks", U(8), key=sorted)
    both(N1, NET, "GetXMLDesc", U(0))
    both(N1, NET, "Undefine", loose=True)
    for on in (True, False):
        for b in (A, B):
            try:
                iface(b, N1, PROPS).Set(NET, "Autostart", on)
            except dbus.DBusException:
                pass
        both(N1, PROPS, "Get", NET, "Autostart")
    both(N1, NET, "Destroy")
    both(N1, PROPS, "GetAll", NET)
    both(TEST, CONNECT, "ListNetworks", U(0), key=sorted)
    events()
    # without a UUID: random on both sides
    both(TEST, CONNECT, "NetworkDefineXML", net_xml("anon"), key=no_uuids)
    both(TEST, CONNECT, "NetworkLookupByName", "anon", key=no_uuids)
    p = iface(A, TEST, CONNECT).NetworkLookupByName("anon")
    q = iface(B, TEST, CONNECT).NetworkLookupByName("anon")
    eq(no_uuids(answer(A, p, NET, "GetXMLDesc", (U(0),))),
       no_uuids(answer(B, q, NET, "GetXMLDesc", (U(0),))), "anon's XML")
    for path in (p, q):
        iface(A if path == p else B, path, NET).Undefine()
    SA.take(), SB.take()


def update():
    host = "<host mac='52:54:00:00:00:01' name='h1' ip='192.168.122.5'/>"
    dns = "<host ip='192.168.122.6'><hostname>h2</hostname></host>"
    # The first change touches both definitions: libvirt's test driver shares one definition
    # between the running network and its configuration until the configuration is changed,
    # virtbus keeps them apart from the start (as libvirt's network driver does).
    h1b = host.replace("h1", "h1b")
    for cmd, sect, parent, xml, f in (
            (3, 4, -1, host, 3),      # add-last ip-dhcp-host, live and config
            (3, 4, -1, host, 1),      # again, live: a duplicate
            (1, 4, -1, h1b, 3),       # modify
            (2, 4, -1, h1b, 2),       # delete, config only
            (3, 4, -1, host, 0),      # current: live, a duplicate there
            (3, 10, -1, dns, 3),      # dns-host
            (4, 4, 0, host, 2),
            (3, 4, 5, host, 2),       # no such <ip>
            (9, 4, -1, host, 0),      # bad command
            (3, 99, -1, host, 0),     # bad section
            (3, 4, -1, host, 4),      # bad flags
            (3, 4, -1, "<host/>", 2)):
        both(DEFAULT, NET, "Update", U(cmd), U(sect), parent, xml, U(f), loose=True)
        for g in (0, 1):
            both(DEFAULT, NET, "GetXMLDesc", U(g))
    events()


def missing_network():
    gone = TEST + "/network/_00000000_0000_0000_0000_000000000001"
    for m, args in (("Create", ()), ("Destroy", ()), ("Undefine", ()), ("GetXMLDesc", (U(0),)),
                    ("GetDHCPLeases", ("", U(0))),
                    ("Update", (U(3), U(4), -1, "<host/>", U(0)))):
        both(gone, NET, m, *args)
    both(gone, PROPS, "Get", NET, "Name")
    both(gone, PROPS, "GetAll", NET)


def stop_default():
    SA.take(), SB.take()
    both(DEFAULT, NET, "Destroy")
    both(DEFAULT, PROPS, "GetAll", NET)
    both(DEFAULT, NET, "Update", U(3), U(4), -1,
         "<host mac='52:54:00:00:00:09' ip='192.168.122.9'/>", U(1), loose=True)
    both(DEFAULT, NET, "GetXMLDesc", U(0))
    both(DEFAULT, NET, "Undefine")
    both(TEST, CONNECT, "ListNetworks", U(0), key=sorted)
    events()


run([starting_state, define_start_stop_undefine, autostart, transient, update,
     missing_network, stop_default])
