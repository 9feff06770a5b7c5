#!/usr/bin/python3
"""/org/libvirt/QEMU speaks as libvirt's QEMU driver: its domain types, its wording of errors
and the names of its driver functions."""
from lvtest import *

b = bus()
c = iface(b, QEMU, CONNECT)


def qemu_wording():
    kvm = domain_xml("vm1", "3b1e9d2a-5c6f-4e7d-8a9b-0c1d2e3f4a5b").replace("'test'", "'kvm'")
    path = c.DomainDefineXML(kvm)
    eq(path, QEMU + "/domain/_3b1e9d2a_5c6f_4e7d_8a9b_0c1d2e3f4a5b", "path")
    d = iface(b, path, DOMAIN)
    p = iface(b, path, PROPS)
    eq(p.Get(DOMAIN, "OSType"), "hvm", "OSType")
    eq(p.Get(DOMAIN, "Id"), 0, "an inactive domain's id")
    expect_error(c.DomainDefineXML, domain_xml("t"),
                 contains="unsupported configuration: domains of type 'test' are not served at /org/libvirt/QEMU")
    expect_error(c.DomainLookupByName, "nope",
                 message="Domain not found: no domain with matching name 'nope'")
    expect_error(c.DomainLookupByID, 9, message="Domain not found: no domain with matching id 9")
    expect_error(c.DomainLookupByUUID, "3b1e9d2a-5c6f-4e7d-8a9b-0c1d2e3f4a50",
                 message="Domain not found: no domain with matching uuid '3b1e9d2a-5c6f-4e7d-8a9b-0c1d2e3f4a50'")
    expect_error(d.GetState, 1, message="unsupported flags (0x1) in function qemuDomainGetState")
    expect_error(d.Destroy, 0, message="Requested operation is not valid: domain is not running")
    d.Create(0)
    expect_error(d.Create, 0, message="Requested operation is not valid: domain is already running")
    expect_error(d.Resume, message="Requested operation is not valid: domain is not paused")
    d.Suspend()
    expect_error(d.Suspend, message="Requested operation is not valid: domain is already paused")
    d.Destroy(0)
    eq(list(c.ListDomains(0)), [path], "kvm domains")
    q = c.DomainCreateXML(domain_xml("vm2").replace("'test'", "'qemu'"), 0)
    eq(sorted(c.ListDomains(1)), [q], "qemu domains too")
    dc = c.GetDomainCapabilities("", "", "", "", 0)
    if "<domain>qemu</domain>" not in dc:
        fail(dc)
    if "<domain>kvm</domain>" not in c.GetDomainCapabilities("", "x86_64", "", "kvm", 0):
        fail("kvm domain capabilities")
    expect_error(c.GetDomainCapabilities, "", "", "", "test", 0,
                 message="Operation not supported: domains of type 'test' are not served here")
    expect_error(c.GetDomainCapabilities, "", "", "", "xen", 0,
                 message="invalid argument: unknown virttype: xen")


run([qemu_wording])
