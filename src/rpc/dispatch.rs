//! The procedures of an opened connection, each decoded into a core request and run
//! through the one execution path for the connection's peer, its result encoded back.

pub(super) mod console;
mod event_calls;
pub(super) mod graphics;
mod netcalls;
mod snapshots;

use std::sync::Arc;

use uuid::Uuid;

use super::{
    Shared, View,
    error::{RpcError, RpcResult},
    proto::{
        self, Chars, DefineXmlArgs, DefineXmlFlagsArgs, Dom, DomainArgs, DomainCapabilitiesArgs,
        DomainFlagsArgs, DomainGetInfoRet, DomainGetStateRet, DomainRet, FixedChars, HyperRet,
        IntRet, ListAllDomainsArgs, ListAllDomainsRet, LookupByIdArgs, LookupByNameArgs,
        LookupByUuidArgs, MessagesRet, NodeGetInfoRet, SecurityLabelRet, SecurityModelRet,
        SnapshotNumRet, StringRet, SupportsFeatureArgs, procs,
    },
    xdr::{Array, Reader, Xdr, encode},
};
use crate::{
    compat::{
        LIB_VERSION,
        connect::list_filter,
        domain::{power_mode, snapshot_filters, undefine_options, xml_options},
        errors::{Code, libvirt},
        flags::{self, Flag, Flavor, Method},
    },
    core::{
        Domain, host,
        ops::{self, DomainOp, Operation},
        options::{DestroyOptions, StartOptions, StatsGroup},
    },
    drivers::StatValue,
    model::{DomainDef, DomainType},
    server::{
        authz::{Caller, Details, authorize_definition},
        exec::Exec,
    },
};

/// An opened connection.
pub(super) struct Session {
    pub view: Arc<View>,
    pub caller: Caller,
    /// The URI as `virConnectGetURI` reports it.
    pub uri: String,
    /// Opened with `VIR_CONNECT_RO`: nothing may change, no secret be read.
    pub readonly: bool,
    /// The connection's event callbacks.
    pub listener: Arc<super::events::Listener>,
}

impl Session {
    pub(super) fn exec<'a>(&'a self, shared: &'a Shared) -> Exec<'a> {
        Exec {
            core: &self.view.core,
            authz: &*shared.authz,
            signalled: &self.view.signalled,
        }
    }

    pub(super) fn flavor(&self) -> Flavor {
        self.view.flavor
    }

    /// Refuse flags `m` does not know, in libvirt's words.
    pub(super) fn check(&self, m: &Method, flags: u32) -> RpcResult<()> {
        m.check(flags, self.flavor())
            .map_err(|e| RpcError::from_compat(e, self.flavor()))
    }

    pub(super) fn error(&self, code: Code, msg: &str) -> RpcError {
        RpcError::from_compat(libvirt(code, Some(msg)), self.flavor())
    }

    /// Authorize reading the host.
    pub(super) async fn host_read(&self, shared: &Shared) -> RpcResult<()> {
        self.exec(shared)
            .authorize_as(&self.caller, Operation::ReadHost, &Details::default())
            .await
            .map_err(|e| RpcError::denied(e, self.flavor()))
    }

    /// Authorize `op` on `dom` with its details alone (reads of what the domain shows).
    pub(super) async fn authorize(
        &self,
        shared: &Shared,
        op: Operation,
        dom: &Domain,
    ) -> RpcResult<()> {
        self.exec(shared)
            .authorize_as(&self.caller, op, &Details::domain(&dom.info()))
            .await
            .map_err(|e| RpcError::denied(e, self.flavor()))
    }

