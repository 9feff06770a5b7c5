# The same calls through python3-libvirt against libvirt's own test driver (test:///default,
# in the client) and against virtbusd's socket: the events and snapshot facts each reports.
import libvirt, sys, threading, time
libvirt.virEventRegisterDefaultImpl()
libvirt.registerErrorHandler(lambda *a: None, None)
c = libvirt.open(sys.argv[1])
out = []
def life(conn, dom, ev, detail, opaque):
    out.append("lifecycle %s %d %d" % (dom.name(), ev, detail))
def reboot(conn, dom, opaque):
    out.append("reboot %s" % dom.name())
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, life, None)
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, reboot, None)
def loop():
    while True:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
xml = "<domain type='test'><name>web</name><memory unit='MiB'>512</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>"
d = c.defineXML(xml)
d.create(); d.suspend(); d.resume(); d.reboot(0); d.destroy()
# snapshots
d.create()
s1 = d.snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
s2 = d.snapshotCreateXML("<domainsnapshot><name>s2</name></domainsnapshot>", 0)
d.revertToSnapshot(s1, 0)
s3 = d.snapshotCreateXML("<domainsnapshot><name>s3</name></domainsnapshot>", 0)
for s in d.listAllSnapshots(0):
    p = None
    try: p = s.getParent().getName()
    except libvirt.libvirtError: pass
    out.append("snap %s parent=%s current=%d children=%d desc=%d meta=%d" % (s.getName(), p, s.isCurrent(), s.numChildren(), s.numChildren(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS), s.hasMetadata()))
out.append("names %s" % sorted(d.snapshotListNames()))
out.append("roots %s" % sorted(x.getName() for x in d.listAllSnapshots(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_ROOTS)))
out.append("children of s1 %s" % sorted(s1.getChildren() if hasattr(s1,'getChildren') else s1.listChildrenNames()))
out.append("current %s has %d" % (d.snapshotCurrent().getName(), d.hasCurrentSnapshot()))
d.snapshotLookupByName("s1").delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN)
out.append("after delete %s num %d" % (sorted(d.snapshotListNames()), d.snapshotNum()))
d.destroy(); d.undefine()
deadline = time.time() + 5
while time.time() < deadline and not any(l.startswith("lifecycle web 1 ") for l in out):
    time.sleep(0.05)
time.sleep(0.2)
print("\n".join(out))
