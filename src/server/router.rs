//! Reads method calls off a connection and hands each to its front end, in its own task, so
//! that a slow call never delays another; the front end's reply or error goes back.

use std::{future::Future, num::NonZeroUsize, pin::Pin, sync::Arc};

use zbus::{
    MatchRule, Message, MessageStream, export::futures_core::Stream, message::Flags, message::Type,
};

use super::{
    Call,
    activity::Activity,
    authz::{Caller, Peer},
    errors::StandardError,
    fairness::{Fairness, Limits},
};

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

    /// The interfaces whose method replies are checked against their declared signatures
    /// (in debug builds and tests), as requests always are.
    fn interfaces(&self) -> Vec<&super::schema::Interface> {
        Vec::new()
    }
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
            peer: Peer::Bus(msg.clone()),
        };
        (flags.contains(Flags::NO_REPLY_EXPECTED), caller)
    };
    let call = Call { msg, caller };
    let result = front.dispatch(&call).await;
    if no_reply {
        return;
    }
    let reply = match result {
        Ok(m) if cfg!(debug_assertions) => match reply_mismatch(front, &call, &m) {
            None => Ok(m),
            Some(why) => {
                tracing::error!("{why}");
                Message::error(&call.header(), "org.freedesktop.DBus.Error.Failed").build(&(why,))
            }
        },
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

/// Why `reply` does not match the out signature its interface declares for the call, if it
/// does not. Calls of interfaces the front end does not declare are not checked.
fn reply_mismatch<F: Frontend>(front: &F, call: &Call, reply: &Message) -> Option<String> {
    let hdr = call.header();
    let iface = hdr.interface()?;
    let member = hdr.member()?;
    let decl = front
        .interfaces()
        .into_iter()
        .find(|i| i.name == iface.as_str())?;
    let want = &decl.methods.get(member.as_str())?.out_sig;
    let got = reply.header().signature().to_string();
    (!body_matches(&got, want)).then(|| {
        format!("the reply to {iface}.{member} has signature '{got}', but its interface declares '{want}'")
    })
}

/// Whether a body whose signature prints as `got` (zbus's form) carries the arguments
/// `want` declares. zbus reads a body of one struct and a body of that struct's fields as
/// the same signature, so one enclosing pair of parentheses is not told apart; every type
/// inside is.
fn body_matches(got: &str, want: &str) -> bool {
    fn bare(s: &str) -> &str {
        match s.strip_prefix('(').and_then(|i| i.strip_suffix(')')) {
            Some(inner) if encloses(s) => inner,
            _ => s,
        }
    }
    /// Whether the first '(' of `s` closes at its last character.
    fn encloses(s: &str) -> bool {
        let mut depth = 0;
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                return i == s.len() - 1;
            }
        }
        false
    }
    bare(got) == bare(want)
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

#[cfg(test)]
mod tests {
    use zbus::Message;

    use super::body_matches;

    fn sig_of<B: serde::Serialize + zbus::DynamicType>(body: &B) -> String {
        let call = Message::method_call("/", "M").build(&()).expect("body");
        let reply = Message::method_return(&call.header())
            .build(body)
            .expect("reply body");
        reply.header().signature().to_string()
    }

    #[test]
    fn reply_bodies_are_told_apart() {
        let one_struct = sig_of(&((1i32, 2i32),));
        let two_ints = sig_of(&(1i32, 2i32));
        assert!(body_matches(&one_struct, "(ii)"), "{one_struct}");
        assert!(body_matches(&two_ints, "ii"), "{two_ints}");
        assert!(!body_matches(&two_ints, "iu"), "{two_ints}");
        assert!(!body_matches(&sig_of(&((1i32, 2i32), 3u32)), "(ii)"));
        assert!(body_matches(&sig_of(&((1i32, 2i32), 3u32)), "(ii)u"));
        assert!(body_matches(&sig_of(&()), ""));
        assert!(body_matches(&sig_of(&"x"), "s"));
        assert!(!body_matches(&sig_of(&"x"), "o"));
    }
}
