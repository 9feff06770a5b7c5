"""Shared helpers of the facade tests: clients as libvirt-dbus's users write them.

dbus-python proxies pick argument types from the served introspection, as Cockpit-era scripts
do; GDBus (gi) clients pass explicit signatures. The bus address comes from BUS_ADDRESS; the
reference libvirt-dbus's, when a test compares, from REFERENCE_ADDRESS.
"""
import os
import sys
import time
import traceback

import dbus
import dbus.mainloop.glib
from gi.repository import Gio, GLib

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

NAME = "org.libvirt"
TEST = "/org/libvirt/Test"
QEMU = "/org/libvirt/QEMU"
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"
TEST_DOM = TEST + "/domain/_6695eb01_f6a4_8304_79aa_97f2502e193f"
CONNECT = "org.libvirt.Connect"
DOMAIN = "org.libvirt.Domain"
SNAPSHOT = "org.libvirt.DomainSnapshot"
PROPS = "org.freedesktop.DBus.Properties"
ERROR = "org.libvirt.Error"

U = dbus.UInt32


def bus(address=None):
    return dbus.bus.BusConnection(address or os.environ["BUS_ADDRESS"])


def iface(b, path, name):
    return dbus.Interface(b.get_object(NAME, path), name)


def norm(v):
    """dbus-python values as plain data (variant levels dropped, which GetAll keeps equal)."""
    if isinstance(v, dict):
        return {norm(k): norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, str):
        return str(v)
    return v


def answer(b, path, name, method, args):
    """A call's answer on bus b as comparable data: ("ok", value) or ("error", name, message)."""
    try:
        return ("ok", norm(getattr(iface(b, path, name), method)(*args)))
    except dbus.DBusException as e:
        return ("error", e.get_dbus_name(), e.get_dbus_message())


def fail(msg):
    raise AssertionError(msg)


def eq(got, want, what=""):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


def has(text, part, what=""):
    if part not in text:
        fail(f"{what}: {part!r} not in {text!r}")


def lacks(text, part, what=""):
    if part in text:
        fail(f"{what}: {part!r} unexpectedly in {text!r}")


def error_of(fn, *args):
    """The (name, message) of the error `fn(*args)` raises; fails if it succeeds."""
    try:
        r = fn(*args)
    except dbus.DBusException as e:
        return e.get_dbus_name(), e.get_dbus_message()
    except GLib.Error as e:
        name = Gio.DBusError.get_remote_error(e)
        prefix = f"GDBus.Error:{name}: "
        return name, e.message[len(prefix):] if e.message.startswith(prefix) else e.message
    fail(f"expected an error, got {r!r}")


def expect_error(fn, *args, name=ERROR, message=None, contains=None):
    n, m = error_of(fn, *args)
    eq(n, name, f"error name of {getattr(fn, '__name__', fn)}{args}")
    if message is not None:
        eq(m, message, f"error message of {getattr(fn, '__name__', fn)}{args}")
    if contains is not None and contains not in m:
        fail(f"error message {m!r} lacks {contains!r}")
    return m


def domain_xml(name, uuid=None, extra=""):
    u = f"<uuid>{uuid}</uuid>" if uuid else ""
    return (f"<domain type='test'><name>{name}</name>{u}<memory unit='MiB'>256</memory>"
            f"<vcpu current='1'>2</vcpu><os><type>hvm</type></os>{extra}</domain>")


class Signals:
    """Every signal from org.libvirt, in order, as (path, interface, member, args)."""

    def __init__(self, b):
        self.got = []
        b.add_signal_receiver(self._on, sender_keyword="sender", path_keyword="path",
                              interface_keyword="iface", member_keyword="member",
                              bus_name=NAME)

    def _on(self, *args, sender=None, path=None, iface=None, member=None):
        self.got.append((str(path), str(iface), str(member), args))

    def take(self, settle=0.15):
        """The signals so far: the facade sends a call's signals before its reply, so after
        a call they are here once the main loop has run."""
        ctx = GLib.MainContext.default()
        end = time.monotonic() + settle
        while time.monotonic() < end:
            while ctx.pending():
                ctx.iteration(False)
            time.sleep(0.005)
        while ctx.pending():
            ctx.iteration(False)
        out, self.got = self.got, []
        return out

    def events(self, settle=0.15):
        """The DomainEvent signals as (domain path, event, detail)."""
        return [(str(a[0]), int(a[1]), int(a[2])) for (_, _, m, a) in self.take(settle)
                if m == "DomainEvent"]


def gdbus(address=None):
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    return Gio.DBusConnection.new_for_address_sync(
        address or os.environ["BUS_ADDRESS"], flags, None, None)


def gcall(conn, path, iface_name, method, sig=None, args=None, reply=None):
    """A GDBus call with an explicit signature, as Cockpit makes them; the unpacked reply."""
    params = GLib.Variant(sig, args) if sig else None
    rtype = GLib.VariantType.new(reply) if reply else None
    r = conn.call_sync(NAME, path, iface_name, method, params, rtype,
                       Gio.DBusCallFlags.NONE, 30000, None)
    return r.unpack() if r is not None else None


def run(checks):
    """Run each check; report which failed, and fail the script if any did."""
    failed = []
    for c in checks:
        try:
            c()
            print(f"ok   {c.__name__}")
        except Exception:
            failed.append(c.__name__)
            print(f"FAIL {c.__name__}\n{traceback.format_exc()}")
    if failed:
        print("failed:", ", ".join(failed))
        sys.exit(1)
