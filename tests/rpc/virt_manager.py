#!/usr/bin/python3
"""virt-manager's connection start-up and stats polling, replayed with python3-libvirt.

The calls are those virt-manager 4.1 (virtManager/connection.py, object/*.py) makes when it
opens a connection and on each tick: the host, every domain, network, pool, volume, host
interface and node device with their XML and state, then the statistics it polls. Prints
one JSON document of what it read, for the Rust test to check; exits non-zero on any
libvirt error a real virt-manager would not tolerate.

Usage: virt_manager.py URI [ticks]
"""

import json
import sys

import libvirt


def tolerant(fn, *args):
    """A call virt-manager makes but copes without (it checks support first)."""
    try:
        return fn(*args)
    except libvirt.libvirtError as e:
        if e.get_error_code() in (
            libvirt.VIR_ERR_NO_SUPPORT,
            libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
        ):
            return None
        raise


def main():
    uri = sys.argv[1]
    ticks = int(sys.argv[2]) if len(sys.argv) > 2 else 2

    def auth(creds, _data):
        for c in creds:
            c[4] = ""
        return 0

    conn = libvirt.openAuth(
        uri, [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], auth, None], 0
    )
    out = {
        "lib_version": conn.getLibVersion(),
        "version": conn.getVersion(),
        "type": conn.getType(),
        "uri": conn.getURI(),
        "hostname": conn.getHostname(),
        "node_info": conn.getInfo(),
        "caps_root": conn.getCapabilities().split(">")[0],
        "domcaps": "<domainCapabilities" in conn.getDomainCapabilities(None, None, None, None, 0),
        "free_memory": conn.getFreeMemory(),
        "memory_stats": conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0),
        "cpu_stats": sorted(conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)),
    }
    # the lists virt-manager's tick polls
    doms = {}
    for d in conn.listAllDomains(0):
        xml = d.XMLDesc(0)
        doms[d.name()] = {
            "uuid": d.UUIDString(),
            "xml_name": "<name>%s</name>" % d.name() in xml,
            "info": d.info(),
            "state": d.state(0),
            "active": d.isActive(),
            "persistent": d.isPersistent(),
            "autostart": d.autostart(),
            "managed_save": d.hasManagedSaveImage(0),
            "snapshots": d.snapshotNum(0),
            "max_memory": d.maxMemory(),
            "inactive_xml": d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).startswith("<domain"),
        }
    out["domains"] = doms
    nets = {}
    for n in conn.listAllNetworks(0):
        nets[n.name()] = {
            "uuid": n.UUIDString(),
            "active": n.isActive(),
            "persistent": n.isPersistent(),
            "autostart": n.autostart(),
            "xml": n.XMLDesc(0).startswith("<network"),
            "by_name": conn.networkLookupByName(n.name()).UUIDString(),
            "by_uuid": conn.networkLookupByUUIDString(n.UUIDString()).name(),
            "leases": n.DHCPLeases() if n.isActive() else [],
            "bridge": n.bridgeName() if n.isActive() else None,
        }
    out["networks"] = nets
    pools = {}
    for p in conn.listAllStoragePools(0):
        entry = {
            "uuid": p.UUIDString(),
            "active": p.isActive(),
            "persistent": p.isPersistent(),
            "autostart": p.autostart(),
            "info": p.info(),
            "xml": p.XMLDesc(0).startswith("<pool"),
            "volumes": {},
        }
        if p.isActive():
            p.refresh(0)
            for v in p.listAllVolumes(0):
                entry["volumes"][v.name()] = {
                    "path": v.path(),
                    "key": v.key(),
                    "info": v.info(),
                    "xml": v.XMLDesc(0).startswith("<volume"),
                    "by_path": conn.storageVolLookupByPath(v.path()).name(),
                    "pool": v.storagePoolLookupByVolume().name(),
                }
        pools[p.name()] = entry
    out["pools"] = pools
    ifaces = {}
    for i in conn.listAllInterfaces(0):
        ifaces[i.name()] = {
            "mac": i.MACString(),
            "active": i.isActive(),
            "xml": i.XMLDesc(0).startswith("<interface"),
        }
    out["interfaces"] = ifaces
    devs = {}
    for d in conn.listAllDevices(0):
        devs[d.name()] = {
            "xml": d.XMLDesc(0).startswith("<device"),
            "caps": d.listCaps(),
        }
    out["node_devices"] = len(devs)
    out["node_device_computer"] = "computer" in devs

    # the stats poll, each tick: all domains at once, then per running domain what the
    # details page shows
    polls = []
    for _ in range(ticks):
        flags = (
            libvirt.VIR_DOMAIN_STATS_STATE
            | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
            | libvirt.VIR_DOMAIN_STATS_BALLOON
            | libvirt.VIR_DOMAIN_STATS_VCPU
            | libvirt.VIR_DOMAIN_STATS_INTERFACE
            | libvirt.VIR_DOMAIN_STATS_BLOCK
        )
        stats = {d.name(): s for d, s in conn.getAllDomainStats(flags, 0)}
        tick = {"all": stats}
        for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            s = stats.get(d.name(), {})
            per = {"info": d.info(), "vcpus": d.vcpus()[0]}
            if s.get("block.count", 0):
                per["block"] = d.blockStats(s["block.0.name"])
                per["block_flags"] = d.blockStatsFlags(s["block.0.name"], 0)
            if s.get("net.count", 0):
                per["net"] = d.interfaceStats(s["net.0.name"])
            per["memory"] = tolerant(d.memoryStats)
            tick[d.name()] = per
        polls.append(tick)
    out["polls"] = polls
    conn.close()
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
