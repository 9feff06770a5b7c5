//! `NETWORK_UPDATE` over the core's network update, and the network event callbacks
//! (`CONNECT_NETWORK_EVENT_REGISTER_ANY`/`DEREGISTER_ANY`); the events themselves go out
//! from [`crate::rpc::events`].

use super::{Session, ok};
use crate::{
    compat::network::{command, section},
    core::{network_ops::NetworkRequest, ops::Operation},
    rpc::{
        Shared,
        error::{RpcError, RpcResult},
        events::Family,
        objects::{check_flags, net_of, net_run},
        proto::{CallbackIdArgs, CallbackIdRet},
        streamproto::{NetworkEventRegisterArgs, NetworkUpdateArgs, procs},
        xdr::Reader,
    },
    server::authz::Details,
};

/// `virNetworkUpdateFlags`: `VIR_NETWORK_UPDATE_AFFECT_LIVE`, `_CONFIG` (0 is "current").
const UPDATE_LIVE: u32 = 1;
const UPDATE_CONFIG: u32 = 2;

/// Whether `proc_` is one of these.
pub(super) fn handles(proc_: i32) -> bool {
    matches!(
        proc_,
        procs::NETWORK_UPDATE
            | procs::CONNECT_NETWORK_EVENT_REGISTER_ANY
            | procs::CONNECT_NETWORK_EVENT_DEREGISTER_ANY
    )
}

pub(super) async fn call(
    shared: &Shared,
    s: &Session,
    proc_: i32,
    body: &[u8],
) -> RpcResult<Vec<u8>> {
    let flavor = s.flavor();
    match proc_ {
        procs::NETWORK_UPDATE => {
            let a: NetworkUpdateArgs = Reader::decode(body)?;
            check_flags(s, a.flags, UPDATE_LIVE | UPDATE_CONFIG, "networkUpdate")?;
            let compat = |e| RpcError::from_compat(e, flavor);
            let (command, section) = (
                command(a.command).map_err(compat)?,
                section(a.section).map_err(compat)?,
            );
            let n = net_of(shared, s, &a.net).await?;
            let (mut live, mut config) = (a.flags & UPDATE_LIVE != 0, a.flags & UPDATE_CONFIG != 0);
            if !live && !config {
                // "current": the running network if active, else its definition
                live = n.active;
                config = !n.active;
            }
            let req = NetworkRequest::Update {
                name: n.name,
                command,
                section,
                xml: a.xml,
                live,
                config,
                ip_index: usize::try_from(a.parent_index).ok(),
            };
            net_run(shared, s, req).await?;
            ok(())
        }
        procs::CONNECT_NETWORK_EVENT_REGISTER_ANY => {
            let a: NetworkEventRegisterArgs = Reader::decode(body)?;
            let details = Details::network(a.net.as_ref().map(|n| n.name.as_str()));
            s.exec(shared)
                .authorize_as(&s.caller, Operation::ReadNetwork, &details)
                .await
                .map_err(|e| RpcError::denied(e, flavor))?;
            let only = a.net.map(|n| uuid::Uuid::from_bytes(n.uuid));
            let callback_id = s.listener.register(Family::Network, a.event_id, only)?;
            s.view.hub.listen(&s.listener);
            ok(CallbackIdRet { callback_id })
        }
        procs::CONNECT_NETWORK_EVENT_DEREGISTER_ANY => {
            let a: CallbackIdArgs = Reader::decode(body)?;
            s.listener.deregister(Family::Network, a.callback_id)?;
            ok(())
        }
        p => Err(RpcError::no_support(&format!("unknown procedure: {p}"))),
    }
}