    /// The domain `xml` (for libvirt method `m`) defines, refused unless this connection
    /// serves its type, authorized for `ops`, with who defines it (for ownership).
    pub(super) async fn definition(
        &self,
        shared: &Shared,
        m: &Method,
        xml: &str,
        ops: &[Operation],
    ) -> RpcResult<(DomainDef, crate::core::define::Caller)> {
        let flavor = self.flavor();
        let def = DomainDef::from_xml(xml).map_err(|e| RpcError::from_core(e.into(), flavor, m))?;
        if !self.view.types.contains(&def.domain_type) {
            return Err(self.error(
                Code::ConfigUnsupported,
                &format!(
                    "domains of type '{}' are not served at {}",
                    def.domain_type.as_str(),
                    self.uri
                ),
            ));
        }
        let owner = authorize_definition(&*shared.authz, &self.view.core, &self.caller, &def, ops)
            .await
            .map_err(|e| RpcError::denied(e, flavor))?;
        Ok((def, owner))
    }

    /// Refuse a change on a read-only connection, as libvirt's API layer does.
    pub(super) fn writable(&self, m: &Method) -> RpcResult<()> {
        if self.readonly {
            return Err(RpcError::read_only(&format!(
                "read only access prevents {}",
                m.api
            )));
        }
        Ok(())
    }

    /// Run request `req` (of libvirt method `m`) on `dom`.
    pub(super) async fn run<O: DomainOp>(
        &self,
        shared: &Shared,
        m: &Method,
        dom: &Arc<Domain>,
        req: O,
    ) -> RpcResult<O::Output> {
        if req.operation().changes_state() {
            self.writable(m)?;
        }
        self.exec(shared)
            .run_as(&self.caller, dom, req)
            .await
            .map_err(|e| RpcError::from_exec(e, self.flavor(), m))
    }

    /// The domain a `remote_nonnull_domain` names (by UUID, as libvirt's drivers look it up).
    pub(super) fn domain(&self, d: &Dom) -> RpcResult<Arc<Domain>> {
        let uuid = Uuid::from_bytes(d.uuid);
        self.view
            .core
            .get(&uuid)
            .filter(|dom| self.view.types.contains(&dom.domain_type()))
            .ok_or_else(|| {
                self.error(
                    Code::NoDomain,
                    &format!("no domain with matching uuid '{uuid}' ({})", d.name),
                )
            })
    }

    pub(super) fn shows(&self, dom: &Domain) -> bool {
        self.view.types.contains(&dom.domain_type())
    }
}

/// A domain as the wire names it.
pub(super) fn wire_dom(dom: &Domain) -> Dom {
    let info = dom.info();
    Dom {
        name: info.name,
        uuid: *info.uuid.as_bytes(),
        id: info.id.map_or(-1, |i| i as i32),
    }
}

pub(super) fn ok<T: Xdr>(v: T) -> RpcResult<Vec<u8>> {
    Ok(encode(&v))
}

pub(super) fn int(v: bool) -> RpcResult<Vec<u8>> {
    ok(IntRet { value: v.into() })
}

/// `VIR_DRV_FEATURE_*` of migration.
const FEATURE_MIGRATION_V2: i32 = 3;
const FEATURE_MIGRATION_P2P: i32 = 4;
const FEATURE_MIGRATION_V3: i32 = 6;
const FEATURE_MIGRATE_CHANGE_PROTECTION: i32 = 7;
const FEATURE_XML_MIGRATABLE: i32 = 11;
const FEATURE_MIGRATION_OFFLINE: i32 = 12;
const FEATURE_MIGRATION_PARAMS: i32 = 13;

/// `CONNECT_SUPPORTS_FEATURE`, answered before the connection opens as libvirtd does.
pub(super) fn supports_feature(body: &[u8]) -> RpcResult<Vec<u8>> {
    let a: SupportsFeatureArgs = Reader::decode(body)?;
    let yes = matches!(
        a.feature,
        proto::FEATURE_PROGRAM_KEEPALIVE
            | proto::FEATURE_REMOTE_CLOSE_CALLBACK
            | proto::FEATURE_REMOTE_EVENT_CALLBACK
            | proto::FEATURE_TYPED_PARAM_STRING
            | super::streamproto::FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER
            | super::streamproto::FEATURE_FD_PASSING
            // libvirt's QEMU driver's migration features (the other drivers refuse the
            // migration calls themselves)
            | FEATURE_MIGRATION_V2
            | FEATURE_MIGRATION_P2P
            | FEATURE_MIGRATION_V3
            | FEATURE_MIGRATE_CHANGE_PROTECTION
            | FEATURE_XML_MIGRATABLE
            | FEATURE_MIGRATION_OFFLINE
            | FEATURE_MIGRATION_PARAMS
    );
    int(yes)
}

