//! The messages of libvirt's protocols this front end speaks, written by hand from libvirt
//! 9.0's `remote_protocol.x`, `virnetprotocol.x` and `virkeepaliveprotocol.x` for the
//! procedures it implements (the names are the `.x` files', less their `remote_` prefix).

use super::xdr::{Array, Reader, Xdr, XdrError, xdr_struct};

pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
pub const REMOTE_VERSION: u32 = 1;
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
pub const KEEPALIVE_VERSION: u32 = 1;
pub const KEEPALIVE_PING: i32 = 1;
pub const KEEPALIVE_PONG: i32 = 2;

/// How many procedures `remote_protocol.x` of libvirt 9.0 declares.
pub const REMOTE_PROCEDURES: usize = 443;

/// `remote_procedure` numbers of the procedures implemented.
pub mod procs {
    pub const CONNECT_OPEN: i32 = 1;
    pub const CONNECT_CLOSE: i32 = 2;
    pub const CONNECT_GET_TYPE: i32 = 3;
    pub const CONNECT_GET_VERSION: i32 = 4;
    pub const NODE_GET_INFO: i32 = 6;
    pub const CONNECT_GET_CAPABILITIES: i32 = 7;
    pub const DOMAIN_CREATE: i32 = 9;
    pub const DOMAIN_DEFINE_XML: i32 = 11;
    pub const DOMAIN_DESTROY: i32 = 12;
    pub const DOMAIN_GET_XML_DESC: i32 = 14;
    pub const DOMAIN_GET_AUTOSTART: i32 = 15;
    pub const DOMAIN_GET_INFO: i32 = 16;
    pub const DOMAIN_GET_OS_TYPE: i32 = 19;
    pub const DOMAIN_LOOKUP_BY_ID: i32 = 22;
    pub const DOMAIN_LOOKUP_BY_NAME: i32 = 23;
    pub const DOMAIN_LOOKUP_BY_UUID: i32 = 24;
    pub const DOMAIN_RESUME: i32 = 28;
    pub const DOMAIN_SHUTDOWN: i32 = 33;
    pub const DOMAIN_SUSPEND: i32 = 34;
    pub const DOMAIN_UNDEFINE: i32 = 35;
    pub const CONNECT_GET_HOSTNAME: i32 = 59;
    pub const CONNECT_SUPPORTS_FEATURE: i32 = 60;
    pub const AUTH_LIST: i32 = 66;
    pub const AUTH_SASL_INIT: i32 = 67;
    pub const AUTH_SASL_START: i32 = 68;
    pub const AUTH_SASL_STEP: i32 = 69;
    pub const AUTH_POLKIT: i32 = 70;
    pub const CONNECT_GET_URI: i32 = 110;
    pub const DOMAIN_GET_SECURITY_LABEL: i32 = 121;
    pub const NODE_GET_SECURITY_MODEL: i32 = 122;
    pub const CONNECT_IS_SECURE: i32 = 149;
    pub const DOMAIN_IS_ACTIVE: i32 = 150;
    pub const DOMAIN_IS_PERSISTENT: i32 = 151;
    pub const CONNECT_GET_LIB_VERSION: i32 = 157;
    pub const DOMAIN_HAS_MANAGED_SAVE_IMAGE: i32 = 183;
    pub const DOMAIN_CREATE_WITH_FLAGS: i32 = 196;
    pub const DOMAIN_GET_STATE: i32 = 212;
    pub const DOMAIN_UNDEFINE_FLAGS: i32 = 231;
    pub const DOMAIN_DESTROY_FLAGS: i32 = 234;
    pub const DOMAIN_SHUTDOWN_FLAGS: i32 = 258;
    pub const CONNECT_LIST_ALL_DOMAINS: i32 = 273;
    pub const DOMAIN_SNAPSHOT_NUM: i32 = 187;
    pub const CONNECT_GET_DOMAIN_CAPABILITIES: i32 = 342;
    pub const DOMAIN_DEFINE_XML_FLAGS: i32 = 350;
    pub const DOMAIN_GET_MESSAGES: i32 = 426;
    pub const CONNECT_REGISTER_CLOSE_CALLBACK: i32 = 360;
    pub const CONNECT_UNREGISTER_CLOSE_CALLBACK: i32 = 361;

