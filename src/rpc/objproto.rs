//! The messages of libvirt's objects besides domains — networks, storage pools and volumes,
//! host interfaces, node devices — and of the host and domain statistics that virt-manager
//! polls, written by hand from libvirt 9.0's `remote_protocol.x` (names less `remote_`).

use super::proto::Dom;
use super::xdr::{Array, Reader, Xdr, XdrError, xdr_struct};

/// `remote_procedure` numbers of the procedures implemented by [`super::objects`].
pub mod procs {
    pub const DOMAIN_GET_MAX_MEMORY: i32 = 17;
    pub const DOMAIN_GET_MAX_VCPUS: i32 = 18;
    pub const DOMAIN_GET_VCPUS: i32 = 20;
    pub const LIST_DEFINED_DOMAINS: i32 = 21;
    pub const NUM_OF_DEFINED_DOMAINS: i32 = 25;
    pub const DOMAIN_SET_AUTOSTART: i32 = 29;
    pub const LIST_DEFINED_NETWORKS: i32 = 36;
    pub const LIST_DOMAINS: i32 = 37;
    pub const LIST_NETWORKS: i32 = 38;
    pub const NETWORK_CREATE: i32 = 39;
    pub const NETWORK_CREATE_XML: i32 = 40;
    pub const NETWORK_DEFINE_XML: i32 = 41;
    pub const NETWORK_DESTROY: i32 = 42;
    pub const NETWORK_GET_XML_DESC: i32 = 43;
    pub const NETWORK_GET_AUTOSTART: i32 = 44;
    pub const NETWORK_GET_BRIDGE_NAME: i32 = 45;
    pub const NETWORK_LOOKUP_BY_NAME: i32 = 46;
    pub const NETWORK_LOOKUP_BY_UUID: i32 = 47;
    pub const NETWORK_SET_AUTOSTART: i32 = 48;
    pub const NETWORK_UNDEFINE: i32 = 49;
    pub const NUM_OF_DEFINED_NETWORKS: i32 = 50;
    pub const NUM_OF_DOMAINS: i32 = 51;
    pub const NUM_OF_NETWORKS: i32 = 52;
    pub const DOMAIN_BLOCK_STATS: i32 = 64;
    pub const DOMAIN_INTERFACE_STATS: i32 = 65;
    pub const NUM_OF_STORAGE_POOLS: i32 = 71;
    pub const LIST_STORAGE_POOLS: i32 = 72;
    pub const NUM_OF_DEFINED_STORAGE_POOLS: i32 = 73;
    pub const LIST_DEFINED_STORAGE_POOLS: i32 = 74;
    pub const STORAGE_POOL_CREATE_XML: i32 = 76;
    pub const STORAGE_POOL_DEFINE_XML: i32 = 77;
    pub const STORAGE_POOL_CREATE: i32 = 78;
    pub const STORAGE_POOL_BUILD: i32 = 79;
    pub const STORAGE_POOL_DESTROY: i32 = 80;
    pub const STORAGE_POOL_DELETE: i32 = 81;
    pub const STORAGE_POOL_UNDEFINE: i32 = 82;
    pub const STORAGE_POOL_REFRESH: i32 = 83;
    pub const STORAGE_POOL_LOOKUP_BY_NAME: i32 = 84;
    pub const STORAGE_POOL_LOOKUP_BY_UUID: i32 = 85;
    pub const STORAGE_POOL_LOOKUP_BY_VOLUME: i32 = 86;
    pub const STORAGE_POOL_GET_INFO: i32 = 87;
    pub const STORAGE_POOL_GET_XML_DESC: i32 = 88;
    pub const STORAGE_POOL_GET_AUTOSTART: i32 = 89;
    pub const STORAGE_POOL_SET_AUTOSTART: i32 = 90;
    pub const STORAGE_POOL_NUM_OF_VOLUMES: i32 = 91;
    pub const STORAGE_POOL_LIST_VOLUMES: i32 = 92;
    pub const STORAGE_VOL_CREATE_XML: i32 = 93;
    pub const STORAGE_VOL_DELETE: i32 = 94;
    pub const STORAGE_VOL_LOOKUP_BY_NAME: i32 = 95;
    pub const STORAGE_VOL_LOOKUP_BY_KEY: i32 = 96;
    pub const STORAGE_VOL_LOOKUP_BY_PATH: i32 = 97;
    pub const STORAGE_VOL_GET_INFO: i32 = 98;
    pub const STORAGE_VOL_GET_XML_DESC: i32 = 99;
    pub const STORAGE_VOL_GET_PATH: i32 = 100;
    pub const NODE_GET_FREE_MEMORY: i32 = 102;
    pub const NODE_NUM_OF_DEVICES: i32 = 111;
    pub const NODE_LIST_DEVICES: i32 = 112;
    pub const NODE_DEVICE_LOOKUP_BY_NAME: i32 = 113;
    pub const NODE_DEVICE_GET_XML_DESC: i32 = 114;
    pub const NODE_DEVICE_GET_PARENT: i32 = 115;
    pub const NODE_DEVICE_NUM_OF_CAPS: i32 = 116;
    pub const NODE_DEVICE_LIST_CAPS: i32 = 117;
    pub const STORAGE_VOL_CREATE_XML_FROM: i32 = 125;
    pub const NUM_OF_INTERFACES: i32 = 126;
    pub const LIST_INTERFACES: i32 = 127;
    pub const INTERFACE_LOOKUP_BY_NAME: i32 = 128;
    pub const INTERFACE_LOOKUP_BY_MAC_STRING: i32 = 129;
    pub const INTERFACE_GET_XML_DESC: i32 = 130;
    pub const NUM_OF_DEFINED_INTERFACES: i32 = 137;
    pub const LIST_DEFINED_INTERFACES: i32 = 138;
    pub const NETWORK_IS_ACTIVE: i32 = 152;
    pub const NETWORK_IS_PERSISTENT: i32 = 153;
    pub const STORAGE_POOL_IS_ACTIVE: i32 = 154;
    pub const STORAGE_POOL_IS_PERSISTENT: i32 = 155;
    pub const INTERFACE_IS_ACTIVE: i32 = 156;
    pub const DOMAIN_MEMORY_STATS: i32 = 159;
    pub const STORAGE_VOL_WIPE: i32 = 165;
    pub const DOMAIN_GET_VCPUS_FLAGS: i32 = 200;
    pub const DOMAIN_IS_UPDATED: i32 = 202;
    pub const CONNECT_GET_SYSINFO: i32 = 203;
    pub const DOMAIN_CREATE_XML: i32 = 10;
    pub const NODE_GET_CPU_STATS: i32 = 227;
    pub const NODE_GET_MEMORY_STATS: i32 = 228;
    pub const DOMAIN_GET_CONTROL_INFO: i32 = 229;
    pub const DOMAIN_BLOCK_STATS_FLAGS: i32 = 243;
    pub const NODE_GET_CPU_MAP: i32 = 293;
    pub const STORAGE_VOL_RESIZE: i32 = 260;
    pub const CONNECT_LIST_ALL_STORAGE_POOLS: i32 = 281;
    pub const STORAGE_POOL_LIST_ALL_VOLUMES: i32 = 282;
    pub const CONNECT_LIST_ALL_NETWORKS: i32 = 283;
    pub const CONNECT_LIST_ALL_INTERFACES: i32 = 284;
    pub const CONNECT_LIST_ALL_NODE_DEVICES: i32 = 285;
    pub const NETWORK_GET_DHCP_LEASES: i32 = 341;
    pub const CONNECT_GET_ALL_DOMAIN_STATS: i32 = 344;
    pub const DOMAIN_INTERFACE_ADDRESSES: i32 = 353;
    pub const STORAGE_VOL_GET_INFO_FLAGS: i32 = 378;
    pub const NETWORK_DEFINE_XML_FLAGS: i32 = 432;
    pub const NETWORK_CREATE_XML_FLAGS: i32 = 437;

