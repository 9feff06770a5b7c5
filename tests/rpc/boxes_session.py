"""What GNOME Boxes does when it connects to qemu:///session (through libvirt-glib), replayed
with python3-libvirt: capabilities, domain capabilities, its storage pool, the domains, their
XML, state and statistics. libvirt.so finds the socket itself under $XDG_RUNTIME_DIR.
Prints one `key value` line per fact for the test to check."""

import os
import sys

import libvirt

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

conn = libvirt.open("qemu:///session")
print("uri", conn.getURI())
caps = conn.getCapabilities()
print("caps", "<capabilities>" in caps)
dcaps = conn.getDomainCapabilities(None, None, None, None, 0)
print("domcaps", "<domainCapabilities>" in dcaps)

# Boxes' own pool of disk images, defined on first start
images = os.path.join(os.environ["HOME"], "gnome-boxes-images")
try:
    pool = conn.storagePoolLookupByName("gnome-boxes")
except libvirt.libvirtError:
    pool = conn.storagePoolDefineXML(
        "<pool type='dir'><name>gnome-boxes</name>"
        f"<target><path>{images}</path></target></pool>", 0)
    pool.build(0)
    pool.setAutostart(True)
if not pool.isActive():
    pool.create(0)
print("pool", pool.name(), pool.isActive())

for dom in conn.listAllDomains(0):
    xml = dom.XMLDesc(0)
    state, _ = dom.state()
    info = dom.info()
    print("domain", dom.name(), state, info[1] > 0, "<domain" in xml)
    if dom.isActive():
        stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL, 0)
        print("stats", [d.name() for d, s in stats if "cpu.time" in s])
        print("memstats", "actual" in dom.memoryStats())
sys.stdout.flush()