/// Carry out procedure `proc_` with arguments `body`; the encoded result.
pub(super) async fn call(
    shared: &Shared,
    s: &Session,
    proc_: i32,
    body: &[u8],
) -> RpcResult<Vec<u8>> {
    let view = &s.view;
    let core = &view.core;
    let flavor = s.flavor();
    macro_rules! args {
        () => {
            Reader::decode(body)?
        };
    }
    // A request that returns nothing: check flags, run.
    macro_rules! done {
        ($m:expr, $dom:expr, $req:expr) => {{
            s.run(shared, $m, &$dom, $req).await?;
            ok(())
        }};
    }
    match proc_ {
        procs::CONNECT_GET_URI => {
            Reader::decode::<()>(body)?;
            ok(StringRet {
                value: s.uri.clone(),
            })
        }
        procs::CONNECT_GET_TYPE => {
            Reader::decode::<()>(body)?;
            ok(StringRet {
                value: match flavor {
                    Flavor::Qemu => "QEMU",
                    Flavor::Test => "Test",
                    Flavor::Lxc => "LXC",
                }
                .into(),
            })
        }
        procs::CONNECT_IS_SECURE => {
            Reader::decode::<()>(body)?;
            // a local socket: nobody between the peer and the daemon
            int(true)
        }
        procs::CONNECT_GET_LIB_VERSION => {
            Reader::decode::<()>(body)?;
            ok(HyperRet { value: LIB_VERSION })
        }
        procs::CONNECT_GET_VERSION => {
            Reader::decode::<()>(body)?;
            s.host_read(shared).await?;
            ok(HyperRet {
                value: core.hypervisor_version(&view.types),
            })
        }
        procs::CONNECT_GET_HOSTNAME => {
            Reader::decode::<()>(body)?;
            s.host_read(shared).await?;
            ok(StringRet {
                value: crate::server::hostname::read(),
            })
        }
        procs::CONNECT_GET_CAPABILITIES => {
            Reader::decode::<()>(body)?;
            s.host_read(shared).await?;
            let caps = core
                .libvirt_capabilities(&view.types)
                .map_err(|e| RpcError::from_core(e, flavor, &flags::GET_CAPABILITIES))?;
            ok(StringRet { value: caps })
        }
        procs::CONNECT_GET_DOMAIN_CAPABILITIES => {
            let a: DomainCapabilitiesArgs = args!();
            let m = &flags::GET_DOMAIN_CAPABILITIES;
            s.check(m, a.flags)?;
            // the emulator is the driver's own: any path names the one probed
            let virttype =
                match a.virttype.as_deref() {
                    None | Some("") => None,
                    Some(t) => Some(t.parse::<DomainType>().map_err(|_| {
                        s.error(Code::InvalidArg, &format!("unknown virttype: {t}"))
                    })?),
                };
            s.host_read(shared).await?;
            let xml = core
                .libvirt_domain_capabilities(
                    &view.types,
                    virttype,
                    a.arch.as_deref().filter(|a| !a.is_empty()),
                    a.machine.as_deref().filter(|m| !m.is_empty()),
                )
                .map_err(|e| RpcError::from_core(e, flavor, m))?;
            ok(StringRet { value: xml })
        }
        procs::NODE_GET_INFO => {
            Reader::decode::<()>(body)?;
            s.host_read(shared).await?;
            node_info(s)
        }
        procs::NODE_GET_SECURITY_MODEL => {
            Reader::decode::<()>(body)?;
            s.host_read(shared).await?;
            // virtbus applies no security driver: libvirt then reports an empty model
            ok(SecurityModelRet::default())
        }
        procs::CONNECT_REGISTER_CLOSE_CALLBACK | procs::CONNECT_UNREGISTER_CLOSE_CALLBACK => {
            // libvirt.so calls the callback itself when the connection closes
            Reader::decode::<()>(body)?;
            ok(())
        }
        procs::CONNECT_LIST_ALL_DOMAINS => {
            let a: ListAllDomainsArgs = args!();
            let m = &flags::LIST_ALL_DOMAINS;
            s.check(m, a.flags)?;
            // No domain has checkpoints.
            let doms = if m.has(a.flags, "has-checkpoint") && !m.has(a.flags, "no-checkpoint") {
                Vec::new()
            } else {
                let all = core.list(&list_filter(&view.types, m, a.flags));
                let mut out = Vec::with_capacity(all.len());
                for d in all {
                    if shared.authz.allows_everything()
                        || s.authorize(shared, Operation::ReadDomain, &d).await.is_ok()
                    {
                        out.push(d);
                    }
                }
                out
            };
            let ret = doms.len() as u32;
            let domains = if a.need_results != 0 {
                doms.iter().map(|d| wire_dom(d)).collect()
            } else {
                Vec::new()
            };
            ok(ListAllDomainsRet {
                domains: Array(domains),
                ret,
            })
        }
        procs::DOMAIN_LOOKUP_BY_ID => {
            let a: LookupByIdArgs = args!();
            if a.id < 0 {
                return Err(RpcError::from_compat(
                    crate::compat::errors::bare(
                        "id in virDomainLookupByID must be zero or greater".into(),
                    ),
                    flavor,
                ));
            }
            let dom = core
                .domains()
                .into_iter()
                .find(|d| s.shows(d) && d.info().id == Some(a.id as u32))
                .ok_or_else(|| not_found(s, &format!("no domain with matching id {}", a.id)))?;
            found(shared, s, &dom).await
        }
        procs::DOMAIN_LOOKUP_BY_NAME => {
            let a: LookupByNameArgs = args!();
            let dom = core
                .lookup(&a.name)
                .ok()
                .filter(|d| s.shows(d) && d.name() == a.name)
                .ok_or_else(|| {
                    not_found(s, &format!("no domain with matching name '{}'", a.name))
                })?;
            found(shared, s, &dom).await
        }
        procs::DOMAIN_LOOKUP_BY_UUID => {
            let a: LookupByUuidArgs = args!();
            let uuid = Uuid::from_bytes(a.uuid);
            let dom = core
                .get(&uuid)
                .filter(|d| s.shows(d))
                .ok_or_else(|| not_found(s, &format!("no domain with matching uuid '{uuid}'")))?;
            found(shared, s, &dom).await
        }
        procs::DOMAIN_DEFINE_XML => {
            let a: DefineXmlArgs = args!();
            define(shared, s, &a.xml).await
        }
        procs::DOMAIN_DEFINE_XML_FLAGS => {
            let a: DefineXmlFlagsArgs = args!();
            s.check(&flags::DOMAIN_DEFINE_XML_FLAGS, a.flags)?;
            define(shared, s, &a.xml).await
        }
        procs::DOMAIN_CREATE | procs::DOMAIN_CREATE_WITH_FLAGS => {
            let (d, fl) = dom_flags(proc_ == procs::DOMAIN_CREATE_WITH_FLAGS, body)?;
            let dom = s.domain(&d)?;
            let m = &flags::CREATE;
            s.check(m, fl)?;
            let opts = StartOptions {
                paused: m.has(fl, "paused"),
                force_boot: m.has(fl, "force-boot"),
            };
            s.run(shared, m, &dom, ops::Start { opts }).await?;
            if proc_ == procs::DOMAIN_CREATE {
                ok(())
            } else {
                // the domain again, with the id it now has
                ok(DomainRet {
                    dom: wire_dom(&dom),
                })
            }
        }
        procs::DOMAIN_DESTROY | procs::DOMAIN_DESTROY_FLAGS => {
            let (d, fl) = dom_flags(proc_ == procs::DOMAIN_DESTROY_FLAGS, body)?;
            let dom = s.domain(&d)?;
            let m = match flavor {
                Flavor::Qemu | Flavor::Test => &flags::DESTROY,
                // libvirt's LXC driver takes no flag (no graceful destroy of a container)
                Flavor::Lxc => &DESTROY_LXC,
            };
            s.check(m, fl)?;
            let opts = DestroyOptions {
                graceful: m.has(fl, "graceful"),
            };
            done!(m, dom, ops::Destroy { opts })
        }
        procs::DOMAIN_SHUTDOWN | procs::DOMAIN_SHUTDOWN_FLAGS => {
            let (d, fl) = dom_flags(proc_ == procs::DOMAIN_SHUTDOWN_FLAGS, body)?;
            let dom = s.domain(&d)?;
            let m = flags::power_method(s.flavor(), false);
            s.check(m, fl)?;
            let mode = power_mode(m, fl);
            done!(m, dom, ops::Shutdown { mode })
        }
        procs::DOMAIN_SUSPEND => {
            let a: DomainArgs = args!();
            let dom = s.domain(&a.dom)?;
            done!(&flags::SUSPEND, dom, ops::Suspend {})
        }
        procs::DOMAIN_RESUME => {
            let a: DomainArgs = args!();
            let dom = s.domain(&a.dom)?;
            done!(&flags::RESUME, dom, ops::Resume {})
        }
        procs::DOMAIN_UNDEFINE | procs::DOMAIN_UNDEFINE_FLAGS => {
            let (d, fl) = dom_flags(proc_ == procs::DOMAIN_UNDEFINE_FLAGS, body)?;
            let dom = s.domain(&d)?;
            let m = &flags::UNDEFINE;
            s.check(m, fl)?;
            let opts = undefine_options(m, fl).map_err(|e| RpcError::from_compat(e, flavor))?;
            done!(m, dom, ops::Undefine { opts })
        }
        procs::DOMAIN_GET_XML_DESC => {
            let a: DomainFlagsArgs = args!();
            let dom = s.domain(&a.dom)?;
            let m = &flags::GET_XML_DESC;
            s.check(m, a.flags)?;
            let opts = xml_options(m, a.flags);
            if opts.secure && s.readonly {
                return Err(RpcError::read_only(&format!("{} with secure flag", m.api)));
            }
            let xml = s.run(shared, m, &dom, ops::GetXml { opts }).await?;
            ok(StringRet { value: xml })
        }
        procs::DOMAIN_GET_STATE => {
            let a: DomainFlagsArgs = args!();
            let dom = s.domain(&a.dom)?;
            s.check(&flags::GET_STATE, a.flags)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            let st = dom.info().status;
            ok(DomainGetStateRet {
                state: st.state.code(),
                reason: st.reason.code(st.state),
            })
        }
        procs::DOMAIN_GET_INFO => {
            let a: DomainArgs = args!();
            let dom = s.domain(&a.dom)?;
            domain_info(shared, s, &dom).await
        }
        procs::DOMAIN_GET_OS_TYPE => {
            let a: DomainArgs = args!();
            let dom = s.domain(&a.dom)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            let os = match flavor {
                // libvirt's test driver names every guest's OS so
                Flavor::Test => "linux",
                Flavor::Qemu | Flavor::Lxc => dom.os_type(),
            };
            ok(StringRet { value: os.into() })
        }
        procs::DOMAIN_GET_AUTOSTART | procs::DOMAIN_IS_ACTIVE | procs::DOMAIN_IS_PERSISTENT => {
            let a: DomainArgs = args!();
            let dom = s.domain(&a.dom)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            let info = dom.info();
            int(match proc_ {
                procs::DOMAIN_GET_AUTOSTART => info.autostart,
                procs::DOMAIN_IS_ACTIVE => info.status.is_active(),
                _ => info.persistent,
            })
        }
        procs::DOMAIN_HAS_MANAGED_SAVE_IMAGE => {
            let a: DomainFlagsArgs = args!();
            let dom = s.domain(&a.dom)?;
            let m = &flags::HAS_MANAGED_SAVE;
            s.check(m, a.flags)?;
            int(s.run(shared, m, &dom, ops::HasManagedSave {}).await?)
        }
        procs::DOMAIN_GET_SECURITY_LABEL => {
            let a: DomainArgs = args!();
            let dom = s.domain(&a.dom)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            // no security driver: no label, not enforcing
            ok(SecurityLabelRet {
                label: Chars(Vec::new()),
                enforcing: 0,
            })
        }
        procs::DOMAIN_SNAPSHOT_NUM => {
            let a: DomainFlagsArgs = args!();
            let dom = s.domain(&a.dom)?;
            let m = &flags::LIST_SNAPSHOTS;
            s.check(m, a.flags)?;
            let opts = snapshot_filters(m, a.flags);
            let names = s.run(shared, m, &dom, ops::SnapshotList { opts }).await?;
            ok(SnapshotNumRet {
                num: i32::try_from(names.len()).unwrap_or(i32::MAX),
            })
        }
        procs::DOMAIN_GET_MESSAGES => {
            let a: DomainFlagsArgs = args!();
            let dom = s.domain(&a.dom)?;
            s.check(&GET_MESSAGES, a.flags)?;
            s.authorize(shared, Operation::ReadDomain, &dom).await?;
            // virtbus runs no deprecated configuration: its messages are taints
            let all = a.flags == 0 || GET_MESSAGES.has(a.flags, "tainting");
            let msgs = if all {
                taint_messages(&dom)
            } else {
                Vec::new()
            };
            ok(MessagesRet { msgs: Array(msgs) })
        }
        // events and snapshots (rpcev), and the reboots that raise events
        procs::DOMAIN_REBOOT | procs::DOMAIN_RESET => {
            let a: DomainFlagsArgs = args!();
            let dom = s.domain(&a.dom)?;
            if proc_ == procs::DOMAIN_RESET {
                s.check(&flags::RESET, a.flags)?;
                done!(&flags::RESET, dom, ops::Reset {})
            } else {
                let m = flags::power_method(s.flavor(), true);
                s.check(m, a.flags)?;
                let mode = power_mode(m, a.flags);
                done!(m, dom, ops::Reboot { mode })
            }
        }
        p if event_calls::handles(p) => event_calls::call(shared, s, p, body).await,
        p if snapshots::handles(p) => snapshots::call(shared, s, p, body).await,
        p if netcalls::handles(p) => netcalls::call(shared, s, p, body).await,
        p if super::more::handles(p) => super::more::call(shared, s, p, body).await,
        p if super::lxcproto::handles(p) => {
            super::lxcproto::call(shared, s, p, body, Vec::new()).await
        }
        // networks, storage, host interfaces, node devices and statistics
        p if super::objproto::procs::handles(p) => super::objects::call(shared, s, p, body).await,
        p => Err(RpcError::no_support(&format!(
            "unknown procedure: {p} (not implemented by virtbus)"
        ))),
    }
}

