//! One client connection: its peer's credentials, the authentication handshake, the URI it
//! opened, and the loop that reads its packets and writes the replies.
//!
//! Calls run concurrently (at most [`MAX_CALLS`] at once, as libvirtd's
//! `max_client_requests`), so a keepalive ping is answered while a guest starts. Replies go
//! through a bounded queue to one writer: a client that stops reading stalls only itself.

use std::{os::fd::OwnedFd, sync::Arc};

use tokio::{
    io::AsyncWriteExt,
    net::UnixStream,
    sync::{Notify, Semaphore, mpsc},
};

use super::{
    Shared, View,
    dispatch::{self, Session},
    error::{RpcError, RpcResult, VIR_ERR_AUTH_FAILED, VIR_ERR_INTERNAL_ERROR, VIR_ERR_NO_CONNECT},
    events::Listener,
    fds,
    frame::{FrameError, Header, MsgType, Status, packet, read_packet},
    lxcproto,
    proto::{
        AUTH_NONE, AUTH_POLKIT, AuthListRet, AuthPolkitRet, ConnectOpenArgs, KEEPALIVE_PING,
        KEEPALIVE_PONG, KEEPALIVE_PROGRAM, KEEPALIVE_VERSION, REMOTE_PROGRAM, REMOTE_VERSION,
        procs,
    },
    qemu,
    stream::{self, Incoming, Route, Streams},
    streamproto, transfer,
    xdr::{Array, Reader, encode},
};
use crate::server::authz::{Caller, Peer};

/// `virConnectFlags`' read-only bit.
const VIR_CONNECT_RO: u32 = 1;

/// Calls of one client running at once.
const MAX_CALLS: usize = 5;
/// Replies waiting for a client that reads slowly.
const QUEUE: usize = 64;
/// Bytes read from a client at once.
const READ_BUFFER: usize = 64 * 1024;

/// What the connection has established so far.
struct State {
    /// Whether the peer may call more than the `AUTH_*` procedures.
    authenticated: bool,
    /// Whether the peer is offered no authentication (root, or a session's own user).
    auth_none: bool,
    session: Option<Arc<Session>>,
    /// Where replies and events go out.
    out: mpsc::Sender<Vec<u8>>,
    /// Notified when the peer stops reading its events.
    kick: Arc<Notify>,
    /// Connected to the read-only socket.
    read_only: bool,
}

