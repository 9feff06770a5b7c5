#!/usr/bin/python3
"""Cockpit's Machines page through Cockpit's own bridge: Debian's `cockpit-bridge` (the process
that carries every D-Bus call of a Cockpit page, turning its JSON into D-Bus messages and the
replies and signals back into JSON) is run on the test's bus as the system bus, and sent the
calls cockpit-machines 288 makes, each with the explicit signature its code gives (`type`).
What comes back is read with the page's own accessors (`o[0].Name.v.v`, `o[0][0]`, the
signal's `n[0]`/`n[1]`), so a reply that the bridge encodes differently from libvirt-dbus's
fails here as it would break the page."""
import json
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET

from lvtest import *

CONN = QEMU
# libvirt's numbers, as the page names them
VIR_DOMAIN_XML_SECURE, VIR_DOMAIN_XML_INACTIVE = 1, 2
VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_UNDEFINED = 0, 1
VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_SUSPENDED = 2, 3
VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_STOPPED = 4, 5
# the page's table of GetState's first number
STATES = ["no state", "running", "blocked", "paused", "shutdown", "shut off", "crashed",
          "pmsuspended"]


class Bridge:
    """One cockpit-bridge, spoken to as cockpit-ws speaks to it: length-prefixed frames of
    `channel\\npayload`, control messages on channel ""."""

    def __init__(self):
        self.home = tempfile.TemporaryDirectory()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": self.home.name,
            "XDG_RUNTIME_DIR": self.home.name,
            "DBUS_SYSTEM_BUS_ADDRESS": os.environ["BUS_ADDRESS"],
            "DBUS_SESSION_BUS_ADDRESS": os.environ["BUS_ADDRESS"],
        }
        self.p = subprocess.Popen(["cockpit-bridge"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=env)
        self.pending = []
        self.ids = 0
        ch, init = self.recv()
        eq((ch, init.get("command")), ("", "init"), "the bridge's first message")
        self.send("", {"command": "init", "version": 1, "host": "localhost"})
        # the page's client: cockpit.dbus("org.libvirt", {bus: "system"})
        self.send("", {"command": "open", "channel": "4", "payload": "dbus-json3",
                       "bus": "system", "name": NAME})
        msg = self.wait(lambda ch, m: ch == "" and m.get("channel") == "4")
        eq(msg.get("command"), "ready", f"channel open: {msg}")

    def send(self, channel, obj):
        data = (channel + "\n" + json.dumps(obj)).encode()
        self.p.stdin.write(str(len(data)).encode() + b"\n" + data)
        self.p.stdin.flush()

    def recv(self):
        size = b""
        while not size.endswith(b"\n"):
            c = self.p.stdout.read(1)
            if not c:
                fail("cockpit-bridge exited")
            size += c
        data = self.p.stdout.read(int(size))
        ch, _, payload = data.partition(b"\n")
        return ch.decode(), json.loads(payload)

    def wait(self, match):
        """The first message that `match`es; the others are kept for later."""
        for i, (ch, m) in enumerate(self.pending):
            if match(ch, m):
                return self.pending.pop(i)[1]
        while True:
            ch, m = self.recv()
            if match(ch, m):
                return m
            self.pending.append((ch, m))

    def call(self, path, iface_name, method, args, sig):
        """client.call(path, iface, method, args, {type: sig}): the reply's out arguments,
        or the error as the page sees it (name, message)."""
        self.ids += 1
        cid = str(self.ids)
        self.send("4", {"call": [path, iface_name, method, args], "id": cid, "type": sig})
        m = self.wait(lambda ch, m: ch == "4" and m.get("id") == cid)
        if "error" in m:
            raise BridgeError(m["error"][0], m["error"][1][0] if m["error"][1] else "")
        return m["reply"][0]

    def subscribe(self, match):
        self.send("4", {"add-match": match})

    def signals(self):
        """The signals received so far, as the page's handlers get them: (path, interface,
        member, args)."""
        self.call(CONN, PROPS, "Get", [CONNECT, "LibVersion"], "ss")  # a round trip
        out = [tuple(m["signal"]) for ch, m in self.pending if ch == "4" and "signal" in m]
        self.pending = [(ch, m) for ch, m in self.pending if not (ch == "4" and "signal" in m)]
        return out

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


class BridgeError(Exception):
    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


b = Bridge()


def define(name):
    xml = domain_xml(name).replace("type='test'", "type='kvm'").replace(
        "<os><type>hvm</type></os>",
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
        "<disk type='file' device='disk'><source file='/c.img'/><target dev='vda' bus='virtio'/>"
        "</disk><memballoon model='virtio'/></devices>")
    return b.call(CONN, CONNECT, "DomainDefineXML", [xml], "s")[0]


def get_vm(path):
    """The page's GET_VM, step by step, with its accessors."""
    xml = b.call(path, DOMAIN, "GetXMLDesc", [VIR_DOMAIN_XML_SECURE], "u")[0]
    inactive = b.call(path, DOMAIN, "GetXMLDesc",
                      [VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE], "u")[0]
    o = b.call(path, DOMAIN, "GetState", [0], "u")
    state = STATES[o[0][0]]
    o = b.call(path, PROPS, "GetAll", [DOMAIN], "s")
    vm = {"state": state, "name": o[0]["Name"]["v"]["v"],
          "persistent": o[0]["Persistent"]["v"]["v"], "autostart": o[0]["Autostart"]["v"]["v"]}
    ostype = ET.fromstring(inactive).find("os/type")
    caps = b.call(CONN, CONNECT, "GetDomainCapabilities",
                  ["", ostype.get("arch"), ostype.get("machine"), "", 0], "ssssu")[0]
    if ET.fromstring(caps).find("vcpu").get("max") is None:
        fail(f"domain capabilities: {caps}")
    if ET.fromstring(xml).findtext("name") != vm["name"]:
        fail(f"name {vm['name']!r} against {xml}")
    b.call(path, DOMAIN, "ListDomainSnapshots", [0], "u")
    return vm


def page_load():
    on, off = define("bridge-on"), define("bridge-off")
    b.call(on, DOMAIN, "Create", [0], "u")
    o = b.call(CONN, PROPS, "Get", [CONNECT, "LibVersion"], "ss")
    if o[0]["v"] < 6000000:
        fail(f"LibVersion {o}")
    domains = b.call(CONN, CONNECT, "ListDomains", [0], "u")[0]
    for p in (on, off):
        if p not in domains:
            fail(f"{p} not listed: {domains}")
    for method, args, sig in (("ListStoragePools", [0], "u"), ("ListNetworks", [0], "u")):
        eq(b.call(CONN, CONNECT, method, args, sig), [[]], method)
    # The host's own interfaces and devices (virtbus reads them from /sys).
    if CONN + "/nodedev/computer" not in b.call(CONN, CONNECT, "ListNodeDevices", [0], "u")[0]:
        fail("no computer node device")
    b.call(CONN, CONNECT, "ListInterfaces", [3], "u")
    mem = b.call(CONN, CONNECT, "NodeGetMemoryStats", [-1, 0], "iu")[0]
    if not mem.get("total"):
        fail(f"host memory: {mem}")
    vms = {p: get_vm(p) for p in domains}
    eq(vms[on], {"state": "running", "name": "bridge-on", "persistent": True,
                 "autostart": False}, "the running VM")
    eq(vms[off]["state"], "shut off", "the other")
    # the overview page of a running VM
    for source in (0, 2, 1):
        b.call(on, DOMAIN, "InterfaceAddresses", [source, 0], "uu")
    stats = b.call(on, DOMAIN, "GetStats", [45, 0], "uu")[0]
    for k in ("state.state", "balloon.rss", "vcpu.current"):
        if k not in stats:
            fail(f"GetStats(45) lacks {k}: {sorted(stats)}")


def control_with_events():
    """The page's buttons, and the DomainEvent signals its handler dispatches on."""
    b.subscribe({"interface": CONNECT, "member": "DomainEvent"})
    b.subscribe({"interface": DOMAIN})
    b.signals()
    path = b.call(CONN, CONNECT, "DomainLookupByName", ["bridge-off"], "s")[0]

    def events():
        return [(n[0], n[1]) for (_, i, m, n) in b.signals() if m == "DomainEvent"]

    b.call(path, DOMAIN, "Create", [0], "u")
    eq(events(), [(path, VIR_DOMAIN_EVENT_STARTED)], "Run")
    b.call(path, DOMAIN, "Suspend", [], "")
    eq(events(), [(path, VIR_DOMAIN_EVENT_SUSPENDED)], "Pause")
    eq(get_vm(path)["state"], "paused", "paused VM")
    b.call(path, DOMAIN, "Resume", [], "")
    eq(events(), [(path, VIR_DOMAIN_EVENT_RESUMED)], "Resume")
    b.call(path, DOMAIN, "Reboot", [0], "u")
    b.call(path, DOMAIN, "Reset", [0], "u")
    b.call(path, DOMAIN, "InjectNMI", [0], "u")
    b.call(path, DOMAIN, "Shutdown", [0], "u")
    got = events()
    if (path, VIR_DOMAIN_EVENT_STOPPED) not in got:
        fail(f"Shut down: {got}")
    b.call(path, DOMAIN, "Create", [0], "u")
    b.call(path, DOMAIN, "Destroy", [0], "u")
    eq(events(), [(path, VIR_DOMAIN_EVENT_STARTED), (path, VIR_DOMAIN_EVENT_STOPPED)],
       "Run, Force off")
    eq(get_vm(path)["state"], "shut off", "after Force off")


def snapshots_tab():
    path = b.call(CONN, CONNECT, "DomainLookupByName", ["bridge-on"], "s")[0]
    snap = b.call(path, DOMAIN, "SnapshotCreateXML",
                  ["<domainsnapshot><name>s1</name><description>d</description>"
                   "</domainsnapshot>", 0], "su")[0]
    eq(b.call(path, DOMAIN, "ListDomainSnapshots", [0], "u")[0], [snap], "listed")
    eq(b.call(path, DOMAIN, "SnapshotLookupByName", ["s1", 0], "su")[0], snap, "lookup")
    xml = b.call(snap, SNAPSHOT, "GetXMLDesc", [0], "u")[0]
    eq(ET.fromstring(xml).findtext("description"), "d", "description")
    eq(b.call(snap, SNAPSHOT, "IsCurrent", [0], "u")[0], True, "current")
    b.call(snap, SNAPSHOT, "Revert", [0], "u")
    b.call(snap, SNAPSHOT, "Delete", [0], "u")
    eq(b.call(path, DOMAIN, "ListDomainSnapshots", [0], "u")[0], [], "deleted")


def errors_and_delete():
    path = b.call(CONN, CONNECT, "DomainLookupByName", ["bridge-on"], "s")[0]
    try:
        b.call(path, DOMAIN, "Create", [0], "u")
        fail("starting a running domain succeeded")
    except BridgeError as e:
        eq(e.name, ERROR, f"error name ({e.message})")
        if "already running" not in e.message:
            fail(f"error message: {e.message}")
    b.call(path, DOMAIN, "Destroy", [0], "u")
    b.call(path, DOMAIN, "Undefine", [0], "u")
    events = [(n[0], n[1]) for (_, _, m, n) in b.signals() if m == "DomainEvent"]
    if (path, VIR_DOMAIN_EVENT_UNDEFINED) not in events:
        fail(f"Delete: {events}")
    try:
        get_vm(path)
        fail("a deleted VM still answers")
    except BridgeError as e:
        # the page drops a VM whose GET_VM fails with this
        if not e.message.startswith("Domain not found"):
            fail(f"a deleted VM: {e.name}: {e.message}")


run([page_load, control_with_events, snapshots_tab, errors_and_delete])
b.close()