/// `lxc:///`'s destroy: libvirt's LXC driver takes no flags.
const DESTROY_LXC: Method = Method {
    api: "virDomainDestroyFlags",
    driver_fn: "DomainDestroyFlags",
    flags: &[],
};

/// `virDomainGetMessages`, which the facade does not serve.
const GET_MESSAGES: Method = Method {
    api: "virDomainGetMessages",
    driver_fn: "DomainGetMessages",
    flags: &[
        Flag {
            bit: 1,
            name: "VIR_DOMAIN_MESSAGE_DEPRECATION",
            option: "deprecation",
        },
        Flag {
            bit: 2,
            name: "VIR_DOMAIN_MESSAGE_TAINTING",
            option: "tainting",
        },
    ],
};

/// Why nothing vouches for the running `dom` (custom monitor or agent commands issued), as
/// `virDomainGetMessages` words it.
fn taint_messages(dom: &Domain) -> Vec<String> {
    dom.taints()
        .into_iter()
        .map(|t| format!("tainted: {t}"))
        .collect()
}

/// The domain and flags of a `*_FLAGS` procedure, or the domain alone (flags 0) of its
/// older twin.
fn dom_flags(with_flags: bool, body: &[u8]) -> RpcResult<(Dom, u32)> {
    Ok(if with_flags {
        let a: DomainFlagsArgs = Reader::decode(body)?;
        (a.dom, a.flags)
    } else {
        let a: DomainArgs = Reader::decode(body)?;
        (a.dom, 0)
    })
}

