//! Commands of the caller's own passed to a running guest's QEMU monitor or guest agent
//! (libvirt's `virDomainQemuMonitorCommand` / `virDomainQemuAgentCommand`). Nothing vouches
//! for the guest afterwards, so each taints the domain as libvirt does; the permission is
//! the QEMU passthrough action, decided anew on every call.

use std::{sync::Arc, time::Duration};

use super::{Core, Domain, Result, ops::Operation};

/// libvirt's taint messages (`virDomainTaintMessage`).
const TAINT_MONITOR: &str = "custom monitor control commands issued";
const TAINT_AGENT: &str = "custom guest agent control commands issued";

impl Core {
    /// Pass `cmd` (QMP JSON, or an HMP command line with `hmp`) to the guest's monitor.
    pub async fn qemu_monitor_command(
        &self,
        dom: &Arc<Domain>,
        cmd: &str,
        hmp: bool,
    ) -> Result<String> {
        Self::require(dom, Operation::QemuMonitorCommand)?;
        self.taint(dom, TAINT_MONITOR);
        Ok(dom.driver.monitor_command(&self.ctx(dom), cmd, hmp).await?)
    }

    /// Pass `cmd` (JSON) to the guest agent, waiting `timeout` at most.
    pub async fn qemu_agent_command(
        &self,
        dom: &Arc<Domain>,
        cmd: &str,
        timeout: Option<Duration>,
    ) -> Result<String> {
        Self::require(dom, Operation::QemuAgentCommand)?;
        self.taint(dom, TAINT_AGENT);
        Ok(dom
            .driver
            .agent_command(&self.ctx(dom), cmd, timeout)
            .await?)
    }

    fn taint(&self, dom: &Domain, why: &'static str) {
        let name = dom.name();
        let mut d = super::lock(&dom.data);
        if !d.taints.contains(&why) {
            d.taints.push(why);
            drop(d);
            tracing::warn!("domain '{name}' is tainted: {why}");
        }
    }
}

impl Domain {
    /// Why nothing vouches for the running guest, in libvirt's words, oldest first.
    pub fn taints(&self) -> Vec<&'static str> {
        super::lock(&self.data).taints.clone()
    }
}