/// Serve one client; on the read-only socket (`read_only`) every connection is read-only
/// and needs no authentication (each call is still authorized).
pub(super) async fn run(stream: UnixStream, shared: Arc<Shared>, id: u64, read_only: bool) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("RPC client {id}: cannot read its credentials: {e}");
            return;
        }
    };
    let uid = cred.uid();
    let pid = cred.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    // SAFETY: geteuid cannot fail.
    let own = unsafe { libc::geteuid() };
    if !shared.system && uid != own && uid != 0 {
        tracing::warn!("RPC client {id}: uid {uid} may not use a session instance of uid {own}");
        return;
    }
    let auth_none = uid == 0 || !shared.system || read_only;
    let caller = Caller {
        sender: format!("rpc:{id}"),
        interactive: false,
        peer: Peer::Process {
            pid,
            start_time: start_time(pid).unwrap_or(0),
            uid,
        },
    };
    tracing::debug!("RPC client {id}: pid {pid} uid {uid} connected");
    let (rd, mut wr) = stream.into_split();
    // a packet's length and its body in one read, and a client's queued calls in one more
    // descriptors a call passes are kept as they arrive, then claimed by the call
    let received = fds::Received::default();
    let mut rd =
        tokio::io::BufReader::with_capacity(READ_BUFFER, fds::FdReader::new(rd, received.clone()));
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    // replies that pass descriptors: the packet, then each descriptor
    let (fd_tx, mut fd_rx) = mpsc::channel::<(Vec<u8>, Vec<OwnedFd>)>(1);
    let writer = tokio::spawn(async move {
        loop {
            let (p, fd) = tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => (p, None),
                    None => break,
                },
                Some((p, fds)) = fd_rx.recv() => (p, Some(fds)),
            };
            let mut r = wr.write_all(&p).await;
            for fd in fd.iter().flatten() {
                if r.is_err() {
                    break;
                }
                r = fds::send(wr.as_ref(), fd).await;
            }
            if let Err(e) = r {
                tracing::debug!("RPC client {id}: cannot write: {e}");
                break;
            }
        }
    });
    let kick = Arc::new(Notify::new());
    let mut state = State {
        authenticated: auth_none,
        auth_none,
        session: None,
        out: tx.clone(),
        kick: kick.clone(),
        read_only,
    };
    let slots = Arc::new(Semaphore::new(MAX_CALLS));
    let streams = Arc::new(Streams::default());
    loop {
        let read = tokio::select! {
            r = read_packet(&mut rd) => r,
            () = kick.notified() => break,
        };
        let pkt = match read {
            Ok(p) => p,
            Err(FrameError::Closed) => break,
            Err(e) => {
                tracing::info!("RPC client {id}: closing the connection: {e}");
                break;
            }
        };
        let h = pkt.header;
        match (h.prog, h.kind) {
            (KEEPALIVE_PROGRAM, MsgType::Message) if h.vers == KEEPALIVE_VERSION => {
                if h.proc_ == KEEPALIVE_PING {
                    let pong = Header {
                        proc_: KEEPALIVE_PONG,
                        serial: 0,
                        ..h
                    };
                    if tx.send(packet(&pong, &[])).await.is_err() {
                        break;
                    }
                }
            }
            (_, MsgType::Call) => {
                let early = match early_call(&shared, &caller, &mut state, &h, &pkt.body) {
                    Some(r) => r,
                    None if h.proc_ == procs::DOMAIN_OPEN_CONSOLE => {
                        // a call that opens a stream: answered, then pumped
                        let session = state.session.clone();
                        let (shared, tx, streams) = (shared.clone(), tx.clone(), streams.clone());
                        tokio::spawn(async move {
                            let r = match &session {
                                Some(s) => dispatch::console::open(&shared, s, &pkt.body).await,
                                None => Err(not_open()),
                            };
                            match r {
                                Ok(fd) => {
                                    if tx.send(reply(&h, Ok(Vec::new()))).await.is_ok() {
                                        stream::pump(fd, h, tx, streams).await;
                                    }
                                }
                                Err(e) => {
                                    let _ = tx.send(reply(&h, Err(e))).await;
                                }
                            }
                        });
                        continue;
                    }
                    None if h.proc_ == streamproto::procs::DOMAIN_OPEN_GRAPHICS_FD => {
                        // answered with the descriptor, beside the other calls
                        let session = state.session.clone();
                        let (shared, tx, fd_tx) = (shared.clone(), tx.clone(), fd_tx.clone());
                        tokio::spawn(async move {
                            let r = match &session {
                                Some(s) => dispatch::graphics::open(&shared, s, &pkt.body).await,
                                None => Err(not_open()),
                            };
                            match r {
                                Ok(fd) => {
                                    let _ = fd_tx.send((fds::reply(&h, 1), vec![fd])).await;
                                }
                                Err(e) => {
                                    let _ = tx.send(reply(&h, Err(e))).await;
                                }
                            }
                        });
                        continue;
                    }
                    None if h.prog == lxcproto::LXC_PROGRAM => {
                        // answered with the namespaces' descriptors
                        let session = state.session.clone();
                        let (shared, tx, fd_tx) = (shared.clone(), tx.clone(), fd_tx.clone());
                        tokio::spawn(async move {
                            let r = match &session {
                                Some(s) => lxcproto::lxc_call(&shared, s, h.proc_, &pkt.body).await,
                                None => Err(not_open()),
                            };
                            match r {
                                Ok(fds) if fds.is_empty() => {
                                    let _ = tx.send(reply(&h, Ok(Vec::new()))).await;
                                }
                                Ok(fds) => {
                                    let n = fds.len() as u32;
                                    let _ = fd_tx.send((fds::reply(&h, n), fds)).await;
                                }
                                Err(e) => {
                                    let _ = tx.send(reply(&h, Err(e))).await;
                                }
                            }
                        });
                        continue;
                    }
                    None if streamproto::procs::opens_stream(h.proc_) => {
                        // a volume transfer: answered, then pumped
                        match state.session.clone() {
                            Some(s) => {
                                let (shared, tx, streams) =
                                    (shared.clone(), tx.clone(), streams.clone());
                                tokio::spawn(transfer::serve(shared, s, h, pkt.body, tx, streams));
                            }
                            None => {
                                if tx.send(reply(&h, Err(not_open()))).await.is_err() {
                                    break;
                                }
                            }
                        }
                        continue;
                    }
                    None => {
                        // an ordinary call: run it beside the others
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break;
                        };
                        let session = state.session.clone();
                        let shared = shared.clone();
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let r = match &session {
                                Some(s) if h.prog == qemu::QEMU_PROGRAM => {
                                    qemu::call(&shared, s, h.proc_, &pkt.body).await
                                }
                                Some(s) => dispatch::call(&shared, s, h.proc_, &pkt.body).await,
                                None => Err(not_open()),
                            };
                            let _ = tx.send(reply(&h, r)).await;
                            drop(permit);
                        });
                        continue;
                    }
                };
                if tx.send(reply(&h, early)).await.is_err() {
                    break;
                }
                if h.prog == REMOTE_PROGRAM && h.proc_ == procs::CONNECT_CLOSE {
                    state.session = None;
                }
            }
            (_, kind @ (MsgType::Stream | MsgType::StreamHole)) => match streams.route(&h) {
                Route::To(st) => {
                    let m = match (kind, h.status) {
                        (MsgType::StreamHole, Status::Continue) => {
                            match transfer::hole_length(&pkt.body) {
                                Ok(n) => Incoming::Hole(n),
                                Err(e) => {
                                    tracing::info!("RPC client {id}: {}", e.message);
                                    Incoming::Abort
                                }
                            }
                        }
                        (_, Status::Continue) => Incoming::Data(pkt.body),
                        (_, Status::Ok) => Incoming::Finish,
                        _ => Incoming::Abort,
                    };
                    // written to the console before the next packet is read: flow control
                    let _ = st.send(m).await;
                }
                Route::Ended(Some(answer)) => {
                    if tx.send(answer).await.is_err() {
                        break;
                    }
                }
                Route::Ended(None) => {}
                Route::Unknown => {
                    tracing::info!(
                        "RPC client {id}: closing the connection: stream packet for serial {} \
                         which opened no stream",
                        h.serial
                    );
                    break;
                }
            },
            (_, MsgType::CallWithFds) => {
                // the descriptors follow the packet: read them before any other packet
                let (files, args) = match fds::claim(&mut rd, &received, &pkt.body).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!("RPC client {id}: closing the connection: {e}");
                        break;
                    }
                };
                let refused = if !state.authenticated {
                    Some(RpcError::remote(
                        VIR_ERR_AUTH_FAILED,
                        "authentication required".into(),
                    ))
                } else if h.prog != REMOTE_PROGRAM
                    || h.vers != REMOTE_VERSION
                    || !lxcproto::procs::WITH_FILES.contains(&h.proc_)
                {
                    Some(RpcError::rpc(format!(
                        "procedure {} of program {} takes no file descriptors",
                        h.proc_, h.prog
                    )))
                } else {
                    None
                };
                if let Some(e) = refused {
                    if tx.send(reply(&h, Err(e))).await.is_err() {
                        break;
                    }
                    continue;
                }
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let args = args.to_vec();
                let (session, shared, tx) = (state.session.clone(), shared.clone(), tx.clone());
                tokio::spawn(async move {
                    let r = match &session {
                        Some(s) => lxcproto::call(&shared, s, h.proc_, &args, files).await,
                        None => Err(not_open()),
                    };
                    let _ = tx.send(reply(&h, r)).await;
                    drop(permit);
                });
            }
            (prog, kind) => {
                tracing::info!(
                    "RPC client {id}: closing the connection: unexpected {kind:?} packet \
                     of program {prog:#x} procedure {}",
                    h.proc_
                );
                break;
            }
        }
    }
    // every sender gone (the state's, its listener's), the writer ends
    drop(state);
    drop(tx);
    drop(fd_tx);
    let _ = writer.await;
    shared.authz.forget(&caller.sender);
    tracing::debug!("RPC client {id}: disconnected");
}

