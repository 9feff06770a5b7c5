//! Reads method calls off the connection and routes each to its handler, in its own task.

use std::{future::Future, num::NonZeroUsize, pin::Pin, sync::Arc};

use zbus::{
    MatchRule, Message, MessageStream, export::futures_core::Stream, message::Flags, message::Type,
};

use super::{
    Call, Ctx,
    activity::Activity,
    authz::Caller,
    errors::{BusError, Reply},
    fairness::{Fairness, Limits},
    paths::{self, Target},
    schema::{DOMAIN_IFACE, MANAGER_IFACE, SNAPSHOT_IFACE},
};
use crate::core::Error;

pub(super) const PEER: &str = "org.freedesktop.DBus.Peer";
pub(super) const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
pub(super) const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
pub(super) const OBJECT_MANAGER: &str = "org.freedesktop.DBus.ObjectManager";

pub(crate) async fn method_calls(conn: &zbus::Connection) -> zbus::Result<MessageStream> {
    let rule = MatchRule::builder().msg_type(Type::MethodCall).build()?;
    MessageStream::for_match_rule(rule, conn, NonZeroUsize::new(1024)).await
}

async fn next(stream: &mut MessageStream) -> Option<zbus::Result<Message>> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// A front end: what turns one method call into its reply.
pub(crate) trait Frontend: Send + Sync + 'static {
    type Error: Send;

    fn conn(&self) -> &zbus::Connection;

    /// Handle one call; the reply, or the error to answer with.
    fn dispatch(&self, call: &Call) -> impl Future<Output = Result<Message, Self::Error>> + Send;

    /// The error reply for `e`.
    fn error_reply(&self, call: &Call, e: &Self::Error) -> zbus::Result<Message>;
}

/// Read calls off `stream` until the connection closes, each handled in its own task.
pub(crate) async fn run<F: Frontend>(
    front: Arc<F>,
    mut stream: MessageStream,
    activity: Arc<Activity>,
) {
    let fairness = Fairness::new(Limits::default());
    while let Some(item) = next(&mut stream).await {
        match item {
            Ok(msg) => {
                let admission = match fairness.admit(msg.clone()) {
                    Ok(a) => a,
                    Err(refusal) => {
                        tokio::spawn(refusal.send(front.conn().clone()));
                        continue;
                    }
                };
                let front = front.clone();
                let call = activity.begin();
                tokio::spawn(async move {
                    let _slot = admission.slot().await;
                    handle(&*front, msg).await;
                    drop(call);
                });
            }
            Err(e) => tracing::warn!("dropped an unreadable message: {e}"),
        }
    }
    tracing::info!("bus connection closed; no more calls");
}

async fn handle<F: Frontend>(front: &F, msg: Message) {
    let (no_reply, caller) = {
        let hdr = msg.header();
        let flags = hdr.primary().flags();
        let caller = Caller {
            sender: hdr.sender().map(|s| s.to_string()).unwrap_or_default(),
            interactive: flags.contains(Flags::ALLOW_INTERACTIVE_AUTH),
            message: msg.clone(),
        };
        (flags.contains(Flags::NO_REPLY_EXPECTED), caller)
    };
    let call = Call { msg, caller };
    let result = front.dispatch(&call).await;
    if no_reply {
        return;
    }
    let reply = match result {
        Ok(m) => Ok(m),
        Err(e) => front.error_reply(&call, &e),
    };
    match reply {
        Ok(m) => {
            if let Err(e) = front.conn().send(&m).await {
                tracing::debug!("cannot send a reply: {e}");
            }
        }
        Err(e) => tracing::error!("cannot build a reply: {e}"),
    }
}

impl Frontend for Ctx {
    type Error = BusError;

    fn conn(&self) -> &zbus::Connection {
        &self.conn
    }

    fn dispatch(&self, call: &Call) -> impl Future<Output = Reply<Message>> + Send {
        dispatch(self, call)
    }

