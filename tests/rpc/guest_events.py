# python3-libvirt's callbacks for the guest events beyond the lifecycle, against virtbusd's
# socket: one line per event as it comes, "ready" once registered.
import libvirt, sys, threading, time
libvirt.virEventRegisterDefaultImpl()
c = libvirt.open(sys.argv[1])
def say(s):
    print(s, flush=True)
def rtc(conn, dom, offset, opaque):
    say("rtc %s %d" % (dom.name(), offset))
def graphics(conn, dom, phase, local, remote, auth, subject, opaque):
    say("graphics %s %d %d %s %s %d %s %s %s %s" % (dom.name(), phase,
        local["family"], local["node"], local["service"],
        remote["family"], remote["node"], remote["service"], auth, list(subject)))
def balloon(conn, dom, actual, opaque):
    say("balloon %s %d" % (dom.name(), actual))
def tray(conn, dom, alias, reason, opaque):
    say("tray %s %s %d" % (dom.name(), alias, reason))
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_RTC_CHANGE, rtc, None)
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_GRAPHICS, graphics, None)
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE, balloon, None)
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_TRAY_CHANGE, tray, None)
say("ready")
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    libvirt.virEventRunDefaultImpl()
