//! libvirt's QEMU program (`qemu_protocol.x`, libvirt-qemu's API): commands of the caller's
//! own for a guest's QEMU monitor and guest agent (`virsh qemu-monitor-command`,
//! `qemu-agent-command`). Served on `qemu:///` connections only; each call needs the QEMU
//! passthrough permission (decided by polkit on every call) and taints the domain.

use std::time::Duration;

use super::{
    Shared,
    dispatch::{Session, ok},
    error::{RpcError, RpcResult},
    proto::Dom,
    xdr::{Reader, xdr_struct},
};
use crate::{
    compat::{
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::ops,
};

pub const QEMU_PROGRAM: u32 = 0x2000_8087;
pub const QEMU_VERSION: u32 = 1;

/// `qemu_procedure` numbers of the procedures implemented.
pub mod procs {
    pub const DOMAIN_MONITOR_COMMAND: i32 = 1;
    pub const DOMAIN_AGENT_COMMAND: i32 = 3;
    pub const CONNECT_DOMAIN_MONITOR_EVENT_REGISTER: i32 = 4;
    pub const CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER: i32 = 5;
    /// The event message the daemon sends (not a call: not counted as implemented).
    pub const DOMAIN_MONITOR_EVENT: i32 = 6;

    /// Every procedure above but the message.
    pub const IMPLEMENTED: &[i32] = &[
        DOMAIN_MONITOR_COMMAND,
        DOMAIN_AGENT_COMMAND,
        CONNECT_DOMAIN_MONITOR_EVENT_REGISTER,
        CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER,
    ];
}

/// How many procedures `qemu_protocol.x` of libvirt 9.0 declares.
pub const QEMU_PROCEDURES: usize = 7;

xdr_struct! {
    MonitorCommandArgs { dom: Dom, cmd: String, flags: u32 }
    MonitorCommandRet { result: String }
    AgentCommandArgs { dom: Dom, cmd: String, timeout: i32, flags: u32 }
    AgentCommandRet { result: Option<String> }
}

const MONITOR_COMMAND: Method = Method {
    api: "virDomainQemuMonitorCommand",
    driver_fn: "DomainQemuMonitorCommand",
    flags: &[Flag {
        bit: 1,
        name: "VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP",
        option: "hmp",
    }],
};

const AGENT_COMMAND: Method = Method {
    api: "virDomainQemuAgentCommand",
    driver_fn: "DomainQemuAgentCommand",
    flags: &[],
};

/// `VIR_DOMAIN_QEMU_AGENT_COMMAND_BLOCK` / `_DEFAULT` / `_NOWAIT`.
const AGENT_BLOCK: i32 = -2;
const AGENT_DEFAULT: i32 = -1;
const AGENT_NOWAIT: i32 = 0;
/// How long "block" waits here: a bound, so a wedged agent cannot hold a call forever.
const AGENT_BLOCK_WAIT: Duration = Duration::from_secs(3600);

/// Carry out procedure `p` of the QEMU program.
pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    if matches!(
        p,
        procs::CONNECT_DOMAIN_MONITOR_EVENT_REGISTER
            | procs::CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER
    ) {
        if !super::monitor_events::served(s.flavor()) {
            // libvirt's other drivers have no QEMU monitor
            return Err(s.error(Code::NoSupport, "virConnectDomainQemuMonitorEventRegister"));
        }
        return if p == procs::CONNECT_DOMAIN_MONITOR_EVENT_REGISTER {
            super::monitor_events::register(shared, s, body).await
        } else {
            super::monitor_events::deregister(s, body)
        };
    }
    let m = match p {
        procs::DOMAIN_MONITOR_COMMAND => &MONITOR_COMMAND,
        procs::DOMAIN_AGENT_COMMAND => &AGENT_COMMAND,
        p => {
            return Err(RpcError::no_support(&format!(
                "unknown procedure: {p} of the QEMU program (not implemented by virtbus)"
            )));
        }
    };
    match s.flavor() {
        Flavor::Qemu => {}
        // libvirt's other drivers have no QEMU monitor
        Flavor::Test | Flavor::Lxc => return Err(s.error(Code::NoSupport, m.api)),
    }
    s.writable(m)?;
    if p == procs::DOMAIN_MONITOR_COMMAND {
        let a: MonitorCommandArgs = Reader::decode(body)?;
        let dom = s.domain(&a.dom)?;
        s.check(m, a.flags)?;
        let req = ops::QemuMonitorCommand {
            cmd: a.cmd,
            hmp: m.has(a.flags, "hmp"),
        };
        let result = s.run(shared, m, &dom, req).await?;
        ok(MonitorCommandRet { result })
    } else {
        let a: AgentCommandArgs = Reader::decode(body)?;
        let dom = s.domain(&a.dom)?;
        s.check(m, a.flags)?;
        let timeout = match a.timeout {
            AGENT_BLOCK => Some(AGENT_BLOCK_WAIT),
            AGENT_DEFAULT | AGENT_NOWAIT => None,
            t if t > 0 => Some(Duration::from_secs(t.unsigned_abs().into())),
            t => {
                return Err(s.error(
                    Code::InvalidArg,
                    &format!("guest agent timeout '{t}' is less than the minimum '-2'"),
                ));
            }
        };
        let req = ops::QemuAgentCommand {
            cmd: a.cmd,
            timeout,
        };
        let result = s.run(shared, m, &dom, req).await?;
        ok(AgentCommandRet {
            result: Some(result),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implemented_procedures_are_declared() {
        for p in procs::IMPLEMENTED {
            assert!((1..=QEMU_PROCEDURES as i32).contains(p));
        }
    }
}
