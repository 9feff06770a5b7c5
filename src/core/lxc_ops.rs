//! The container requests of libvirt's LXC driver: starting with descriptors handed to the
//! init, signalling the init, and opening the init's namespaces (for
//! `virsh lxc-enter-namespace`).

use std::{os::fd::OwnedFd, sync::Arc};

use super::{
    Core, Domain, Error, Result,
    ops::{DomainOp, Operation, domain_op},
    options::StartOptions,
};

/// libvirt's `VIR_DOMAIN_PROCESS_SIGNAL_LAST`: signal numbers are below it.
pub const SIGNAL_LAST: u32 = 65;

domain_op!(
    /// Boot the domain handing `files` to its guest (a container's init has them as
    /// descriptors 3 and on).
    StartWithFiles { opts: StartOptions, files: Arc<Vec<OwnedFd>> } => (), Start,
    |r, core, dom| core.start_with_files(dom, r.opts, &r.files).await
);

domain_op!(
    /// The descriptors of the namespaces of a running container's init.
    OpenNamespaces {} => Vec<OwnedFd>, OpenNamespace,
    |_r, core, dom| core.open_namespaces(dom).await
);

/// Send signal `signum` (libvirt's numbering, which is Linux's) to process `pid` of the
/// guest.
#[derive(Debug, Clone)]
pub struct SendProcessSignal {
    pub pid: i64,
    pub signum: u32,
}

impl DomainOp for SendProcessSignal {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::SendProcessSignal
    }

    fn validate(&self) -> Result<()> {
        if self.signum >= SIGNAL_LAST {
            return Err(Error::InvalidArgument(format!(
                "signum value {} is out of range",
                self.signum
            )));
        }
        Ok(())
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.send_process_signal(dom, self.pid, self.signum).await
    }
}

impl Core {
    pub async fn send_process_signal(
        &self,
        dom: &Arc<Domain>,
        pid: i64,
        signum: u32,
    ) -> Result<()> {
        let _job = dom.begin_job("send process signal").await?;
        Self::require(dom, Operation::SendProcessSignal)?;
        dom.driver
            .send_process_signal(&self.ctx(dom), pid, signum)
            .await?;
        Ok(())
    }

    pub async fn open_namespaces(&self, dom: &Arc<Domain>) -> Result<Vec<OwnedFd>> {
        Self::require(dom, Operation::OpenNamespace)?;
        Ok(dom.driver.open_namespaces(&self.ctx(dom)).await?)
    }
}
