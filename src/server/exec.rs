//! The one execution path of every D-Bus front end: a request (a core operation with its
//! arguments) is checked, authorized against the caller with the operation's own
//! permissions, carried out by the core, and — when it can change what clients see —
//! followed by its signals before the front end replies.

use std::sync::Arc;

use tokio::sync::watch;

use super::{
    Call,
    authz::{Authorizer, Caller, Denied, Details},
    signals_sent,
};
use crate::core::{
    self, Core, Domain,
    ops::{DomainOp, Operation},
};

/// What stopped a request: the caller's permission, or the core.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Core(#[from] core::Error),
}

/// A front end's view of one core: where requests go, who authorizes them, and how far the
/// core's events have been signalled.
#[derive(Clone, Copy)]
pub struct Exec<'a> {
    pub core: &'a Core,
    pub authz: &'a dyn Authorizer,
    pub signalled: &'a watch::Receiver<u64>,
}

impl Exec<'_> {
    /// Authorize an operation that names no domain request of its own (host reads,
    /// properties, listings), with `details`.
    pub(crate) async fn authorize(
        &self,
        call: &Call,
        op: Operation,
        details: &Details,
    ) -> Result<(), Denied> {
        self.authorize_as(&call.caller, op, details).await
    }

    /// [`Self::authorize`] for a caller that came by another way than a bus call.
    pub async fn authorize_as(
        &self,
        caller: &Caller,
        op: Operation,
        details: &Details,
    ) -> Result<(), Denied> {
        self.authz.check(caller, op.action(), details).await
    }

    /// Authorize `op` on a domain with the domain's details.
    pub(crate) async fn authorize_domain(
        &self,
        call: &Call,
        op: Operation,
        info: &core::DomainInfo,
    ) -> Result<(), Denied> {
        self.authorize(call, op, &Details::domain(info)).await
    }

    /// Whether every check passes, so that lists can skip asking per object.
    pub fn allows_everything(&self) -> bool {
        self.authz.allows_everything()
    }

    /// Run `req` on `dom` for the caller of `call`.
    pub(crate) async fn run<O: DomainOp>(
        &self,
        call: &Call,
        dom: &Arc<Domain>,
        req: O,
    ) -> Result<O::Output, ExecError> {
        self.run_as(&call.caller, dom, req).await
    }

    /// Run `req` on `dom` for `caller` (a front end that is not on the bus).
    pub async fn run_as<O: DomainOp>(
        &self,
        caller: &Caller,
        dom: &Arc<Domain>,
        req: O,
    ) -> Result<O::Output, ExecError> {
        req.validate()?;
        let info = dom.info();
        let details = match req.snapshot() {
            Some(name) => Details::snapshot(&info, name),
            None => Details::domain(&info),
        };
        for action in req.actions() {
            self.authz.check(caller, action, &details).await?;
        }
        let changes = req.operation().changes_state();
        let out = req.run(self.core, dom).await?;
        if changes {
            self.signals_sent().await;
        }
        Ok(out)
    }

    /// Run a storage request for `caller`, authorized with its pool's name and the volume
    /// it concerns with that volume's owner; volumes a non-root caller creates are its own.
    pub async fn run_storage<O: core::storage_ops::StorageOp>(
        &self,
        caller: &Caller,
        req: O,
    ) -> Result<O::Output, ExecError> {
        let by = self.authz.owner_uid(caller).await;
        for (op, target) in req.checks(self.core.storage(), by) {
            self.authz
                .check(caller, op.action(), &Details::storage(&target))
                .await?;
        }
        let changes = req.operation().changes_state();
        let out = req.run(self.core.storage(), by).await?;
        if changes {
            self.signals_sent().await;
        }
        Ok(out)
    }

    /// Run a network request for `caller`: authorized with the operation's permission and
    /// the network's name, then carried out by the core's network driver.
    pub async fn run_network(
        &self,
        caller: &Caller,
        req: core::network_ops::NetworkRequest,
    ) -> Result<core::network_ops::NetworkReply, ExecError> {
        let details = Details::network(req.network_name().as_deref());
        self.authz
            .check(caller, req.operation().action(), &details)
            .await?;
        Ok(self.core.network(req).await?)
    }

    /// Wait until the signals of every event the core published so far are sent.
    pub async fn signals_sent(&self) {
        signals_sent(self.core, self.signalled).await
    }
}