/// A call answered in order, before any later packet is read: the program and procedure
/// checks, authentication, and opening or closing the connection. `None` for the calls that
/// run concurrently.
fn early_call(
    shared: &Shared,
    caller: &Caller,
    state: &mut State,
    h: &Header,
    body: &[u8],
) -> Option<RpcResult<Vec<u8>>> {
    if (h.prog == qemu::QEMU_PROGRAM && h.vers == qemu::QEMU_VERSION)
        || (h.prog == lxcproto::LXC_PROGRAM && h.vers == lxcproto::LXC_VERSION)
    {
        // run concurrently, once authenticated, as the remote program's calls
        return (!state.authenticated).then(|| {
            Err(RpcError::remote(
                VIR_ERR_AUTH_FAILED,
                "authentication required".into(),
            ))
        });
    }
    if h.prog != REMOTE_PROGRAM || h.vers != REMOTE_VERSION {
        return Some(Err(RpcError::rpc(format!(
            "cannot find program {} version {}",
            h.prog, h.vers
        ))));
    }
    match h.proc_ {
        procs::AUTH_LIST => {
            let t = if state.auth_none {
                AUTH_NONE
            } else {
                AUTH_POLKIT
            };
            Some(Ok(encode(&AuthListRet {
                types: Array(vec![t]),
            })))
        }
        procs::AUTH_POLKIT => Some(if state.auth_none {
            Err(auth_failed())
        } else {
            // The peer is who SO_PEERCRED says; polkit decides each call it makes.
            state.authenticated = true;
            Ok(encode(&AuthPolkitRet { complete: 1 }))
        }),
        procs::AUTH_SASL_INIT | procs::AUTH_SASL_START | procs::AUTH_SASL_STEP => {
            Some(Err(auth_failed()))
        }
        _ if !state.authenticated => Some(Err(RpcError::remote(
            VIR_ERR_AUTH_FAILED,
            "authentication required".into(),
        ))),
        procs::CONNECT_OPEN => Some(open(shared, caller, state, body)),
        procs::CONNECT_CLOSE => Some(match state.session {
            Some(_) => Reader::decode::<()>(body)
                .map(|()| Vec::new())
                .map_err(Into::into),
            None => Err(not_open()),
        }),
        procs::CONNECT_SUPPORTS_FEATURE => Some(dispatch::supports_feature(body)),
        _ => None,
    }
}