    /// Every procedure above, for the coverage count and its test.
    pub const IMPLEMENTED: &[i32] = &[
        DOMAIN_GET_MAX_MEMORY,
        DOMAIN_GET_MAX_VCPUS,
        DOMAIN_GET_VCPUS,
        LIST_DEFINED_DOMAINS,
        NUM_OF_DEFINED_DOMAINS,
        DOMAIN_SET_AUTOSTART,
        LIST_DEFINED_NETWORKS,
        LIST_DOMAINS,
        LIST_NETWORKS,
        NETWORK_CREATE,
        NETWORK_CREATE_XML,
        NETWORK_DEFINE_XML,
        NETWORK_DESTROY,
        NETWORK_GET_XML_DESC,
        NETWORK_GET_AUTOSTART,
        NETWORK_GET_BRIDGE_NAME,
        NETWORK_LOOKUP_BY_NAME,
        NETWORK_LOOKUP_BY_UUID,
        NETWORK_SET_AUTOSTART,
        NETWORK_UNDEFINE,
        NUM_OF_DEFINED_NETWORKS,
        NUM_OF_DOMAINS,
        NUM_OF_NETWORKS,
        DOMAIN_BLOCK_STATS,
        DOMAIN_INTERFACE_STATS,
        NUM_OF_STORAGE_POOLS,
        LIST_STORAGE_POOLS,
        NUM_OF_DEFINED_STORAGE_POOLS,
        LIST_DEFINED_STORAGE_POOLS,
        STORAGE_POOL_CREATE_XML,
        STORAGE_POOL_DEFINE_XML,
        STORAGE_POOL_CREATE,
        STORAGE_POOL_BUILD,
        STORAGE_POOL_DESTROY,
        STORAGE_POOL_DELETE,
        STORAGE_POOL_UNDEFINE,
        STORAGE_POOL_REFRESH,
        STORAGE_POOL_LOOKUP_BY_NAME,
        STORAGE_POOL_LOOKUP_BY_UUID,
        STORAGE_POOL_LOOKUP_BY_VOLUME,
        STORAGE_POOL_GET_INFO,
        STORAGE_POOL_GET_XML_DESC,
        STORAGE_POOL_GET_AUTOSTART,
        STORAGE_POOL_SET_AUTOSTART,
        STORAGE_POOL_NUM_OF_VOLUMES,
        STORAGE_POOL_LIST_VOLUMES,
        STORAGE_VOL_CREATE_XML,
        STORAGE_VOL_DELETE,
        STORAGE_VOL_LOOKUP_BY_NAME,
        STORAGE_VOL_LOOKUP_BY_KEY,
        STORAGE_VOL_LOOKUP_BY_PATH,
        STORAGE_VOL_GET_INFO,
        STORAGE_VOL_GET_XML_DESC,
        STORAGE_VOL_GET_PATH,
        NODE_GET_FREE_MEMORY,
        NODE_NUM_OF_DEVICES,
        NODE_LIST_DEVICES,
        NODE_DEVICE_LOOKUP_BY_NAME,
        NODE_DEVICE_GET_XML_DESC,
        NODE_DEVICE_GET_PARENT,
        NODE_DEVICE_NUM_OF_CAPS,
        NODE_DEVICE_LIST_CAPS,
        STORAGE_VOL_CREATE_XML_FROM,
        NUM_OF_INTERFACES,
        LIST_INTERFACES,
        INTERFACE_LOOKUP_BY_NAME,
        INTERFACE_LOOKUP_BY_MAC_STRING,
        INTERFACE_GET_XML_DESC,
        NUM_OF_DEFINED_INTERFACES,
        LIST_DEFINED_INTERFACES,
        NETWORK_IS_ACTIVE,
        NETWORK_IS_PERSISTENT,
        STORAGE_POOL_IS_ACTIVE,
        STORAGE_POOL_IS_PERSISTENT,
        INTERFACE_IS_ACTIVE,
        DOMAIN_MEMORY_STATS,
        STORAGE_VOL_WIPE,
        DOMAIN_GET_VCPUS_FLAGS,
        DOMAIN_IS_UPDATED,
        CONNECT_GET_SYSINFO,
        DOMAIN_CREATE_XML,
        NODE_GET_CPU_STATS,
        NODE_GET_MEMORY_STATS,
        DOMAIN_GET_CONTROL_INFO,
        DOMAIN_BLOCK_STATS_FLAGS,
        NODE_GET_CPU_MAP,
        STORAGE_VOL_RESIZE,
        CONNECT_LIST_ALL_STORAGE_POOLS,
        STORAGE_POOL_LIST_ALL_VOLUMES,
        CONNECT_LIST_ALL_NETWORKS,
        CONNECT_LIST_ALL_INTERFACES,
        CONNECT_LIST_ALL_NODE_DEVICES,
        NETWORK_GET_DHCP_LEASES,
        CONNECT_GET_ALL_DOMAIN_STATS,
        DOMAIN_INTERFACE_ADDRESSES,
        STORAGE_VOL_GET_INFO_FLAGS,
        NETWORK_DEFINE_XML_FLAGS,
        NETWORK_CREATE_XML_FLAGS,
    ];

