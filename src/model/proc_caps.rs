//! `<features><capabilities policy>`: the Linux capabilities a container's processes keep
//! (libvirt's LXC driver), and `<features><privnet/>`.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    /// What happens to capabilities not named: `default` drops libvirt's dangerous few,
    /// `allow` keeps all, `deny` drops all.
    pub enum CapsPolicy {
        Default = "default",
        Allow = "allow",
        Deny = "deny",
    }
}

xml_enum! {
    /// A capability, named as libvirt's schema names it (in libvirt's order).
    pub enum ProcessCap {
        AuditControl = "audit_control",
        AuditWrite = "audit_write",
        BlockSuspend = "block_suspend",
        Chown = "chown",
        DacOverride = "dac_override",
        DacReadSearch = "dac_read_search",
        Fowner = "fowner",
        Fsetid = "fsetid",
        IpcLock = "ipc_lock",
        IpcOwner = "ipc_owner",
        Kill = "kill",
        Lease = "lease",
        LinuxImmutable = "linux_immutable",
        MacAdmin = "mac_admin",
        MacOverride = "mac_override",
        Mknod = "mknod",
        NetAdmin = "net_admin",
        NetBindService = "net_bind_service",
        NetBroadcast = "net_broadcast",
        NetRaw = "net_raw",
        Setgid = "setgid",
        Setfcap = "setfcap",
        Setpcap = "setpcap",
        Setuid = "setuid",
        SysAdmin = "sys_admin",
        SysBoot = "sys_boot",
        SysChroot = "sys_chroot",
        SysModule = "sys_module",
        SysNice = "sys_nice",
        SysPacct = "sys_pacct",
        SysPtrace = "sys_ptrace",
        SysRawio = "sys_rawio",
        SysResource = "sys_resource",
        SysTime = "sys_time",
        SysTtyConfig = "sys_tty_config",
        Syslog = "syslog",
        WakeAlarm = "wake_alarm",
    }
}

impl ProcessCap {
    /// The kernel's number (`CAP_*` of linux/capability.h).
    pub fn number(self) -> u32 {
        use ProcessCap::*;
        match self {
            Chown => 0,
            DacOverride => 1,
            DacReadSearch => 2,
            Fowner => 3,
            Fsetid => 4,
            Kill => 5,
            Setgid => 6,
            Setuid => 7,
            Setpcap => 8,
            LinuxImmutable => 9,
            NetBindService => 10,
            NetBroadcast => 11,
            NetAdmin => 12,
            NetRaw => 13,
            IpcLock => 14,
            IpcOwner => 15,
            SysModule => 16,
            SysRawio => 17,
            SysChroot => 18,
            SysPtrace => 19,
            SysPacct => 20,
            SysAdmin => 21,
            SysBoot => 22,
            SysNice => 23,
            SysResource => 24,
            SysTime => 25,
            SysTtyConfig => 26,
            Mknod => 27,
            Lease => 28,
            AuditWrite => 29,
            AuditControl => 30,
            Setfcap => 31,
            MacOverride => 32,
            MacAdmin => 33,
            Syslog => 34,
            WakeAlarm => 35,
            BlockSuspend => 36,
        }
    }
}

/// `<capabilities policy=..>` with its per-capability switches, in libvirt's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCaps {
    pub policy: Option<CapsPolicy>,
    pub caps: Vec<(ProcessCap, bool)>,
}

impl ProcessCaps {
    pub fn policy(&self) -> CapsPolicy {
        self.policy.unwrap_or(CapsPolicy::Default)
    }

    /// The switch of `cap`, if the definition names it.
    pub fn state(&self, cap: ProcessCap) -> Option<bool> {
        self.caps.iter().find(|(c, _)| *c == cap).map(|(_, on)| *on)
    }

    /// The capabilities the container's bounding set loses, as libvirt's LXC driver drops
    /// them: under `default` the module, clock, mknod, audit and LSM administration ones
    /// unless switched on, and any switched off (`sys_boot` stays, as libvirt keeps it on
    /// kernels where `reboot(2)` in a PID namespace ends only the container); under `allow`
    /// only those switched off; under `deny` all but those switched on.
    pub fn dropped(this: Option<&Self>) -> Vec<ProcessCap> {
        let policy = this.map_or(CapsPolicy::Default, Self::policy);
        let state = |c| this.and_then(|p| p.state(c));
        ProcessCap::ALL
            .iter()
            .copied()
            .filter(|&c| match policy {
                CapsPolicy::Deny => state(c) != Some(true),
                CapsPolicy::Allow => state(c) == Some(false),
                CapsPolicy::Default => {
                    use ProcessCap::*;
                    let risky = matches!(c, SysModule | SysTime | Mknod | AuditControl | MacAdmin);
                    if risky {
                        state(c) != Some(true)
                    } else {
                        state(c) == Some(false)
                    }
                }
            })
            .collect()
    }

    pub(crate) fn read(mut e: Elem) -> Result<ProcessCaps> {
        let policy = e.attr_with("policy", values::keyword::<CapsPolicy>)?;
        let mut caps: Vec<(ProcessCap, bool)> = Vec::new();
        e.each_child(|mut c| {
            let cap: ProcessCap = c.name().parse().map_err(|_| c.unknown())?;
            let on = c.req_attr_with("state", values::on_off)?;
            c.finish()?;
            // the last switch of a capability named twice wins, as in libvirt
            caps.retain(|(k, _)| *k != cap);
            caps.push((cap, on));
            Ok(())
        })?;
        e.finish()?;
        caps.sort_by_key(|(c, _)| *c as u8);
        Ok(ProcessCaps { policy, caps })
    }

    /// Written as libvirt does: nothing for the default policy without switches.
    pub(crate) fn write(&self, w: &mut Writer) {
        let policy = self.policy();
        if policy == CapsPolicy::Default && self.caps.is_empty() {
            return;
        }
        w.start("capabilities");
        w.attr("policy", policy.as_str());
        for (c, on) in &self.caps {
            w.leaf_attr(c.as_str(), "state", values::on_off_str(*on));
        }
        w.end();
    }
}