fn open(shared: &Shared, caller: &Caller, state: &mut State, body: &[u8]) -> RpcResult<Vec<u8>> {
    let args: ConnectOpenArgs = Reader::decode(body)?;
    if state.session.is_some() {
        return Err(RpcError::remote(
            VIR_ERR_INTERNAL_ERROR,
            "internal error: connection already open".into(),
        ));
    }
    let name = args.name.unwrap_or_default();
    let (view, uri) = pick_view(&shared.views, &name, shared.system)?;
    tracing::debug!("RPC {}: opened {uri}", caller.sender);
    let listener = Listener::new(
        state.out.clone(),
        caller.clone(),
        shared.authz.clone(),
        state.kick.clone(),
    );
    state.session = Some(Arc::new(Session {
        view,
        caller: caller.clone(),
        uri,
        readonly: state.read_only || args.flags & VIR_CONNECT_RO != 0,
        listener,
    }));
    Ok(Vec::new())
}

/// The view a URI names, and the URI as `virConnectGetURI` reports it. An empty name takes
/// the first view (libvirt's default URI).
fn pick_view(views: &[Arc<View>], name: &str, system: bool) -> RpcResult<(Arc<View>, String)> {
    let no_driver = || {
        RpcError::remote(
            VIR_ERR_NO_CONNECT,
            format!("no connection driver available for {name}"),
        )
    };
    let default_path = |scheme: &str| match (scheme, system) {
        ("test", _) => "/default",
        (_, true) => "/system",
        (_, false) => "/session",
    };
    if name.is_empty() {
        let v = views.first().ok_or_else(no_driver)?;
        return Ok((
            v.clone(),
            format!("{}://{}", v.scheme, default_path(v.scheme)),
        ));
    }
    let bare = name.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = bare.split_once("://").ok_or_else(no_driver)?;
    // only local URIs: no host (the client's transport already reached us)
    let path = rest.strip_prefix('/').map(|p| format!("/{p}"));
    let view = views
        .iter()
        .find(|v| v.scheme == scheme)
        .ok_or_else(no_driver)?;
    let path = match (scheme, path.as_deref()) {
        ("qemu", Some(p @ ("/system" | "/session"))) => p.to_owned(),
        ("test", Some("/default")) => "/default".to_owned(),
        // libvirt's LXC driver takes lxc:/// and lxc:///system, and names itself lxc:///
        ("lxc", Some("/" | "/system")) => "/".to_owned(),
        _ => return Err(no_driver()),
    };
    Ok((view.clone(), format!("{scheme}://{path}")))
}

fn auth_failed() -> RpcError {
    RpcError::remote(VIR_ERR_AUTH_FAILED, "authentication failed".into())
}

fn not_open() -> RpcError {
    RpcError::remote(
        VIR_ERR_INTERNAL_ERROR,
        "internal error: connection not open".into(),
    )
}

