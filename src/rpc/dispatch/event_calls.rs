//! Registering and removing event callbacks; the events themselves go out from
//! [`crate::rpc::events`].

use uuid::Uuid;

use super::{Session, ok};
use crate::{
    core::ops::Operation,
    rpc::{
        Shared,
        error::{RpcError, RpcResult},
        events::Family,
        proto::{
            CallbackIdArgs, CallbackIdRet, DomainEventRegisterArgs, PoolEventRegisterArgs, procs,
        },
        xdr::Reader,
    },
};

/// Whether `proc_` is one of these.
pub(super) fn handles(proc_: i32) -> bool {
    matches!(
        proc_,
        procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
            | procs::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY
            | procs::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY
            | procs::CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY
    )
}

pub(super) async fn call(
    shared: &Shared,
    s: &Session,
    proc_: i32,
    body: &[u8],
) -> RpcResult<Vec<u8>> {
    let flavor = s.flavor();
    let exec = s.exec(shared);
    let denied = |e| RpcError::denied(e, flavor);
    let (family, event, only) = match proc_ {
        procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => {
            let a: DomainEventRegisterArgs = Reader::decode(body)?;
            // one domain's events need reading it, all domains' reading the host
            let only = match &a.dom {
                Some(d) => {
                    let dom = s.domain(d)?;
                    s.authorize(shared, Operation::ReadDomain, &dom).await?;
                    Some(dom.uuid())
                }
                None => {
                    s.host_read(shared).await?;
                    None
                }
            };
            (Family::Domain, a.event_id, only)
        }
        procs::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY => {
            let a: PoolEventRegisterArgs = Reader::decode(body)?;
            let details = match &a.pool {
                Some(p) => crate::server::authz::Details::pool(&p.name),
                None => Default::default(),
            };
            exec.authorize_as(&s.caller, Operation::ReadStorage, &details)
                .await
                .map_err(denied)?;
            (
                Family::Pool,
                a.event_id,
                a.pool.map(|p| Uuid::from_bytes(p.uuid)),
            )
        }
        procs::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY
        | procs::CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY => {
            let a: CallbackIdArgs = Reader::decode(body)?;
            let family = if proc_ == procs::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY {
                Family::Domain
            } else {
                Family::Pool
            };
            s.listener.deregister(family, a.callback_id)?;
            return ok(());
        }
        p => return Err(RpcError::no_support(&format!("unknown procedure: {p}"))),
    };
    let callback_id = s.listener.register(family, event, only)?;
    s.view.hub.listen(&s.listener);
    ok(CallbackIdRet { callback_id })
}
