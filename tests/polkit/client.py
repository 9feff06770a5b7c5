#!/usr/bin/python3
"""A GDBus client of virtbusd for the polkit tests, run as another user.

  client.py burst CALLS...     make every call at once on one connection; print one JSON line
                               {"counts": {result: n}, "results": [result per call]}
                               where result is "ok" or the D-Bus error name.
                               A call is "PATH METHOD ARGS_JSON [interactive]" (one argument);
                               ARGS_JSON is a list of GVariant text forms with a signature.
  client.py retry CALL         make the call, print its result, then read a line from stdin and
                               repeat the call on the same connection every 50 ms until it
                               succeeds (at most 10 s); print the result and the time taken.
  client.py own NAME           try to own NAME on the bus; print "ok" or the error name.

The bus address comes from DBUS_SYSTEM_BUS_ADDRESS; the destination is org.virtbus1, or
CLIENT_DEST when set (org.libvirt for the libvirt facade).
"""
import json
import os
import sys
import time

from gi.repository import Gio, GLib

DEST = os.environ.get("CLIENT_DEST", "org.virtbus1")


def connect():
    addr = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    return Gio.DBusConnection.new_for_address_sync(addr, flags, None, None)


def parse(call):
    parts = call.split(" ", 3)
    path, method, sig, args = parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else "()"
    interactive = args.endswith(" interactive")
    if interactive:
        args = args[: -len(" interactive")]
    iface, member = method.rsplit(".", 1)
    params = GLib.Variant.parse(GLib.VariantType.new(sig), args, None, None) if sig != "()" else None
    flags = (Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION if interactive
             else Gio.DBusCallFlags.NONE)
    return path, iface, member, params, flags


def outcome(conn, res):
    try:
        conn.call_finish(res)
        return "ok"
    except GLib.Error as e:
        return Gio.DBusError.get_remote_error(e) or e.message


def burst(calls):
    conn = connect()
    loop = GLib.MainLoop()
    results = [None] * len(calls)
    pending = [len(calls)]

    def done(c, res, i):
        results[i] = outcome(c, res)
        pending[0] -= 1
        if pending[0] == 0:
            loop.quit()

    for i, call in enumerate(calls):
        path, iface, member, params, flags = parse(call)
        conn.call(DEST, path, iface, member, params, None, flags, 60000, None, done, i)
    if calls:
        loop.run()
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    print(json.dumps({"counts": counts, "results": results}), flush=True)


def call_sync(conn, call):
    path, iface, member, params, flags = parse(call)
    try:
        conn.call_sync(DEST, path, iface, member, params, None, flags, 60000, None)
        return "ok"
    except GLib.Error as e:
        return Gio.DBusError.get_remote_error(e) or e.message


def retry(call):
    conn = connect()
    print(call_sync(conn, call), flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    result = call_sync(conn, call)
    while result != "ok" and time.monotonic() - start < 10:
        time.sleep(0.05)
        result = call_sync(conn, call)
    print(json.dumps({"result": result, "seconds": time.monotonic() - start}), flush=True)


def own(name):
    conn = connect()
    try:
        r = conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "RequestName",
                           GLib.Variant("(su)", (name, 4)), None, Gio.DBusCallFlags.NONE,
                           5000, None)
        print("ok" if r.unpack()[0] in (1, 4) else "not-owner:%d" % r.unpack()[0])
    except GLib.Error as e:
        print(Gio.DBusError.get_remote_error(e) or e.message)


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "burst":
        burst(rest)
    elif cmd == "retry":
        retry(rest[0])
    elif cmd == "own":
        own(rest[0])
    else:
        sys.exit("unknown command " + cmd)