    // Events (rpcev).
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: i32 = 316;
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: i32 = 317;
    pub const CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY: i32 = 368;
    pub const CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY: i32 = 369;
    /// Messages the daemon sends (not calls: not counted as implemented).
    pub const DOMAIN_EVENT_CALLBACK_LIFECYCLE: i32 = 318;
    pub const DOMAIN_EVENT_CALLBACK_REBOOT: i32 = 319;
    pub const DOMAIN_EVENT_CALLBACK_RTC_CHANGE: i32 = 320;
    pub const DOMAIN_EVENT_CALLBACK_WATCHDOG: i32 = 321;
    pub const DOMAIN_EVENT_CALLBACK_GRAPHICS: i32 = 323;
    pub const DOMAIN_EVENT_CALLBACK_TRAY_CHANGE: i32 = 328;
    pub const DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE: i32 = 331;
    pub const DOMAIN_EVENT_CALLBACK_PMSUSPEND: i32 = 330;
    pub const DOMAIN_EVENT_CALLBACK_PMSUSPEND_DISK: i32 = 332;
    pub const DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED: i32 = 333;
    pub const DOMAIN_EVENT_CALLBACK_DEVICE_ADDED: i32 = 354;
    pub const DOMAIN_EVENT_CALLBACK_METADATA_CHANGE: i32 = 379;
    pub const DOMAIN_EVENT_CALLBACK_TUNABLE: i32 = 346;
    pub const STORAGE_POOL_EVENT_LIFECYCLE: i32 = 370;
    pub const STORAGE_POOL_EVENT_REFRESH: i32 = 373;

    pub const DOMAIN_REBOOT: i32 = 27;
    pub const DOMAIN_RESET: i32 = 245;

    /// A stream (rpcev).
    pub const DOMAIN_OPEN_CONSOLE: i32 = 201;

    // Snapshots (rpcev).
    pub const DOMAIN_SNAPSHOT_CREATE_XML: i32 = 185;
    pub const DOMAIN_SNAPSHOT_GET_XML_DESC: i32 = 186;
    pub const DOMAIN_SNAPSHOT_LIST_NAMES: i32 = 188;
    pub const DOMAIN_SNAPSHOT_LOOKUP_BY_NAME: i32 = 189;
    pub const DOMAIN_HAS_CURRENT_SNAPSHOT: i32 = 190;
    pub const DOMAIN_SNAPSHOT_CURRENT: i32 = 191;
    pub const DOMAIN_REVERT_TO_SNAPSHOT: i32 = 192;
    pub const DOMAIN_SNAPSHOT_DELETE: i32 = 193;
    pub const DOMAIN_SNAPSHOT_GET_PARENT: i32 = 244;
    pub const DOMAIN_SNAPSHOT_NUM_CHILDREN: i32 = 246;
    pub const DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES: i32 = 247;
    pub const DOMAIN_SNAPSHOT_IS_CURRENT: i32 = 271;
    pub const DOMAIN_SNAPSHOT_HAS_METADATA: i32 = 272;
    pub const DOMAIN_LIST_ALL_SNAPSHOTS: i32 = 274;
    pub const DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN: i32 = 275;

    /// Every procedure above, for the coverage count and its test.
    pub const IMPLEMENTED: &[i32] = &[
        CONNECT_OPEN,
        CONNECT_CLOSE,
        CONNECT_GET_TYPE,
        CONNECT_GET_VERSION,
        NODE_GET_INFO,
        CONNECT_GET_CAPABILITIES,
        DOMAIN_CREATE,
        DOMAIN_DEFINE_XML,
        DOMAIN_DESTROY,
        DOMAIN_GET_XML_DESC,
        DOMAIN_GET_AUTOSTART,
        DOMAIN_GET_INFO,
        DOMAIN_GET_OS_TYPE,
        DOMAIN_LOOKUP_BY_ID,
        DOMAIN_LOOKUP_BY_NAME,
        DOMAIN_LOOKUP_BY_UUID,
        DOMAIN_RESUME,
        DOMAIN_SHUTDOWN,
        DOMAIN_SUSPEND,
        DOMAIN_UNDEFINE,
        CONNECT_GET_HOSTNAME,
        CONNECT_SUPPORTS_FEATURE,
        AUTH_LIST,
        AUTH_POLKIT,
        CONNECT_GET_URI,
        DOMAIN_GET_SECURITY_LABEL,
        NODE_GET_SECURITY_MODEL,
        CONNECT_IS_SECURE,
        DOMAIN_IS_ACTIVE,
        DOMAIN_IS_PERSISTENT,
        CONNECT_GET_LIB_VERSION,
        DOMAIN_HAS_MANAGED_SAVE_IMAGE,
        DOMAIN_CREATE_WITH_FLAGS,
        DOMAIN_GET_STATE,
        DOMAIN_UNDEFINE_FLAGS,
        DOMAIN_DESTROY_FLAGS,
        DOMAIN_SHUTDOWN_FLAGS,
        CONNECT_LIST_ALL_DOMAINS,
        DOMAIN_SNAPSHOT_NUM,
        CONNECT_GET_DOMAIN_CAPABILITIES,
        DOMAIN_DEFINE_XML_FLAGS,
        DOMAIN_GET_MESSAGES,
        CONNECT_REGISTER_CLOSE_CALLBACK,
        CONNECT_UNREGISTER_CLOSE_CALLBACK,
        // events (rpcev)
        CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
        CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
        CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY,
        CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY,
        DOMAIN_REBOOT,
        DOMAIN_RESET,
        DOMAIN_OPEN_CONSOLE,
        // snapshots (rpcev)
        DOMAIN_SNAPSHOT_CREATE_XML,
        DOMAIN_SNAPSHOT_GET_XML_DESC,
        DOMAIN_SNAPSHOT_LIST_NAMES,
        DOMAIN_SNAPSHOT_LOOKUP_BY_NAME,
        DOMAIN_HAS_CURRENT_SNAPSHOT,
        DOMAIN_SNAPSHOT_CURRENT,
        DOMAIN_REVERT_TO_SNAPSHOT,
        DOMAIN_SNAPSHOT_DELETE,
        DOMAIN_SNAPSHOT_GET_PARENT,
        DOMAIN_SNAPSHOT_NUM_CHILDREN,
        DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES,
        DOMAIN_SNAPSHOT_IS_CURRENT,
        DOMAIN_SNAPSHOT_HAS_METADATA,
        DOMAIN_LIST_ALL_SNAPSHOTS,
        DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN,
    ];
}