    /// Whether [`super::super::objects`] answers procedure `p`.
    pub fn handles(p: i32) -> bool {
        IMPLEMENTED.contains(&p)
    }
}

/// libvirt's list limits.
pub const NAME_LIST_MAX: usize = 16384;
pub const POOL_NAME_LIST_MAX: usize = 4096;
pub const CAPS_LIST_MAX: usize = 65536;
pub const LIST_MAX: usize = 65536;
const VCPUINFO_MAX: usize = 16384;
const CPUMAPS_MAX: usize = 8_388_608;
const MEMORY_STATS_MAX: usize = 1024;
const NODE_STATS_MAX: usize = 16;
const DOMAIN_STATS_MAX: usize = 4096;
const TYPED_PARAMS_MAX: usize = 2048;
pub const BLOCK_STATS_MAX: usize = 16;

/// `remote_typed_param_value`: the value of a typed parameter, its `type` the discriminant.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(bool),
    String(String),
}

impl Eq for TypedValue {}

impl TypedValue {
    /// The value's type as libvirt's typed parameter errors name it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Int(_) => "int",
            Self::UInt(_) => "uint",
            Self::LLong(_) => "llong",
            Self::ULLong(_) => "ullong",
            Self::Double(_) => "double",
            Self::Boolean(_) => "boolean",
            Self::String(_) => "string",
        }
    }
}

