//! Passing descriptors to a client as libvirt does: a `REPLY_WITH_FDS` packet whose body
//! starts with the number of descriptors, then each descriptor on its own `SCM_RIGHTS`
//! message carrying one byte, which libvirt.so reads after the packet.

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
};

use tokio::{io::Interest, net::UnixStream};

use super::{
    frame::{Header, MsgType, Status, packet},
    xdr::encode,
};

/// The reply to call `h` announcing `n` descriptors (and no other result).
pub fn reply(h: &Header, n: u32) -> Vec<u8> {
    let rh = Header {
        kind: MsgType::ReplyWithFds,
        status: Status::Ok,
        ..*h
    };
    packet(&rh, &encode(&n))
}

/// Send `fd` over `sock`, after the packet that announced it.
pub async fn send(sock: &UnixStream, fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    loop {
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || send_one(sock.as_raw_fd(), raw)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// One `sendmsg` of a zero byte with `fd` in its `SCM_RIGHTS` control message.
fn send_one(sock: i32, fd: i32) -> io::Result<()> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds one cmsghdr with room for one descriptor.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the control message"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            (&raw const fd).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<i32>(),
        );
    }
    // SAFETY: msg is fully initialized and its buffers are live.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    match n {
        1 => Ok(()),
        n if n < 0 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::other("the descriptor's byte was not sent")),
    }
}

/// The read half of a client's socket, read with `recvmsg` so that descriptors passed with
/// the bytes (`CALL_WITH_FDS`) are kept, in arrival order, instead of dropped by the kernel.
pub struct FdReader {
    half: tokio::net::unix::OwnedReadHalf,
    received: Received,
}

/// Descriptors received and not yet claimed by a call.
pub type Received = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<OwnedFd>>>;

impl FdReader {
    pub fn new(half: tokio::net::unix::OwnedReadHalf, received: Received) -> Self {
        Self { half, received }
    }
}

impl tokio::io::AsyncRead for FdReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        let sock: &UnixStream = this.half.as_ref();
        loop {
            std::task::ready!(sock.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match sock.try_io(Interest::READABLE, || {
                recv_with_fds(sock.as_raw_fd(), unfilled, &this.received)
            }) {
                Ok(n) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
}

/// One `recvmsg` into `buf`, queueing the descriptors of its `SCM_RIGHTS` messages.
fn recv_with_fds(sock: i32, buf: &mut [u8], received: &Received) -> io::Result<usize> {
    use std::os::fd::FromRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // room for as many descriptors as one call may pass
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(4 * super::lxcproto::FDS_MAX) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg is fully initialized and its buffers are live.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let mut q = received.lock().unwrap_or_else(|e| e.into_inner());
                for i in 0..len / 4 {
                    let mut fd = 0i32;
                    std::ptr::copy_nonoverlapping(data.add(i * 4), (&raw mut fd).cast::<u8>(), 4);
                    q.push_back(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}

/// The descriptors a `CALL_WITH_FDS` packet's `body` announces (its first word), each
/// read with its byte after the packet, and the call's arguments.
pub async fn claim<'b, R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    received: &Received,
    body: &'b [u8],
) -> io::Result<(Vec<OwnedFd>, &'b [u8])> {
    use tokio::io::AsyncReadExt;
    let Some((n, args)) = body.split_first_chunk::<4>() else {
        return Err(io::Error::other("no descriptor count in the call"));
    };
    let n = u32::from_be_bytes(*n);
    if n > super::lxcproto::FDS_MAX {
        return Err(io::Error::other(format!(
            "too many descriptors to receive: {n}"
        )));
    }
    let mut bytes = vec![0u8; n as usize];
    rd.read_exact(&mut bytes).await?;
    let mut q = received.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() < n as usize {
        return Err(io::Error::other(format!(
            "the call announced {n} descriptors, {} arrived",
            q.len()
        )));
    }
    Ok((q.drain(..n as usize).collect(), args))
}
