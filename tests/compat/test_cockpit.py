#!/usr/bin/python3
"""Cockpit's Machines page, as it loads: its calls through GDBus with its explicit signatures,
on the connect CONNECT. Any failing list call would show "Failed to fetch some resources";
any failing per-domain call would hide the domain."""
import os
import xml.etree.ElementTree as ET

from lvtest import *

CONN = os.environ["CONNECT"]
KIND = os.environ.get("DOMAIN_TYPE", "test")
g = gdbus()


def call(path, iface_name, method, sig, args, reply=None):
    return gcall(g, path, iface_name, method, sig, args, reply)


def page_load():
    # Two domains of the connect's type besides whatever is there: one running, one not.
    for name in ("cockpit-on", "cockpit-off"):
        xml = domain_xml(name).replace("type='test'", f"type='{KIND}'").replace(
            "<os><type>hvm</type></os>",
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
            "<disk type='file' device='disk'><source file='/c.img'/><target dev='vda' bus='virtio'/></disk>"
            "<interface type='network'><mac address='52:54:00:0c:0c:01'/><source network='default'/></interface>"
            "<memballoon model='virtio'/></devices>")
        path = call(CONN, CONNECT, "DomainDefineXML", "(s)", (xml,), "(o)")[0]
        if name == "cockpit-on":
            call(path, DOMAIN, "Create", "(u)", (0,))
    r = g.call_sync(NAME, CONN, PROPS, "Get", GLib.Variant("(ss)", (CONNECT, "LibVersion")),
                    None, Gio.DBusCallFlags.NONE, 30000, None)
    if r.unpack()[0] < 6000000:
        fail("LibVersion")
    (domains,) = call(CONN, CONNECT, "ListDomains", "(u)", (0,), "(ao)")
    if len(domains) < 2:
        fail(f"domains: {domains}")
    # test:///default's pool on the Test connection; none on a QEMU connection's fresh state
    pools = [CONN + "/storagepool/_dfe224cb_28fb_8dd0_c4b2_64eb3f0f4566"] if CONN == TEST else []
    eq(call(CONN, CONNECT, "ListStoragePools", "(u)", (0,), "(ao)"), (pools,), "pools")
    # Host interfaces and node devices: the test connection's, or the real host's.
    (ifaces,) = call(CONN, CONNECT, "ListInterfaces", "(u)", (3,), "(ao)")
    for p in ifaces:
        has(call(p, "org.libvirt.Interface", "GetXMLDesc", "(u)", (0,), "(s)")[0],
            "<interface type=", p)
    # Networks as the page loads them: test:///default's `default`, or none on QEMU here.
    (nets,) = call(CONN, CONNECT, "ListNetworks", "(u)", (0,), "(ao)")
    eq(len(nets), 1 if CONN == TEST else 0, f"networks: {nets}")
    for p in nets:
        has(call(p, "org.libvirt.Network", "GetXMLDesc", "(u)", (0,), "(s)")[0],
            "<name>default</name>", p)
    (devs,) = call(CONN, CONNECT, "ListNodeDevices", "(u)", (0,), "(ao)")
    if CONN + "/nodedev/computer" not in devs:
        fail(f"node devices: {devs}")
    for p in devs:
        has(call(p, "org.libvirt.NodeDevice", "GetXMLDesc", "(u)", (0,), "(s)")[0], "<device>", p)
    (mem,) = call(CONN, CONNECT, "NodeGetMemoryStats", "(iu)", (-1, 0), "(a{st})")
    if not mem.get("total"):
        fail(f"host memory: {mem}")
    for path in domains:
        call(path, DOMAIN, "GetXMLDesc", "(u)", (1,), "(s)")
        (inactive,) = call(path, DOMAIN, "GetXMLDesc", "(u)", (3,), "(s)")
        props = g.call_sync(NAME, path, PROPS, "GetAll", GLib.Variant("(s)", (DOMAIN,)),
                            GLib.VariantType.new("(a{sv})"), Gio.DBusCallFlags.NONE, 30000, None)
        entries = props.get_child_value(0)
        names = {}
        for i in range(entries.n_children()):
            e = entries.get_child_value(i)
            value = e.get_child_value(1).get_variant()
            # Cockpit reads Name.v.v: each value is a variant in a variant.
            eq(value.get_type_string(), "v", "GetAll value nesting")
            names[e.get_child_value(0).get_string()] = value.get_variant().unpack()
        for k in ("Name", "Persistent", "Autostart"):
            if k not in names:
                fail(f"GetAll lacks {k}: {names}")
        ostype = ET.fromstring(inactive).find("os/type")
        arch, machine = ostype.get("arch", ""), ostype.get("machine", "")
        (caps,) = call(CONN, CONNECT, "GetDomainCapabilities", "(ssssu)",
                       ("", arch, machine, "", 0), "(s)")
        dc = ET.fromstring(caps)
        if dc.find("vcpu").get("max") is None or dc.find("os") is None:
            fail(f"domain capabilities: {caps}")
        (state,) = call(path, DOMAIN, "GetState", "(u)", (0,), "((ii))")
        call(path, DOMAIN, "ListDomainSnapshots", "(u)", (0,), "(ao)")
        if state[0] == 1:
            overview(path)


def overview(path):
    for source in (0, 2, 1):
        call(path, DOMAIN, "InterfaceAddresses", "(uu)", (source, 0), "(a(ssa(isu)))")
    (info,) = call(path, DOMAIN, "GetStats", "(uu)", (45, 0), "(a{sv})")
    for i in range(info["vcpu.maximum"]):
        if f"vcpu.{i}.time" not in info and i < info["vcpu.current"]:
            fail(f"vcpu.{i}.time missing: {sorted(info)}")
    for k in ("balloon.rss", "state.state", "block.count"):
        if k not in info:
            fail(f"GetStats(45) lacks {k}: {sorted(info)}")


def events_reach_the_page():
    got = []
    g.signal_subscribe(NAME, CONNECT, "DomainEvent", CONN, None, Gio.DBusSignalFlags.NONE,
                       lambda *a: got.append(a[5].unpack()), None)
    path = call(CONN, CONNECT, "DomainLookupByName", "(s)", ("cockpit-off",), "(o)")[0]
    call(path, DOMAIN, "Create", "(u)", (0,))
    call(path, DOMAIN, "Shutdown", "(u)", (0,))
    ctx = GLib.MainContext.default()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        ctx.iteration(False)
        time.sleep(0.005)
    eq(got, [(path, 2, 0), (path, 6, 0), (path, 5, 0)], "DomainEvent")


run([page_load, events_reach_the_page])