impl Default for TypedValue {
    fn default() -> Self {
        Self::Int(0)
    }
}

impl Xdr for TypedValue {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            Self::Int(v) => {
                1i32.put(w);
                v.put(w);
            }
            Self::UInt(v) => {
                2i32.put(w);
                v.put(w);
            }
            Self::LLong(v) => {
                3i32.put(w);
                v.put(w);
            }
            Self::ULLong(v) => {
                4i32.put(w);
                v.put(w);
            }
            Self::Double(v) => {
                5i32.put(w);
                v.to_bits().put(w);
            }
            Self::Boolean(v) => {
                6i32.put(w);
                i32::from(*v).put(w);
            }
            Self::String(v) => {
                7i32.put(w);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(match i32::get(r)? {
            1 => Self::Int(i32::get(r)?),
            2 => Self::UInt(u32::get(r)?),
            3 => Self::LLong(i64::get(r)?),
            4 => Self::ULLong(u64::get(r)?),
            5 => Self::Double(f64::from_bits(u64::get(r)?)),
            6 => Self::Boolean(i32::get(r)? != 0),
            7 => Self::String(String::get(r)?),
            n => return Err(XdrError::BadDiscriminant(n)),
        })
    }
}

xdr_struct! {
    /// `remote_typed_param`.
    TypedParam { field: String, value: TypedValue }

    /// `remote_nonnull_network`.
    Net { name: String, uuid: [u8; 16] }
    /// `remote_nonnull_storage_pool`.
    Pool { name: String, uuid: [u8; 16] }
    /// `remote_nonnull_storage_vol`.
    Vol { pool: String, name: String, key: String }
    /// `remote_nonnull_interface`.
    Iface { name: String, mac: String }
    /// `remote_nonnull_node_device`.
    NodeDev { name: String }

    ListAllArgs { need_results: i32, flags: u32 }
    MaxNamesArgs { maxnames: i32 }
    NamesRet { names: Array<String, NAME_LIST_MAX> }
    NumRet { num: i32 }
    FlagsArgs { flags: u32 }
    XmlArgs { xml: String }
    XmlFlagsArgs { xml: String, flags: u32 }
    NameArgs { name: String }
    UuidArgs { uuid: [u8; 16] }
    OptStringArgs { value: Option<String> }
    OptStringRet { value: Option<String> }

    ListAllNetworksRet { nets: Array<Net, LIST_MAX>, ret: u32 }
    NetArgs { net: Net }
    NetFlagsArgs { net: Net, flags: u32 }
    NetRet { net: Net }
    NetAutostartArgs { net: Net, autostart: i32 }
    DhcpLease {
        iface: String,
        expirytime: i64,
        kind: i32,
        mac: Option<String>,
        iaid: Option<String>,
        ipaddr: String,
        prefix: u32,
        hostname: Option<String>,
        clientid: Option<String>,
    }
    DhcpLeasesArgs { net: Net, mac: Option<String>, need_results: i32, flags: u32 }
    DhcpLeasesRet { leases: Array<DhcpLease, LIST_MAX>, ret: u32 }

    ListAllPoolsRet { pools: Array<Pool, LIST_MAX>, ret: u32 }
    PoolArgs { pool: Pool }
    PoolFlagsArgs { pool: Pool, flags: u32 }
    PoolRet { pool: Pool }
    PoolAutostartArgs { pool: Pool, autostart: i32 }
    PoolInfoRet { state: u32, capacity: u64, allocation: u64, available: u64 }
    PoolListVolumesArgs { pool: Pool, maxnames: i32 }
    PoolListAllVolumesArgs { pool: Pool, need_results: i32, flags: u32 }
    ListAllVolumesRet { vols: Array<Vol, LIST_MAX>, ret: u32 }
    VolLookupByNameArgs { pool: Pool, name: String }
    VolArgs { vol: Vol }
    VolFlagsArgs { vol: Vol, flags: u32 }
    VolRet { vol: Vol }
    VolCreateXmlArgs { pool: Pool, xml: String, flags: u32 }
    VolCreateXmlFromArgs { pool: Pool, xml: String, clonevol: Vol, flags: u32 }
    VolInfoRet { kind: i32, capacity: u64, allocation: u64 }
    VolResizeArgs { vol: Vol, capacity: u64, flags: u32 }

    ListAllInterfacesRet { ifaces: Array<Iface, LIST_MAX>, ret: u32 }
    IfaceArgs { iface: Iface }
    IfaceFlagsArgs { iface: Iface, flags: u32 }
    IfaceRet { iface: Iface }

    ListAllNodeDevicesRet { devices: Array<NodeDev, LIST_MAX>, ret: u32 }
    NodeDevRet { dev: NodeDev }
    NodeDevFlagsArgs { name: String, flags: u32 }
    NodeDevListCapsArgs { name: String, maxnames: i32 }
    NodeDevListCapsRet { names: Array<String, CAPS_LIST_MAX> }
    NodeNumOfDevicesArgs { cap: Option<String>, flags: u32 }
    NodeListDevicesArgs { cap: Option<String>, maxnames: i32, flags: u32 }

    NodeStat { field: String, value: u64 }
    NodeCpuStatsArgs { cpu: i32, nparams: i32, flags: u32 }
    NodeMemoryStatsArgs { nparams: i32, cell: i32, flags: u32 }
    NodeStatsRet { params: Array<NodeStat, NODE_STATS_MAX>, nparams: i32 }
    HyperRet { value: u64 }
    CpuMapArgs { need_map: i32, need_online: i32, flags: u32 }
    CpuMapRet { cpumap: Opaque, online: u32, ret: i32 }
    OptTypeArgs { kind: Option<String> }

    DomVcpusArgs { dom: Dom, maxinfo: i32, maplen: i32 }
    VcpuInfo { number: u32, state: i32, cpu_time: u64, cpu: i32 }
    DomVcpusRet { info: Array<VcpuInfo, VCPUINFO_MAX>, cpumaps: Opaque }
    DomAutostartArgs { dom: Dom, autostart: i32 }
    DomMemoryStatsArgs { dom: Dom, max_stats: u32, flags: u32 }
    MemoryStat { tag: i32, val: u64 }
    DomMemoryStatsRet { stats: Array<MemoryStat, MEMORY_STATS_MAX> }
    DomPathArgs { dom: Dom, path: String }
    BlockStatsRet { rd_req: i64, rd_bytes: i64, wr_req: i64, wr_bytes: i64, errs: i64 }
    DomPathFlagsArgs { dom: Dom, path: String, nparams: i32, flags: u32 }
    TypedParamsRet { params: Array<TypedParam, TYPED_PARAMS_MAX>, nparams: i32 }
    InterfaceStatsRet {
        rx_bytes: i64,
        rx_packets: i64,
        rx_errs: i64,
        rx_drop: i64,
        tx_bytes: i64,
        tx_packets: i64,
        tx_errs: i64,
        tx_drop: i64,
    }
    ControlInfoRet { state: u32, details: u32, state_time: u64 }
    AllDomainStatsArgs { doms: Array<Dom, DOMAIN_STATS_MAX>, stats: u32, flags: u32 }
    DomainStatsRecord { dom: Dom, params: Array<TypedParam, TYPED_PARAMS_MAX> }
    AllDomainStatsRet { stats: Array<DomainStatsRecord, DOMAIN_STATS_MAX> }
    IfaceAddrsArgs { dom: Dom, source: u32, flags: u32 }
    IpAddr { kind: i32, addr: String, prefix: u32 }
    DomainIface { name: String, hwaddr: Option<String>, addrs: Array<IpAddr, 2048> }
    IfaceAddrsRet { ifaces: Array<DomainIface, 2048> }
}

