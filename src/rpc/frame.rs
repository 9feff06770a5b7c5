//! libvirt's packet framing: a big-endian length word that counts itself, then the header
//! (program, version, procedure, type, serial, status), then the XDR body.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::xdr::{Reader, Xdr, XdrError};

/// libvirt's `VIR_NET_MESSAGE_MAX`: the longest packet, length word included.
pub const PACKET_MAX: usize = 32 * 1024 * 1024;
const LEN_SIZE: usize = 4;
const HEADER_SIZE: usize = 24;

/// `virNetMessageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    Call,
    Reply,
    Message,
    Stream,
    CallWithFds,
    ReplyWithFds,
    StreamHole,
    Other(i32),
}

impl MsgType {
    fn from_i32(n: i32) -> Self {
        match n {
            0 => Self::Call,
            1 => Self::Reply,
            2 => Self::Message,
            3 => Self::Stream,
            4 => Self::CallWithFds,
            5 => Self::ReplyWithFds,
            6 => Self::StreamHole,
            n => Self::Other(n),
        }
    }

    fn to_i32(self) -> i32 {
        match self {
            Self::Call => 0,
            Self::Reply => 1,
            Self::Message => 2,
            Self::Stream => 3,
            Self::CallWithFds => 4,
            Self::ReplyWithFds => 5,
            Self::StreamHole => 6,
            Self::Other(n) => n,
        }
    }
}

/// `virNetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
    Continue,
    Other(i32),
}

impl Status {
    fn from_i32(n: i32) -> Self {
        match n {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Continue,
            n => Self::Other(n),
        }
    }

    fn to_i32(self) -> i32 {
        match self {
            Self::Ok => 0,
            Self::Error => 1,
            Self::Continue => 2,
            Self::Other(n) => n,
        }
    }
}

/// `virNetMessageHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub prog: u32,
    pub vers: u32,
    pub proc_: i32,
    pub kind: MsgType,
    pub serial: u32,
    pub status: Status,
}

impl Xdr for Header {
    fn put(&self, w: &mut Vec<u8>) {
        self.prog.put(w);
        self.vers.put(w);
        self.proc_.put(w);
        self.kind.to_i32().put(w);
        self.serial.put(w);
        self.status.to_i32().put(w);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            prog: u32::get(r)?,
            vers: u32::get(r)?,
            proc_: i32::get(r)?,
            kind: MsgType::from_i32(i32::get(r)?),
            serial: u32::get(r)?,
            status: Status::from_i32(i32::get(r)?),
        })
    }
}

/// One packet read: its header and body.
#[derive(Debug)]
pub struct Packet {
    pub header: Header,
    pub body: Vec<u8>,
}

/// Why reading a packet stopped.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("packet length {0} is outside {min}..={PACKET_MAX}", min = LEN_SIZE + HEADER_SIZE)]
    Length(usize),
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad header: {0}")]
    Header(#[from] XdrError),
}

/// Read the next packet. A length out of bounds is refused before its body is read (the
/// connection is then beyond repair: nothing says where the next packet starts).
pub async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> Result<Packet, FrameError> {
    let mut len = [0u8; LEN_SIZE];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(LEN_SIZE + HEADER_SIZE..=PACKET_MAX).contains(&len) {
        return Err(FrameError::Length(len));
    }
    let mut buf = vec![0u8; len - LEN_SIZE];
    r.read_exact(&mut buf).await?;
    let mut rd = Reader::new(&buf[..HEADER_SIZE]);
    let header = Header::get(&mut rd)?;
    buf.drain(..HEADER_SIZE);
    Ok(Packet { header, body: buf })
}

/// A whole packet: length, `header`, `body`.
pub fn packet(header: &Header, body: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(LEN_SIZE + HEADER_SIZE + body.len());
    w.extend_from_slice(&[0; LEN_SIZE]);
    header.put(&mut w);
    w.extend_from_slice(body);
    let len = (w.len() as u32).to_be_bytes();
    w[..LEN_SIZE].copy_from_slice(&len);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_round_trip_and_bad_lengths_are_refused() {
        let h = Header {
            prog: 0x2000_8086,
            vers: 1,
            proc_: 66,
            kind: MsgType::Call,
            serial: 7,
            status: Status::Ok,
        };
        let p = packet(&h, &[0, 0, 0, 1]);
        assert_eq!(&p[..4], &[0, 0, 0, 32]);
        let got = read_packet(&mut &p[..]).await.expect("packet");
        assert_eq!(got.header, h);
        assert_eq!(got.body, [0, 0, 0, 1]);

        let huge = ((PACKET_MAX + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_packet(&mut &huge[..]).await,
            Err(FrameError::Length(_))
        ));
        let tiny = 8u32.to_be_bytes();
        assert!(matches!(
            read_packet(&mut &tiny[..]).await,
            Err(FrameError::Length(8))
        ));
        assert!(matches!(
            read_packet(&mut &p[..20]).await,
            Err(FrameError::Io(_))
        ));
        assert!(matches!(
            read_packet(&mut &[][..]).await,
            Err(FrameError::Closed)
        ));
    }
}