/// The reply packet to call `h`.
pub(super) fn reply(h: &Header, r: RpcResult<Vec<u8>>) -> Vec<u8> {
    let (status, body) = match r {
        Ok(b) => (Status::Ok, b),
        Err(e) => {
            tracing::debug!("RPC procedure {} failed: {}", h.proc_, e.message);
            (Status::Error, encode(&e.wire()))
        }
    };
    let rh = Header {
        kind: MsgType::Reply,
        status,
        ..*h
    };
    packet(&rh, &body)
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat` field 22), which
/// polkit takes with the pid to name one process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces and parentheses: count from the last ')'
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::proto;

    fn call(proc_: i32) -> Header {
        Header {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_VERSION,
            proc_,
            kind: MsgType::Call,
            serial: 1,
            status: Status::Ok,
        }
    }

    fn code(r: Option<RpcResult<Vec<u8>>>) -> i32 {
        match r {
            Some(Err(e)) => e.code,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn only_auth_procedures_before_authentication() {
        let shared = Shared {
            views: Vec::new(),
            authz: Arc::new(crate::server::authz::SessionOwner),
            system: true,
        };
        let caller = Caller {
            sender: "rpc:1".into(),
            interactive: false,
            peer: Peer::Process {
                pid: 1,
                start_time: 0,
                uid: 1000,
            },
        };
        // an unprivileged peer of the system instance: offered polkit
        let (out, _rx) = mpsc::channel(1);
        let kick = Arc::new(Notify::new());
        let mut st = State {
            authenticated: false,
            auth_none: false,
            session: None,
            out: out.clone(),
            kick: kick.clone(),
            read_only: false,
        };
        let r = early_call(&shared, &caller, &mut st, &call(procs::AUTH_LIST), &[]);
        let Some(Ok(body)) = r else { panic!("{r:?}") };
        let types: AuthListRet = Reader::decode(&body).expect("auth list");
        assert_eq!(types.types.0, [AUTH_POLKIT]);
        for p in [
            procs::CONNECT_OPEN,
            procs::CONNECT_SUPPORTS_FEATURE,
            procs::CONNECT_GET_URI,
            procs::CONNECT_CLOSE,
        ] {
            let r = early_call(&shared, &caller, &mut st, &call(p), &[]);
            assert_eq!(code(r), VIR_ERR_AUTH_FAILED, "procedure {p}");
        }
        let r = early_call(&shared, &caller, &mut st, &call(procs::AUTH_SASL_INIT), &[]);
        assert_eq!(code(r), VIR_ERR_AUTH_FAILED);
        assert!(!st.authenticated);
        let r = early_call(&shared, &caller, &mut st, &call(procs::AUTH_POLKIT), &[]);
        assert!(matches!(r, Some(Ok(_))), "{r:?}");
        assert!(st.authenticated);
        // now past the gate: no URI served here
        let open = encode(&ConnectOpenArgs {
            name: Some("qemu:///system".into()),
            flags: 0,
        });
        let r = early_call(&shared, &caller, &mut st, &call(procs::CONNECT_OPEN), &open);
        assert_eq!(code(r), VIR_ERR_NO_CONNECT);
        // root is offered no authentication, and may not ask for polkit's
        let mut root = State {
            authenticated: true,
            auth_none: true,
            session: None,
            out,
            kick,
            read_only: false,
        };
        let r = early_call(&shared, &caller, &mut root, &call(procs::AUTH_POLKIT), &[]);
        assert_eq!(code(r), VIR_ERR_AUTH_FAILED);
        // other programs and versions are not found
        let mut other = call(procs::AUTH_LIST);
        other.vers = 2;
        let r = early_call(&shared, &caller, &mut root, &other, &[]);
        assert_eq!(code(r), crate::rpc::error::VIR_ERR_RPC);
    }

    #[test]
    fn start_time_of_this_process() {
        assert!(start_time(std::process::id()).is_some());
    }

    #[test]
    fn the_features_asked_at_connection() {
        let ask = |f: i32| {
            let r = dispatch::supports_feature(&encode(&proto::SupportsFeatureArgs { feature: f }))
                .expect("answer");
            Reader::decode::<proto::IntRet>(&r).expect("int").value
        };
        assert_eq!(ask(proto::FEATURE_PROGRAM_KEEPALIVE), 1);
        assert_eq!(ask(proto::FEATURE_REMOTE_CLOSE_CALLBACK), 1);
        assert_eq!(ask(proto::FEATURE_REMOTE_EVENT_CALLBACK), 1);
        // migration version 1, which libvirt's QEMU driver does not announce either
        assert_eq!(ask(1), 0);
        assert_eq!(ask(7), 1);
    }
}