/// `opaque x<MAX>`: bytes with a length word, padded to 4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opaque(pub Vec<u8>);

impl Xdr for Opaque {
    fn put(&self, w: &mut Vec<u8>) {
        (self.0.len() as u32).put(w);
        w.extend_from_slice(&self.0);
        w.extend(std::iter::repeat_n(0, (4 - self.0.len() % 4) % 4));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let n = u32::get(r)? as usize;
        if n > CPUMAPS_MAX {
            return Err(XdrError::ArrayTooLong {
                len: n,
                max: CPUMAPS_MAX,
            });
        }
        Ok(Self(r.opaque(n)?.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::xdr::encode;

    #[test]
    fn procedures_are_distinct_and_not_the_domain_ones() {
        let mut v = procs::IMPLEMENTED.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), procs::IMPLEMENTED.len());
        for p in procs::IMPLEMENTED {
            assert!(
                !crate::rpc::proto::procs::IMPLEMENTED.contains(p),
                "procedure {p} is served twice"
            );
            assert!((1..=crate::rpc::proto::REMOTE_PROCEDURES as i32).contains(p));
        }
    }

    #[test]
    fn typed_params_round_trip() {
        for v in [
            TypedValue::Int(-2),
            TypedValue::UInt(3),
            TypedValue::LLong(-4),
            TypedValue::ULLong(5),
            TypedValue::Double(0.5),
            TypedValue::Boolean(true),
            TypedValue::String("x".into()),
        ] {
            let p = TypedParam {
                field: "f".into(),
                value: v,
            };
            assert_eq!(Reader::decode::<TypedParam>(&encode(&p)), Ok(p));
        }
        // type 4 is an unsigned hyper: 4 + 4 (discriminant) + 8
        let b = encode(&TypedValue::ULLong(1));
        assert_eq!(b, [0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            Reader::decode::<TypedValue>(&[0, 0, 0, 9]),
            Err(XdrError::BadDiscriminant(9))
        );
    }

    #[test]
    fn opaque_bytes_are_padded() {
        let b = encode(&Opaque(vec![1u8, 2, 3]));
        assert_eq!(b, [0, 0, 0, 3, 1, 2, 3, 0]);
        assert_eq!(Reader::decode::<Opaque>(&b), Ok(Opaque(vec![1, 2, 3])));
    }
}
