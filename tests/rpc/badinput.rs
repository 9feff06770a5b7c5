//! What no real client sends: the daemon answers with libvirt's error or closes that one
//! connection, and keeps serving everyone else.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    time::Duration,
};

use virtbus::rpc::{
    frame::{Header, MsgType, PACKET_MAX, Status, packet},
    proto::{
        ConnectOpenArgs, DefineXmlArgs, DomainArgs, DomainFlagsArgs, DomainRet, KEEPALIVE_PROGRAM,
        MessageError, REMOTE_PROGRAM, REMOTE_VERSION, StringRet, procs,
    },
    xdr::{Reader, encode},
};

use super::Rpc;

pub(super) fn connect(r: &Rpc) -> UnixStream {
    let s = UnixStream::connect(&r.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

pub(super) fn call(proc_: i32, serial: u32) -> Header {
    Header {
        prog: REMOTE_PROGRAM,
        vers: REMOTE_VERSION,
        proc_,
        kind: MsgType::Call,
        serial,
        status: Status::Ok,
    }
}

/// The next packet: header and body.
fn read(s: &mut UnixStream) -> (Header, Vec<u8>) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("reply length");
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut buf).expect("reply");
    let mut rd = Reader::new(&buf[..24]);
    let h: Header = virtbus::rpc::xdr::Xdr::get(&mut rd).expect("header");
    (h, buf[24..].to_vec())
}

/// Send a call and read its reply.
pub(super) fn roundtrip(s: &mut UnixStream, h: &Header, body: &[u8]) -> (Header, Vec<u8>) {
    s.write_all(&packet(h, body)).expect("send");
    let (rh, b) = read(s);
    assert_eq!(
        (rh.serial, rh.proc_, rh.kind),
        (h.serial, h.proc_, MsgType::Reply)
    );
    (rh, b)
}

pub(super) fn error_of(h: &Header, body: &[u8]) -> MessageError {
    assert_eq!(h.status, Status::Error);
    Reader::decode(body).expect("virNetMessageError")
}

