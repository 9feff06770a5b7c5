//! `virsh migrate` (libvirt's version 3 migration with extensible parameters, and the plain
//! version 3 calls) and the migration tuning commands (`migrate-setmaxdowntime`,
//! `migrate-setspeed`, `migrate-compcache`, `migrate-postcopy`…), decoded into the core's
//! migration steps. Only the QEMU flavor migrates: libvirt's test driver has no migration,
//! and virtbus's LXC driver none either.

use super::procs;
use crate::{
    compat::{
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        define::Caller,
        migrate::MigrateOptions,
        ops::{self, Operation},
    },
    drivers::migrate::MigrateSetting,
    rpc::{
        Shared,
        dispatch::{Session, ok, wire_dom},
        error::{RpcError, RpcResult},
        objproto::{TypedParam, TypedValue},
        proto::Dom,
        xdr::{Array, Reader, Xdr, XdrError, xdr_struct},
    },
};

const PARAMS_MAX: usize = 64;
/// `REMOTE_MIGRATE_COOKIE_MAX`.
const COOKIE_MAX: usize = 4_194_304;

/// `opaque cookie<REMOTE_MIGRATE_COOKIE_MAX>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieBytes(pub Vec<u8>);

impl Xdr for CookieBytes {
    fn put(&self, w: &mut Vec<u8>) {
        (self.0.len() as u32).put(w);
        w.extend_from_slice(&self.0);
        w.extend(std::iter::repeat_n(0, (4 - self.0.len() % 4) % 4));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let n = u32::get(r)? as usize;
        if n > COOKIE_MAX {
            return Err(XdrError::ArrayTooLong {
                len: n,
                max: COOKIE_MAX,
            });
        }
        Ok(Self(r.opaque(n)?.to_vec()))
    }
}

type Params = Array<TypedParam, PARAMS_MAX>;

xdr_struct! {
    Begin3ParamsArgs { dom: Dom, params: Params, flags: u32 }
    Begin3ParamsRet { cookie_out: CookieBytes, xml: String }
    Prepare3ParamsArgs { params: Params, cookie_in: CookieBytes, flags: u32 }
    Prepare3ParamsRet { cookie_out: CookieBytes, uri_out: Option<String> }
    Perform3ParamsArgs {
        dom: Dom, dconnuri: Option<String>, params: Params, cookie_in: CookieBytes, flags: u32
    }
    CookieRet { cookie_out: CookieBytes }
    Finish3ParamsArgs { params: Params, cookie_in: CookieBytes, flags: u32, cancelled: i32 }
    Finish3Ret { dom: Dom, cookie_out: CookieBytes }
    Confirm3ParamsArgs {
        dom: Dom, params: Params, cookie_in: CookieBytes, flags: u32, cancelled: i32
    }
    Begin3Args {
        dom: Dom, xmlin: Option<String>, flags: u64, dname: Option<String>, resource: u64
    }
    Prepare3Args {
        cookie_in: CookieBytes, uri_in: Option<String>, flags: u64, dname: Option<String>,
        resource: u64, dom_xml: String
    }
    Perform3Args {
        dom: Dom, xmlin: Option<String>, cookie_in: CookieBytes, dconnuri: Option<String>,
        uri: Option<String>, flags: u64, dname: Option<String>, resource: u64
    }
    Finish3Args {
        dname: String, cookie_in: CookieBytes, dconnuri: Option<String>, uri: Option<String>,
        flags: u64, cancelled: i32
    }
    Confirm3Args { dom: Dom, cookie_in: CookieBytes, flags: u64, cancelled: i32 }
    DomFlagsArgs { dom: Dom, flags: u32 }
    ULongRet { value: u64 }
    SetULongArgs { dom: Dom, value: u64, flags: u32 }
}

const fn f(bit: u32, name: &'static str, option: &'static str) -> Flag {
    Flag { bit, name, option }
}

