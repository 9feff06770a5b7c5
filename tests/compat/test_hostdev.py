#!/usr/bin/python3
"""Host interfaces and node devices on /org/libvirt/Test (BUS_ADDRESS) against Debian's
libvirt-dbus over libvirt's test:///default (REFERENCE_ADDRESS): the same calls give the same
answers (values, or error names and messages).

Left out, with the reason: Interface.Create/Destroy/Undefine and NodeDevice.Destroy, which
libvirt's test driver carries out and virtbus refuses (its interfaces and devices are
read-only); they are checked to be refused instead.
"""
import os

from lvtest import *

A = bus()
B = bus(os.environ["REFERENCE_ADDRESS"])
IFACE = "org.libvirt.Interface"
NODEDEV = "org.libvirt.NodeDevice"
ETH1 = TEST + "/interface/aa_3abb_3acc_3add_3aee_3aff"



def both(path, name, method, *args, key=None):
    a = answer(A, path, name, method, args)
    b_ = answer(B, path, name, method, args)
    if key and a[0] == b_[0] == "ok":
        a, b_ = ("ok", key(a[1])), ("ok", key(b_[1]))
    eq(a, b_, f"{path} {method}{args} (virtbus, libvirt-dbus)")
    return a


def connect_lists_and_lookups():
    for flags in (0, 1, 2, 3, 4):
        both(TEST, CONNECT, "ListInterfaces", U(flags))
    # libvirt's order follows a hash table: compared as sets.
    for flags in (0, 1, 2, 1 << 5, 1 << 9, 1 << 10, 1 << 8, 1 << 31, 1 << 30):
        both(TEST, CONNECT, "ListNodeDevices", U(flags), key=sorted)
    for name in ("eth1", "lo", "nope"):
        both(TEST, CONNECT, "InterfaceLookupByName", name)
    for mac in ("aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:FF", "00:11:22:33:44:55"):
        both(TEST, CONNECT, "InterfaceLookupByMAC", mac)
    for name in ("computer", "scsi_host1", "scsi_host11", "nope"):
        both(TEST, CONNECT, "NodeDeviceLookupByName", name)


def interface_object():
    for flags in (0, 1):
        both(ETH1, IFACE, "GetXMLDesc", U(flags))
    for prop in ("Active", "MAC", "Name", "Nope"):
        both(ETH1, PROPS, "Get", IFACE, prop)
    both(ETH1, PROPS, "GetAll", IFACE)
    gone = TEST + "/interface/00_3a11_3a22_3a33_3a44_3a55"
    both(gone, IFACE, "GetXMLDesc", U(0))
    for method, args in (("Create", [U(0)]), ("Destroy", [U(0)]), ("Undefine", [])):
        expect_error(getattr(iface(A, ETH1, IFACE), method), *args,
                     message="this function is not supported by the connection driver: "
                             f"virInterface{method}")


def node_device_objects():
    (paths,) = [answer(A, TEST, CONNECT, "ListNodeDevices", (U(0),))[1]]
    eq(len(paths), 4, "node devices")
    for p in paths:
        for flags in (0, 1):
            both(p, NODEDEV, "GetXMLDesc", U(flags))
        both(p, NODEDEV, "ListCaps")
        for prop in ("Name", "Parent"):
            both(p, PROPS, "Get", NODEDEV, prop)
        both(p, PROPS, "GetAll", NODEDEV)
        both(p, NODEDEV, "Detach", "", U(0))
        both(p, NODEDEV, "ReAttach")
        both(p, NODEDEV, "Reset")
        expect_error(iface(A, p, NODEDEV).Destroy,
                     message="this function is not supported by the connection driver: "
                             "virNodeDeviceDestroy")
    both(TEST + "/nodedev/nope", NODEDEV, "GetXMLDesc", U(0))


def qemu_connect_is_the_host():
    c = iface(A, QEMU, CONNECT)
    devs = [str(p) for p in c.ListNodeDevices(U(0))]
    if QEMU + "/nodedev/computer" not in devs:
        fail(f"no computer: {devs}")
    for p in devs:
        has(iface(A, p, NODEDEV).GetXMLDesc(U(0)), "<device>", p)
    names = sorted(str(iface(A, p, PROPS).Get(IFACE, "Name")) for p in c.ListInterfaces(U(0)))
    want = sorted(n for n in os.listdir("/sys/class/net")
                  if not os.path.exists(f"/sys/class/net/{n}/brport")
                  and not os.path.exists(f"/sys/class/net/{n}/tun_flags"))
    eq(names, want, "QEMU interfaces are the host's")
    lo = c.InterfaceLookupByName("lo")
    has(iface(A, lo, IFACE).GetXMLDesc(U(1)), "<ip address='127.0.0.1' prefix='8'/>", "lo")
    expect_error(iface(A, lo, IFACE).GetXMLDesc, U(2),
                 message="unsupported flags (0x2) in function udevInterfaceGetXMLDesc")
    expect_error(c.ListNodeDevices, U(1 << 29),
                 message="unsupported flags (0x20000000) in function nodeConnectListAllNodeDevices")


run([connect_lists_and_lookups, interface_object, node_device_objects, qemu_connect_is_the_host])
