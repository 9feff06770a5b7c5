//! Reads method calls off a connection and hands each to its front end, in its own task, so
//! that a slow call never delays another; the front end's reply or error goes back.

use std::{future::Future, num::NonZeroUsize, pin::Pin, sync::Arc};

use zbus::{
    MatchRule, Message, MessageStream, export::futures_core::Stream, message::Flags, message::Type,
};

use super::{Call, activity::Activity, authz::Caller, errors::StandardError};

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
    while let Some(item) = next(&mut stream).await {
        match item {
            Ok(msg) => {
                let front = front.clone();
                let call = activity.begin();
                tokio::spawn(async move {
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

pub(crate) fn check_signature(call: &Call, want: &str) -> Result<(), StandardError> {
    let hdr = call.header();
    let got = hdr.signature().to_string_no_parens();
    if got == want {
        Ok(())
    } else {
        Err(StandardError::invalid_args(format!(
            "{} expects arguments of type '{want}', got '{got}'",
            hdr.member().map(|m| m.as_str()).unwrap_or_default()
        )))
    }
}
