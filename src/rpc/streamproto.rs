//! The messages of the procedures that move more than one reply: volume transfers and
//! screenshots as streams, the graphics socket as a passed descriptor, and network events
//! with the network update they follow — written by hand from libvirt 9.0's
//! `remote_protocol.x` as [`super::proto`] is.

use super::{
    objproto::{Net, Vol},
    proto::Dom,
    xdr::xdr_struct,
};

/// `remote_procedure` numbers of these procedures.
pub mod procs {
    pub const STORAGE_VOL_UPLOAD: i32 = 208;
    pub const STORAGE_VOL_DOWNLOAD: i32 = 209;
    pub const DOMAIN_SCREENSHOT: i32 = 211;
    pub const NETWORK_UPDATE: i32 = 291;
    pub const CONNECT_NETWORK_EVENT_REGISTER_ANY: i32 = 313;
    pub const CONNECT_NETWORK_EVENT_DEREGISTER_ANY: i32 = 314;
    /// A message the daemon sends (not a call: not counted as implemented).
    pub const NETWORK_EVENT_LIFECYCLE: i32 = 315;
    pub const DOMAIN_OPEN_GRAPHICS_FD: i32 = 343;

    /// Every procedure above but the message, for the coverage count and its test.
    pub const IMPLEMENTED: &[i32] = &[
        STORAGE_VOL_UPLOAD,
        STORAGE_VOL_DOWNLOAD,
        DOMAIN_SCREENSHOT,
        NETWORK_UPDATE,
        CONNECT_NETWORK_EVENT_REGISTER_ANY,
        CONNECT_NETWORK_EVENT_DEREGISTER_ANY,
        DOMAIN_OPEN_GRAPHICS_FD,
    ];

    /// The calls that open a stream (answered, then pumped).
    pub fn opens_stream(p: i32) -> bool {
        matches!(
            p,
            STORAGE_VOL_UPLOAD | STORAGE_VOL_DOWNLOAD | DOMAIN_SCREENSHOT
        )
    }
}

/// `VIR_DRV_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER`: a client told so sends
/// `NETWORK_UPDATE`'s command and section in the protocol's order (older daemons took them
/// swapped, and clients that are not told swap them).
pub const FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER: i32 = 16;

/// `VIR_DRV_FEATURE_FD_PASSING`: replies may carry descriptors (`REPLY_WITH_FDS`).
pub const FEATURE_FD_PASSING: i32 = 8;

xdr_struct! {
    /// `remote_storage_vol_upload_args`, `remote_storage_vol_download_args`.
    VolTransferArgs { vol: Vol, offset: u64, length: u64, flags: u32 }
    /// `remote_stream_hole`: a hole in a sparse stream (a `STREAM_HOLE` packet's body).
    StreamHole { length: i64, flags: u32 }
    /// `remote_domain_screenshot_args`, `remote_domain_screenshot_ret`.
    ScreenshotArgs { dom: Dom, screen: u32, flags: u32 }
    ScreenshotRet { mime: Option<String> }
    /// `remote_domain_open_graphics_fd_args`.
    OpenGraphicsFdArgs { dom: Dom, idx: u32, flags: u32 }
    /// `remote_network_update_args`.
    NetworkUpdateArgs {
        net: Net,
        command: u32,
        section: u32,
        parent_index: i32,
        xml: String,
        flags: u32,
    }
    /// `remote_connect_network_event_register_any_args`.
    NetworkEventRegisterArgs { event_id: i32, net: Option<Net> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procedures_are_distinct_and_served_once() {
        let mut v = procs::IMPLEMENTED.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), procs::IMPLEMENTED.len());
        for p in procs::IMPLEMENTED {
            assert!(!crate::rpc::proto::procs::IMPLEMENTED.contains(p), "{p}");
            assert!(!crate::rpc::objproto::procs::IMPLEMENTED.contains(p), "{p}");
            assert!((1..=crate::rpc::proto::REMOTE_PROCEDURES as i32).contains(p));
        }
    }
}