fn not_found(s: &Session, msg: &str) -> RpcError {
    match s.flavor() {
        Flavor::Test => RpcError::from_compat(libvirt(Code::NoDomain, None), Flavor::Test),
        Flavor::Qemu | Flavor::Lxc => s.error(Code::NoDomain, msg),
    }
}

/// Authorize reading a domain a lookup found, and return it.
async fn found(shared: &Shared, s: &Session, dom: &Domain) -> RpcResult<Vec<u8>> {
    s.authorize(shared, Operation::ReadDomain, dom).await?;
    ok(DomainRet { dom: wire_dom(dom) })
}

async fn define(shared: &Shared, s: &Session, xml: &str) -> RpcResult<Vec<u8>> {
    let flavor = s.flavor();
    let m = &flags::DOMAIN_DEFINE_XML;
    s.writable(m)?;
    let err = |e| RpcError::from_core(e, flavor, m);
    let (def, owner) = s
        .definition(shared, m, xml, &[Operation::DefineDomain])
        .await?;
    let core = &s.view.core;
    let dom = core.define(def, owner).await.map_err(err)?;
    ok(DomainRet {
        dom: wire_dom(&dom),
    })
}

/// `virDomainGetInfo`: state, memory, vCPUs and CPU time.
async fn domain_info(shared: &Shared, s: &Session, dom: &Arc<Domain>) -> RpcResult<Vec<u8>> {
    let groups = vec![StatsGroup::CpuTotal, StatsGroup::Balloon];
    let stats = s
        .run(shared, &flags::PROPERTY, dom, ops::GetStats { groups })
        .await?;
    let stat = |k: &str| {
        stats
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| match v {
                StatValue::U64(n) => Some(*n),
                StatValue::I64(n) => u64::try_from(*n).ok(),
                StatValue::Str(_) => None,
            })
    };
    let info = dom.info();
    let (max, current) = dom.memory_kib();
    ok(DomainGetInfoRet {
        state: info.status.state.code() as u32,
        max_mem: stat("balloon.maximum").unwrap_or(max),
        memory: stat("balloon.current").unwrap_or(current),
        nr_virt_cpu: info.vcpus,
        cpu_time: stat("cpu.time").unwrap_or(0),
    })
}

/// `virNodeGetInfo` of the host.
fn node_info(s: &Session) -> RpcResult<Vec<u8>> {
    let h =
        host::info().map_err(|e| s.error(Code::Internal, &format!("cannot read the host: {e}")))?;
    let mut model = FixedChars::<32>::default();
    // libvirt's field holds the architecture, NUL-terminated
    let arch = h.arch.as_bytes();
    let n = arch.len().min(31);
    model.0[..n].copy_from_slice(&arch[..n]);
    let i = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    ok(NodeGetInfoRet {
        model,
        memory: h.memory_kib,
        cpus: i(h.cpus),
        mhz: i(h.mhz),
        nodes: i(h.nodes),
        sockets: i(h.sockets),
        cores: i(h.cores),
        threads: i(h.threads),
    })
}