/// `remote_auth_type`.
pub const AUTH_NONE: i32 = 0;
pub const AUTH_POLKIT: i32 = 2;

/// `virDrvFeature` values a client asks about.
pub const FEATURE_TYPED_PARAM_STRING: i32 = 9;
pub const FEATURE_PROGRAM_KEEPALIVE: i32 = 10;
pub const FEATURE_REMOTE_EVENT_CALLBACK: i32 = 14;
pub const FEATURE_REMOTE_CLOSE_CALLBACK: i32 = 15;

pub const DOMAIN_LIST_MAX: usize = 16384;
const AUTH_TYPE_LIST_MAX: usize = 20;
const SECURITY_MODEL_MAX: usize = 257;
const SECURITY_DOI_MAX: usize = 257;
const SECURITY_LABEL_MAX: usize = 4097;
const DOMAIN_MESSAGES_MAX: usize = 2048;
pub const SNAPSHOT_LIST_MAX: usize = 16384;

/// A `char` array (`char x[N]` fixed, `char x<MAX>` variable): rpcgen sends each `char`
/// as a 4-byte XDR int, unlike `opaque`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chars<const MAX: usize>(pub Vec<u8>);

impl<const MAX: usize> Chars<MAX> {
    /// A C string as libvirt sends one: its bytes and the NUL.
    pub fn c_string(s: &str) -> Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        Self(v)
    }
}

impl<const MAX: usize> Xdr for Chars<MAX> {
    fn put(&self, w: &mut Vec<u8>) {
        (self.0.len() as u32).put(w);
        put_chars(&self.0, w);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let n = r.count(MAX)?;
        Ok(Self(get_chars(r, n)?))
    }
}

/// `char x[N]`: exactly `N` chars, no count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedChars<const N: usize>(pub [u8; N]);

impl<const N: usize> Default for FixedChars<N> {
    fn default() -> Self {
        Self([0; N])
    }
}

impl<const N: usize> Xdr for FixedChars<N> {
    fn put(&self, w: &mut Vec<u8>) {
        put_chars(&self.0, w);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let mut a = [0u8; N];
        a.copy_from_slice(&get_chars(r, N)?);
        Ok(Self(a))
    }
}

fn put_chars(c: &[u8], w: &mut Vec<u8>) {
    for b in c {
        // a C `char`: signed on the platforms libvirt runs on
        i32::from(*b as i8).put(w);
    }
}

fn get_chars(r: &mut Reader<'_>, n: usize) -> Result<Vec<u8>, XdrError> {
    (0..n).map(|_| Ok(i32::get(r)? as u8)).collect()
}

