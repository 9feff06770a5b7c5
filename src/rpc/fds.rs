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
