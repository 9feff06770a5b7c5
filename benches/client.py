#!/usr/bin/python3
"""The benchmark's D-Bus client: Python GDBus, synchronous calls, as the reference figures were
measured. Each command prints one JSON line. The bus address comes from BENCH_BUS_ADDRESS.

  lat ITERS DEST PATH IFACE.METHOD SIG ARGS     latency of one call, repeated, and the client's
                                                CPU time per call ("cpu", µs)
  alt ITERS DEST CALL_A CALL_B                  two calls alternated (e.g. Start, Destroy);
                                                a CALL is "PATH IFACE.METHOD SIG ARGS"
  define COUNT DEST PATH IFACE.METHOD SIG ARGS  COUNT calls, "{i}" in ARGS numbered
  check ITERS ACTION                            polkit's CheckAuthorization for ourselves
"""
import json
import os
import resource
import sys
import time

from gi.repository import Gio, GLib


def connect():
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    return Gio.DBusConnection.new_for_address_sync(
        os.environ["BENCH_BUS_ADDRESS"], flags, None, None)


def params(sig, args):
    if sig == "()":
        return None
    return GLib.Variant.parse(GLib.VariantType.new(sig), args, None, None)


def caller(conn, dest, path, method, sig, args):
    iface, member = method.rsplit(".", 1)
    p = params(sig, args)

    def call():
        conn.call_sync(dest, path, iface, member, p, None, Gio.DBusCallFlags.NONE, 60000, None)
    return call


def stats(samples):
    s = sorted(samples)
    n = len(s)
    return {
        "n": n,
        "p50": s[n // 2] * 1e6,
        "p99": s[min(n - 1, int(n * 0.99))] * 1e6,
        "rate": n / sum(s),
    }


def timed(call, iters):
    for _ in range(min(100, iters)):
        call()
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


def split(c):
    path, method, sig, args = (c.split(" ", 3) + ["()"])[:4]
    return path, method, sig, args


def main():
    cmd, rest = sys.argv[1], sys.argv[2:]
    conn = connect()
    if cmd == "lat":
        iters, dest, path, method, sig, args = int(rest[0]), rest[1], rest[2], rest[3], rest[4], rest[5]
        before = resource.getrusage(resource.RUSAGE_SELF)
        out = stats(timed(caller(conn, dest, path, method, sig, args), iters))
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        out["cpu"] = cpu / (iters + min(100, iters)) * 1e6
        print(json.dumps(out))
    elif cmd == "alt":
        iters, dest = int(rest[0]), rest[1]
        a = caller(conn, dest, *split(rest[2]))
        b = caller(conn, dest, *split(rest[3]))
        for _ in range(min(100, iters)):
            a()
            b()
        ta, tb = [], []
        for _ in range(iters):
            t = time.perf_counter()
            a()
            ta.append(time.perf_counter() - t)
            t = time.perf_counter()
            b()
            tb.append(time.perf_counter() - t)
        print(json.dumps({"a": stats(ta), "b": stats(tb)}))
    elif cmd == "define":
        count, dest, path, method, sig, args = int(rest[0]), rest[1], rest[2], rest[3], rest[4], rest[5]
        iface, member = method.rsplit(".", 1)
        t = time.perf_counter()
        for i in range(count):
            p = params(sig, args.replace("{i}", str(i)))
            conn.call_sync(dest, path, iface, member, p, None, Gio.DBusCallFlags.NONE, 60000, None)
        print(json.dumps({"seconds": time.perf_counter() - t}))
    elif cmd == "check":
        iters, action = int(rest[0]), rest[1]
        subject = GLib.Variant("(sa{sv})", ("system-bus-name",
                               {"name": GLib.Variant("s", conn.get_unique_name())}))
        p = GLib.Variant.new_tuple(subject, GLib.Variant("s", action),
                                   GLib.Variant("a{ss}", {}), GLib.Variant("u", 0),
                                   GLib.Variant("s", ""))

        def call():
            conn.call_sync("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization", p,
                           None, Gio.DBusCallFlags.NONE, 60000, None)
        print(json.dumps(stats(timed(call, iters))))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