/// The migration flags virtbus carries out (libvirt's QEMU driver knows more: the others —
/// peer-to-peer, tunnelled, non-shared storage, TLS, RDMA, parallel, zero-copy, post-copy
/// resume — are refused as libvirt refuses a flag its driver lacks).
const FLAGS: &[Flag] = &[
    f(1, "VIR_MIGRATE_LIVE", "live"),
    f(8, "VIR_MIGRATE_PERSIST_DEST", "persistent"),
    f(16, "VIR_MIGRATE_UNDEFINE_SOURCE", "undefinesource"),
    f(32, "VIR_MIGRATE_PAUSED", "suspend"),
    f(256, "VIR_MIGRATE_CHANGE_PROTECTION", "change-protection"),
    f(512, "VIR_MIGRATE_UNSAFE", "unsafe"),
    f(1024, "VIR_MIGRATE_OFFLINE", "offline"),
    f(2048, "VIR_MIGRATE_COMPRESSED", "compressed"),
    f(4096, "VIR_MIGRATE_ABORT_ON_ERROR", "abort-on-error"),
    f(8192, "VIR_MIGRATE_AUTO_CONVERGE", "auto-converge"),
    f(32768, "VIR_MIGRATE_POSTCOPY", "postcopy"),
];

const fn method(api: &'static str, driver_fn: &'static str) -> Method {
    Method {
        api,
        driver_fn,
        flags: FLAGS,
    }
}

const POSTCOPY_SPEED: Flag = f(1, "VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY", "postcopy");

/// The typed parameters of the `*_PARAMS` calls, as `virTypedParamsValidate` checks them
/// against the ones libvirt's QEMU driver takes; the ones virtbus does not carry out are
/// refused by name.
fn options(
    s: &Session,
    params: Vec<TypedParam>,
    flags: u32,
    m: &Method,
) -> RpcResult<MigrateOptions> {
    let mut o = options_of_flags(flags, m);
    for p in params {
        let string = |v: &TypedValue| match v {
            TypedValue::String(x) => Ok(x.clone()),
            other => Err(s.error(
                Code::InvalidArg,
                &format!(
                    "invalid type '{}' for parameter '{}', expected 'string'",
                    other.type_name(),
                    p.field
                ),
            )),
        };
        match p.field.as_str() {
            "migrate_uri" => o.uri = Some(string(&p.value)?),
            "destination_name" => o.dname = Some(string(&p.value)?),
            "destination_xml" => o.dest_xml = Some(string(&p.value)?),
            "persistent_xml" => o.persist_xml = Some(string(&p.value)?),
            "listen_address" => o.listen_address = Some(string(&p.value)?),
            "bandwidth" => match p.value {
                TypedValue::ULLong(v) => o.bandwidth = Some(v),
                ref other => {
                    return Err(s.error(
                        Code::InvalidArg,
                        &format!(
                            "invalid type '{}' for parameter 'bandwidth', expected 'ullong'",
                            other.type_name()
                        ),
                    ));
                }
            },
            // libvirt's QEMU driver takes these; virtbus does not carry them out
            "graphics_uri"
            | "migrate_disks"
            | "disks_port"
            | "disks_uri"
            | "compression"
            | "compression.mt.level"
            | "compression.mt.threads"
            | "compression.mt.dthreads"
            | "compression.xbzrle.cache"
            | "compression.zlib.level"
            | "compression.zstd.level"
            | "auto_converge.initial"
            | "auto_converge.increment"
            | "bandwidth.postcopy"
            | "parallel.connections"
            | "tls.destination" => {
                return Err(s.error(
                    Code::ArgumentUnsupported,
                    &format!(
                        "migration parameter '{}' is not supported by virtbus",
                        p.field
                    ),
                ));
            }
            other => {
                return Err(s.error(
                    Code::InvalidArg,
                    &format!("parameter '{other}' not supported"),
                ));
            }
        }
    }
    Ok(o)
}

fn options_of_flags(flags: u32, m: &Method) -> MigrateOptions {
    MigrateOptions {
        live: m.has(flags, "live"),
        offline: m.has(flags, "offline"),
        persist_dest: m.has(flags, "persistent"),
        undefine_source: m.has(flags, "undefinesource"),
        paused: m.has(flags, "suspend"),
        auto_converge: m.has(flags, "auto-converge"),
        compressed: m.has(flags, "compressed"),
        postcopy: m.has(flags, "postcopy"),
        ..MigrateOptions::default()
    }
}

/// The flags of the plain version 3 calls (an `unsigned hyper` there).
fn flags32(s: &Session, flags: u64) -> RpcResult<u32> {
    u32::try_from(flags).map_err(|_| {
        s.error(
            Code::InvalidArg,
            &format!("unsupported flags (0x{flags:x}) in migration"),
        )
    })
}