xdr_struct! {
    /// `remote_nonnull_domain`.
    Dom { name: String, uuid: [u8; 16], id: i32 }

    /// `virNetMessageError`; `dom` and `net` are unused and sent empty.
    MessageError {
        code: i32,
        domain: i32,
        message: Option<String>,
        level: i32,
        dom: Option<Dom>,
        str1: Option<String>,
        str2: Option<String>,
        str3: Option<String>,
        int1: i32,
        int2: i32,
        net: Option<Dom>,
    }

    AuthListRet { types: Array<i32, AUTH_TYPE_LIST_MAX> }
    AuthPolkitRet { complete: i32 }
    ConnectOpenArgs { name: Option<String>, flags: u32 }
    SupportsFeatureArgs { feature: i32 }
    IntRet { value: i32 }
    StringRet { value: String }
    HyperRet { value: u64 }
    NodeGetInfoRet {
        model: FixedChars<32>,
        memory: u64,
        cpus: i32,
        mhz: i32,
        nodes: i32,
        sockets: i32,
        cores: i32,
        threads: i32,
    }
    ListAllDomainsArgs { need_results: i32, flags: u32 }
    ListAllDomainsRet { domains: Array<Dom, DOMAIN_LIST_MAX>, ret: u32 }
    LookupByIdArgs { id: i32 }
    LookupByNameArgs { name: String }
    LookupByUuidArgs { uuid: [u8; 16] }
    DomainArgs { dom: Dom }
    DomainFlagsArgs { dom: Dom, flags: u32 }
    DomainRet { dom: Dom }
    DefineXmlArgs { xml: String }
    DefineXmlFlagsArgs { xml: String, flags: u32 }
    DomainGetInfoRet {
        state: u32,
        max_mem: u64,
        memory: u64,
        nr_virt_cpu: u32,
        cpu_time: u64,
    }
    DomainGetStateRet { state: i32, reason: i32 }
    SecurityModelRet {
        model: Chars<SECURITY_MODEL_MAX>,
        doi: Chars<SECURITY_DOI_MAX>,
    }
    SecurityLabelRet { label: Chars<SECURITY_LABEL_MAX>, enforcing: i32 }
    SnapshotNumRet { num: i32 }
    DomainCapabilitiesArgs {
        emulatorbin: Option<String>,
        arch: Option<String>,
        machine: Option<String>,
        virttype: Option<String>,
        flags: u32,
    }
    MessagesRet { msgs: Array<String, DOMAIN_MESSAGES_MAX> }

    // Events (rpcev).
    /// `remote_nonnull_storage_pool`.
    Pool { name: String, uuid: [u8; 16] }
    DomainEventRegisterArgs { event_id: i32, dom: Option<Dom> }
    PoolEventRegisterArgs { event_id: i32, pool: Option<Pool> }
    CallbackIdRet { callback_id: i32 }
    CallbackIdArgs { callback_id: i32 }

    OpenConsoleArgs { dom: Dom, dev_name: Option<String>, flags: u32 }

    // Snapshots (rpcev).
    /// `remote_nonnull_domain_snapshot`.
    Snap { name: String, dom: Dom }
    SnapshotCreateXmlArgs { dom: Dom, xml: String, flags: u32 }
    SnapFlagsArgs { snap: Snap, flags: u32 }
    SnapRet { snap: Snap }
    SnapshotListNamesArgs { dom: Dom, maxnames: i32, flags: u32 }
    SnapshotListChildrenNamesArgs { snap: Snap, maxnames: i32, flags: u32 }
    NamesRet { names: Array<String, SNAPSHOT_LIST_MAX> }
    SnapshotLookupByNameArgs { dom: Dom, name: String, flags: u32 }
    ListAllSnapshotsArgs { dom: Dom, need_results: i32, flags: u32 }
    SnapshotListAllChildrenArgs { snap: Snap, need_results: i32, flags: u32 }
    ListAllSnapshotsRet { snapshots: Array<Snap, SNAPSHOT_LIST_MAX>, ret: i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implemented_procedures_are_distinct_and_declared() {
        let mut v = procs::IMPLEMENTED.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), procs::IMPLEMENTED.len());
        assert!(v.iter().all(|p| (1..=REMOTE_PROCEDURES as i32).contains(p)));
    }

    #[test]
    fn chars_take_a_word_each() {
        let o = Chars::<8>::c_string("no");
        let b = super::super::xdr::encode(&o);
        assert_eq!(b, [0, 0, 0, 3, 0, 0, 0, b'n', 0, 0, 0, b'o', 0, 0, 0, 0]);
        assert_eq!(Reader::decode::<Chars<8>>(&b), Ok(o));
        assert!(Reader::decode::<Chars<2>>(&b).is_err());
        let mut m = FixedChars::<32>::default();
        m.0[..6].copy_from_slice(b"x86_64");
        let b = super::super::xdr::encode(&m);
        assert_eq!(b.len(), 128);
        assert_eq!(&b[..4], &[0, 0, 0, b'x']);
        assert_eq!(Reader::decode::<FixedChars<32>>(&b), Ok(m));
    }
}