    fn error_reply(&self, call: &Call, e: &BusError) -> zbus::Result<Message> {
        error_reply(call, e)
    }
}

fn error_reply(call: &Call, e: &BusError) -> zbus::Result<Message> {
    let name = e.name();
    Message::error(&call.header(), name.as_str()).build(&(e.to_string(),))
}

async fn dispatch(ctx: &Ctx, call: &Call) -> Reply<Message> {
    let hdr = call.header();
    let path = hdr.path().map(|p| p.as_str()).unwrap_or("/");
    let member = hdr.member().map(|m| m.as_str()).unwrap_or_default();
    let target = paths::parse(path);
    // The interface field is optional; without it, the member names the interface.
    let iface = match hdr.interface() {
        Some(i) => i.as_str().to_owned(),
        None => implied_interface(ctx, &target, member).to_owned(),
    };
    if iface == PEER {
        return super::objects::peer(call, member);
    }
    if target == Target::Foreign || target == Target::Invalid {
        return Err(Error::NotFound(format!("no object at path '{path}'")).into());
    }
    match iface.as_str() {
        INTROSPECTABLE if member == "Introspect" => {
            super::objects::introspect(ctx, call, &target).await
        }
        PROPERTIES => super::objects::properties(ctx, call, &target, member).await,
        OBJECT_MANAGER if target == Target::Manager && member == "GetManagedObjects" => {
            check_signature(call, "")?;
            super::objects::managed_objects(ctx, call).await
        }
        MANAGER_IFACE if target == Target::Manager => {
            check_method(ctx, call, &ctx.schema.manager, member)?;
            super::manager::call(ctx, call, member).await
        }
        DOMAIN_IFACE => {
            let Target::Domain(uuid) = target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.domain, member)?;
            let dom = super::objects::domain(ctx, &uuid, path)?;
            super::domain::call(ctx, call, &dom, member).await
        }
        SNAPSHOT_IFACE => {
            let Target::Snapshot(uuid, name) = &target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.snapshot, member)?;
            let dom = super::objects::domain(ctx, uuid, path)?;
            super::snapshot::call(ctx, call, &dom, name, member).await
        }
        _ => Err(no_interface(&iface, path)),
    }
}

fn no_interface(iface: &str, path: &str) -> BusError {
    BusError::Standard(
        "UnknownInterface",
        format!("object '{path}' has no interface '{iface}'"),
    )
}

fn implied_interface(ctx: &Ctx, target: &Target, member: &str) -> &'static str {
    let own = match target {
        Target::Manager => Some((&ctx.schema.manager, MANAGER_IFACE)),
        Target::Domain(_) => Some((&ctx.schema.domain, DOMAIN_IFACE)),
        Target::Snapshot(..) => Some((&ctx.schema.snapshot, SNAPSHOT_IFACE)),
        _ => None,
    };
    match (own, member) {
        (Some((i, name)), m) if i.methods.contains_key(m) => name,
        (_, "Ping" | "GetMachineId") => PEER,
        (_, "Introspect") => INTROSPECTABLE,
        (_, "Get" | "GetAll" | "Set") => PROPERTIES,
        (_, "GetManagedObjects") => OBJECT_MANAGER,
        _ => "",
    }
}

/// The member must exist in `iface` and the body must have its declared signature.
fn check_method(
    _ctx: &Ctx,
    call: &Call,
    iface: &super::schema::Interface,
    member: &str,
) -> Reply<()> {
    let m = iface
        .methods
        .get(member)
        .ok_or_else(|| BusError::unknown_method(&iface.name, member))?;
    check_signature(call, &m.in_sig)
}

pub(crate) fn check_signature(call: &Call, want: &str) -> Reply<()> {
    let hdr = call.header();
    let got = hdr.signature().to_string_no_parens();
    if got == want {
        Ok(())
    } else {
        Err(BusError::invalid_args(format!(
            "{} expects arguments of type '{want}', got '{got}'",
            hdr.member().map(|m| m.as_str()).unwrap_or_default()
        )))
    }
}