/// Whether the daemon closed the connection: a read sees the end, or a reset when the
/// daemon left bytes unread.
fn closed(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn open(s: &mut UnixStream) {
    open_with(s, 0);
}

fn open_with(s: &mut UnixStream, flags: u32) {
    let args = ConnectOpenArgs {
        name: Some("test:///default".into()),
        flags,
    };
    let (h, _) = roundtrip(s, &call(procs::CONNECT_OPEN, 1), &encode(&args));
    assert_eq!(h.status, Status::Ok);
}

#[tokio::test]
async fn protocol_errors_are_libvirt_errors() {
    let r = Rpc::start().await;
    let mut s = connect(&r);
    // an unknown program
    let mut h = call(1, 1);
    h.prog = 0x1234_5678;
    let (rh, b) = roundtrip(&mut s, &h, &[]);
    let e = error_of(&rh, &b);
    assert_eq!(e.code, 39, "{e:?}"); // VIR_ERR_RPC
    assert!(
        e.message
            .as_deref()
            .unwrap_or("")
            .contains("cannot find program")
    );
    // a call before the connection is open
    let (rh, b) = roundtrip(&mut s, &call(procs::CONNECT_GET_URI, 2), &[]);
    let e = error_of(&rh, &b);
    assert_eq!(e.code, 1, "{e:?}");
    assert!(
        e.message
            .as_deref()
            .unwrap_or("")
            .contains("connection not open")
    );
    // arguments cut short
    let (rh, b) = roundtrip(&mut s, &call(procs::CONNECT_OPEN, 3), &[0, 0, 0, 1, 0, 0]);
    assert_eq!(error_of(&rh, &b).code, 39);
    open(&mut s);
    // an unknown procedure, and one libvirt has that virtbus does not implement
    for (p, serial) in [(9999, 4), (443, 5)] {
        let (rh, b) = roundtrip(&mut s, &call(p, serial), &[]);
        let e = error_of(&rh, &b);
        assert_eq!(e.code, 3, "{e:?}"); // VIR_ERR_NO_SUPPORT
    }
    // a string longer than libvirt's limit
    let (rh, b) = roundtrip(
        &mut s,
        &call(procs::DOMAIN_LOOKUP_BY_NAME, 6),
        &[0xff, 0xff, 0xff, 0xff],
    );
    assert_eq!(error_of(&rh, &b).code, 39);
    // a domain that does not exist
    let (rh, b) = roundtrip(
        &mut s,
        &call(procs::DOMAIN_LOOKUP_BY_NAME, 7),
        &encode(&"nosuch".to_owned()),
    );
    assert_eq!(error_of(&rh, &b).code, 42); // VIR_ERR_NO_DOMAIN
    // keepalive: a ping is answered with a pong
    let ping = Header {
        prog: KEEPALIVE_PROGRAM,
        vers: 1,
        proc_: 1,
        kind: MsgType::Message,
        serial: 0,
        status: Status::Ok,
    };
    s.write_all(&packet(&ping, &[])).expect("ping");
    let (h, _) = read(&mut s);
    assert_eq!(
        (h.prog, h.proc_, h.kind),
        (KEEPALIVE_PROGRAM, 2, MsgType::Message)
    );
    // the connection still works
    let (rh, _) = roundtrip(&mut s, &call(procs::CONNECT_GET_URI, 8), &[]);
    assert_eq!(rh.status, Status::Ok);
}

#[tokio::test]
async fn broken_framing_closes_only_that_connection() {
    let r = Rpc::start().await;
    // a length over 32 MiB: closed before anything is read or allocated
    let mut s = connect(&r);
    s.write_all(&((PACKET_MAX as u32) + 1).to_be_bytes())
        .expect("send");
    assert!(closed(&mut s));
    // a length too short to hold a header
    let mut s = connect(&r);
    s.write_all(&[0, 0, 0, 8, 0, 0, 0, 0]).expect("send");
    assert!(closed(&mut s));
    // a packet cut short, then the client goes
    let mut s = connect(&r);
    let p = packet(&call(procs::AUTH_LIST, 1), &[]);
    s.write_all(&p[..p.len() - 3]).expect("send");
    drop(s);
    // a stream packet, which nothing opened
    let mut s = connect(&r);
    let mut h = call(procs::AUTH_LIST, 1);
    h.kind = MsgType::Stream;
    s.write_all(&packet(&h, &[1, 2, 3, 4])).expect("send");
    assert!(closed(&mut s));
    // a client that sends and never reads does not hold up the others
    let mut flood = connect(&r);
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let ping = packet(&call(procs::AUTH_LIST, 1), &[]);
    for _ in 0..200_000 {
        if flood.write_all(&ping).is_err() {
            break;
        }
    }
    // everyone else is served
    let list = r.ok("test+unix:///default", &["list", "--all"]);
    assert!(list.contains("test"), "{list}");
    drop(flood);
    assert!(r.daemon.log_text().contains("closing the connection"));
}

#[tokio::test]
async fn a_read_only_connection_changes_nothing() {
    let r = Rpc::start().await;
    let mut s = connect(&r);
    open_with(&mut s, 1); // VIR_CONNECT_RO
    let (h, b) = roundtrip(
        &mut s,
        &call(procs::DOMAIN_LOOKUP_BY_NAME, 2),
        &encode(&"test".to_owned()),
    );
    assert_eq!(h.status, Status::Ok);
    let dom = Reader::decode::<DomainRet>(&b).expect("domain").dom;
    // reads work
    let xml = DomainFlagsArgs {
        dom: dom.clone(),
        flags: 0,
    };
    let (h, b) = roundtrip(&mut s, &call(procs::DOMAIN_GET_XML_DESC, 3), &encode(&xml));
    assert_eq!(h.status, Status::Ok);
    assert!(
        Reader::decode::<StringRet>(&b)
            .expect("xml")
            .value
            .contains("<name>test</name>")
    );
    // changes and secrets do not (VIR_ERR_OPERATION_DENIED)
    let suspend = DomainArgs { dom: dom.clone() };
    let (h, b) = roundtrip(&mut s, &call(procs::DOMAIN_SUSPEND, 4), &encode(&suspend));
    let e = error_of(&h, &b);
    assert_eq!(e.code, 29, "{e:?}");
    assert_eq!(
        e.message.as_deref(),
        Some("operation forbidden: read only access prevents virDomainSuspend")
    );
    let secure = DomainFlagsArgs { dom, flags: 1 };
    let (h, b) = roundtrip(
        &mut s,
        &call(procs::DOMAIN_GET_XML_DESC, 5),
        &encode(&secure),
    );
    assert_eq!(error_of(&h, &b).code, 29);
    let define = DefineXmlArgs {
        xml: crate::support::test_domain("ro"),
    };
    let (h, b) = roundtrip(&mut s, &call(procs::DOMAIN_DEFINE_XML, 6), &encode(&define));
    assert_eq!(error_of(&h, &b).code, 29);
    // still running: nothing changed
    assert_eq!(
        r.ok("test+unix:///default", &["domstate", "test"]).trim(),
        "running"
    );
}