fn core_err(s: &Session, m: &Method) -> impl Fn(crate::core::Error) -> RpcError + use<> {
    let (flavor, m) = (s.flavor(), *m);
    move |e| RpcError::from_core(e, flavor, &m)
}

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    if s.flavor() != Flavor::Qemu {
        // libvirt's test driver has none of these; virtbus's LXC driver migrates nothing
        return Err(RpcError::no_support(api_of(p)));
    }
    match p {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS | procs::DOMAIN_MIGRATE_BEGIN3 => {
            let (d, o, m) = if p == procs::DOMAIN_MIGRATE_BEGIN3_PARAMS {
                let a: Begin3ParamsArgs = Reader::decode(body)?;
                let m = method("virDomainMigrateBegin3Params", "DomainMigrateBegin3Params");
                s.check(&m, a.flags)?;
                let o = options(s, a.params.0, a.flags, &m)?;
                (a.dom, o, m)
            } else {
                let a: Begin3Args = Reader::decode(body)?;
                let m = method("virDomainMigrateBegin3", "DomainMigrateBegin3");
                let fl = flags32(s, a.flags)?;
                s.check(&m, fl)?;
                let mut o = options_of_flags(fl, &m);
                o.dest_xml = a.xmlin;
                o.dname = a.dname;
                o.bandwidth = (a.resource > 0).then_some(a.resource);
                (a.dom, o, m)
            };
            s.writable(&m)?;
            let dom = s.domain(&d)?;
            let (xml, cookie) = s
                .run(shared, &m, &dom, ops::MigrateBegin { opts: o })
                .await?;
            ok(Begin3ParamsRet {
                cookie_out: CookieBytes(cookie),
                xml,
            })
        }
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS | procs::DOMAIN_MIGRATE_PREPARE3 => {
            let (xml, cookie, o, m) = if p == procs::DOMAIN_MIGRATE_PREPARE3_PARAMS {
                let a: Prepare3ParamsArgs = Reader::decode(body)?;
                let m = method(
                    "virDomainMigratePrepare3Params",
                    "DomainMigratePrepare3Params",
                );
                s.check(&m, a.flags)?;
                let o = options(s, a.params.0, a.flags, &m)?;
                let Some(xml) = o.dest_xml.clone() else {
                    return Err(s.error(Code::InvalidArg, "no domain XML passed"));
                };
                (xml, a.cookie_in.0, o, m)
            } else {
                let a: Prepare3Args = Reader::decode(body)?;
                let m = method("virDomainMigratePrepare3", "DomainMigratePrepare3");
                let fl = flags32(s, a.flags)?;
                s.check(&m, fl)?;
                let mut o = options_of_flags(fl, &m);
                o.uri = a.uri_in;
                o.dname = a.dname;
                (a.dom_xml, a.cookie_in.0, o, m)
            };
            s.writable(&m)?;
            let (_, caller) = s
                .definition(shared, &m, &xml, &[Operation::MigrateIn])
                .await?;
            let r = s
                .view
                .core
                .migrate_prepare(&xml, &cookie, &o, caller)
                .await
                .map_err(core_err(s, &m));
            s.exec(shared).signals_sent().await;
            let (cookie, uri) = r?;
            ok(Prepare3ParamsRet {
                cookie_out: CookieBytes(cookie),
                uri_out: Some(uri),
            })
        }
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS | procs::DOMAIN_MIGRATE_PERFORM3 => {
            let (d, cookie, dconnuri, o, m) = if p == procs::DOMAIN_MIGRATE_PERFORM3_PARAMS {
                let a: Perform3ParamsArgs = Reader::decode(body)?;
                let m = method(
                    "virDomainMigratePerform3Params",
                    "DomainMigratePerform3Params",
                );
                s.check(&m, a.flags)?;
                let o = options(s, a.params.0, a.flags, &m)?;
                (a.dom, a.cookie_in.0, a.dconnuri, o, m)
            } else {
                let a: Perform3Args = Reader::decode(body)?;
                let m = method("virDomainMigratePerform3", "DomainMigratePerform3");
                let fl = flags32(s, a.flags)?;
                s.check(&m, fl)?;
                let mut o = options_of_flags(fl, &m);
                o.uri = a.uri;
                o.dname = a.dname;
                o.bandwidth = (a.resource > 0).then_some(a.resource);
                (a.dom, a.cookie_in.0, a.dconnuri, o, m)
            };
            s.writable(&m)?;
            if dconnuri.is_some() {
                // a destination to connect to: peer-to-peer, which virtbus does not do
                return Err(s.error(
                    Code::ArgumentUnsupported,
                    "peer-to-peer migration is not supported by virtbus",
                ));
            }
            let dom = s.domain(&d)?;
            let cookie = s
                .run(shared, &m, &dom, ops::MigratePerform { cookie, opts: o })
                .await?;
            ok(CookieRet {
                cookie_out: CookieBytes(cookie),
            })
        }
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS | procs::DOMAIN_MIGRATE_FINISH3 => {
            let (name, cookie, cancelled, o, m) = if p == procs::DOMAIN_MIGRATE_FINISH3_PARAMS {
                let a: Finish3ParamsArgs = Reader::decode(body)?;
                let m = method(
                    "virDomainMigrateFinish3Params",
                    "DomainMigrateFinish3Params",
                );
                s.check(&m, a.flags)?;
                let o = options(s, a.params.0, a.flags, &m)?;
                let Some(name) = o.dname.clone() else {
                    return Err(s.error(Code::InvalidArg, "missing destination name parameter"));
                };
                (name, a.cookie_in.0, a.cancelled != 0, o, m)
            } else {
                let a: Finish3Args = Reader::decode(body)?;
                let m = method("virDomainMigrateFinish3", "DomainMigrateFinish3");
                let fl = flags32(s, a.flags)?;
                s.check(&m, fl)?;
                let o = options_of_flags(fl, &m);
                (a.dname, a.cookie_in.0, a.cancelled != 0, o, m)
            };
            s.writable(&m)?;
            if let Ok(dom) = s.view.core.lookup(&name) {
                s.authorize(shared, Operation::MigrateIn, &dom).await?;
            } else if !o.offline {
                return Err(s.error(
                    Code::NoDomain,
                    &format!("no domain with matching name '{name}'"),
                ));
            }
            let r = s
                .view
                .core
                .migrate_finish(&name, &cookie, &o, cancelled, Caller::default())
                .await
                .map_err(core_err(s, &m));
            s.exec(shared).signals_sent().await;
            let (dom, cookie) = r?;
            ok(Finish3Ret {
                dom: wire_dom(&dom),
                cookie_out: CookieBytes(cookie),
            })
        }
        procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS | procs::DOMAIN_MIGRATE_CONFIRM3 => {
            let (d, cookie, cancelled, o, m) = if p == procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS {
                let a: Confirm3ParamsArgs = Reader::decode(body)?;
                let m = method(
                    "virDomainMigrateConfirm3Params",
                    "DomainMigrateConfirm3Params",
                );
                s.check(&m, a.flags)?;
                let o = options(s, a.params.0, a.flags, &m)?;
                (a.dom, a.cookie_in.0, a.cancelled != 0, o, m)
            } else {
                let a: Confirm3Args = Reader::decode(body)?;
                let m = method("virDomainMigrateConfirm3", "DomainMigrateConfirm3");
                let fl = flags32(s, a.flags)?;
                s.check(&m, fl)?;
                (
                    a.dom,
                    a.cookie_in.0,
                    a.cancelled != 0,
                    options_of_flags(fl, &m),
                    m,
                )
            };
            s.writable(&m)?;
            let dom = s.domain(&d)?;
            let req = ops::MigrateConfirm {
                cookie,
                opts: o,
                cancelled,
            };
            s.run(shared, &m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME | procs::DOMAIN_MIGRATE_GET_COMPRESSION_CACHE => {
            let a: DomFlagsArgs = Reader::decode(body)?;
            let (api, which) = if p == procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME {
                ("MigrateGetMaxDowntime", MigrateSetting::MaxDowntime)
            } else {
                (
                    "MigrateGetCompressionCache",
                    MigrateSetting::CompressionCache,
                )
            };
            let m = tuning(api, &[]);
            let dom = s.domain(&a.dom)?;
            s.check(&m, a.flags)?;
            let value = s
                .run(shared, &m, &dom, ops::MigrateSetting { which })
                .await?;
            ok(ULongRet { value })
        }
        procs::DOMAIN_MIGRATE_GET_MAX_SPEED => {
            let a: DomFlagsArgs = Reader::decode(body)?;
            let m = tuning("MigrateGetMaxSpeed", &[POSTCOPY_SPEED]);
            let dom = s.domain(&a.dom)?;
            s.check(&m, a.flags)?;
            let which = if m.has(a.flags, "postcopy") {
                MigrateSetting::MaxPostcopySpeed
            } else {
                MigrateSetting::MaxSpeed
            };
            let value = s
                .run(shared, &m, &dom, ops::MigrateSetting { which })
                .await?;
            ok(ULongRet { value })
        }
        procs::DOMAIN_MIGRATE_SET_MAX_DOWNTIME
        | procs::DOMAIN_MIGRATE_SET_COMPRESSION_CACHE
        | procs::DOMAIN_MIGRATE_SET_MAX_SPEED => {
            let a: SetULongArgs = Reader::decode(body)?;
            let (m, which) = match p {
                procs::DOMAIN_MIGRATE_SET_MAX_DOWNTIME => (
                    tuning("MigrateSetMaxDowntime", &[]),
                    MigrateSetting::MaxDowntime,
                ),
                procs::DOMAIN_MIGRATE_SET_COMPRESSION_CACHE => (
                    tuning("MigrateSetCompressionCache", &[]),
                    MigrateSetting::CompressionCache,
                ),
                _ => (
                    tuning("MigrateSetMaxSpeed", &[POSTCOPY_SPEED]),
                    MigrateSetting::MaxSpeed,
                ),
            };
            let dom = s.domain(&a.dom)?;
            s.check(&m, a.flags)?;
            let which = if m.has(a.flags, "postcopy") {
                MigrateSetting::MaxPostcopySpeed
            } else {
                which
            };
            if matches!(
                which,
                MigrateSetting::MaxSpeed | MigrateSetting::MaxPostcopySpeed
            ) && a.value > crate::drivers::migrate::UNLIMITED_MIB
            {
                return Err(s.error(
                    Code::Overflow,
                    &format!(
                        "bandwidth must be less than {}",
                        crate::drivers::migrate::UNLIMITED_MIB + 1
                    ),
                ));
            }
            s.writable(&m)?;
            let req = ops::SetMigrateSetting {
                which,
                value: a.value,
            };
            s.run(shared, &m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_MIGRATE_START_POST_COPY => {
            let a: DomFlagsArgs = Reader::decode(body)?;
            let m = tuning("MigrateStartPostCopy", &[]);
            let dom = s.domain(&a.dom)?;
            s.check(&m, a.flags)?;
            s.writable(&m)?;
            s.run(shared, &m, &dom, ops::MigrateStartPostCopy {})
                .await?;
            ok(())
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// The method of a tuning call `virDomain<name>` with `flags`.
fn tuning(name: &'static str, flags: &'static [Flag]) -> Method {
    let api: &'static str = match name {
        "MigrateGetMaxDowntime" => "virDomainMigrateGetMaxDowntime",
        "MigrateSetMaxDowntime" => "virDomainMigrateSetMaxDowntime",
        "MigrateGetCompressionCache" => "virDomainMigrateGetCompressionCache",
        "MigrateSetCompressionCache" => "virDomainMigrateSetCompressionCache",
        "MigrateGetMaxSpeed" => "virDomainMigrateGetMaxSpeed",
        "MigrateSetMaxSpeed" => "virDomainMigrateSetMaxSpeed",
        _ => "virDomainMigrateStartPostCopy",
    };
    Method {
        api,
        driver_fn: &api[3..],
        flags,
    }
}

/// The public API of procedure `p`, as `VIR_ERR_NO_SUPPORT` names it.
fn api_of(p: i32) -> &'static str {
    match p {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS | procs::DOMAIN_MIGRATE_BEGIN3 => {
            "virDomainMigrateBegin3Params"
        }
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS | procs::DOMAIN_MIGRATE_PREPARE3 => {
            "virDomainMigratePrepare3Params"
        }
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS | procs::DOMAIN_MIGRATE_PERFORM3 => {
            "virDomainMigratePerform3Params"
        }
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS | procs::DOMAIN_MIGRATE_FINISH3 => {
            "virDomainMigrateFinish3Params"
        }
        procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS | procs::DOMAIN_MIGRATE_CONFIRM3 => {
            "virDomainMigrateConfirm3Params"
        }
        procs::DOMAIN_MIGRATE_GET_MAX_DOWNTIME => "virDomainMigrateGetMaxDowntime",
        procs::DOMAIN_MIGRATE_SET_MAX_DOWNTIME => "virDomainMigrateSetMaxDowntime",
        procs::DOMAIN_MIGRATE_GET_MAX_SPEED => "virDomainMigrateGetMaxSpeed",
        procs::DOMAIN_MIGRATE_SET_MAX_SPEED => "virDomainMigrateSetMaxSpeed",
        procs::DOMAIN_MIGRATE_GET_COMPRESSION_CACHE => "virDomainMigrateGetCompressionCache",
        procs::DOMAIN_MIGRATE_SET_COMPRESSION_CACHE => "virDomainMigrateSetCompressionCache",
        _ => "virDomainMigrateStartPostCopy",
    }
}
