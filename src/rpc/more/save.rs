//! `virsh save` / `restore` / `save-image-*` / `dump` / `set-memory-stats-period`: saving a
//! guest to a file and back, the XML such a file holds, memory dumps, and the balloon's
//! statistics period, each decoded into the core request the QEMU and test drivers run,
//! with the flags each libvirt driver accepts.

use std::path::PathBuf;

use super::procs;
use crate::{
    compat::{
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        ops::{self, Operation},
        options::{Affect, ManagedSaveOptions},
        save_file::{AfterDump, same_domain, save_image_xml},
    },
    drivers::{DumpFormat, DumpOptions},
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{TypedParam, TypedValue},
        proto::{Dom, StringRet},
        xdr::{Array, Reader, xdr_struct},
    },
};

const SAVE_PARAMS_MAX: usize = 64;

xdr_struct! {
    SaveArgs { dom: Dom, to: String }
    SaveFlagsArgs { dom: Dom, to: String, dxml: Option<String>, flags: u32 }
    SaveParamsArgs { dom: Dom, params: Array<TypedParam, SAVE_PARAMS_MAX>, flags: u32 }
    RestoreArgs { from: String }
    RestoreFlagsArgs { from: String, dxml: Option<String>, flags: u32 }
    RestoreParamsArgs { params: Array<TypedParam, SAVE_PARAMS_MAX>, flags: u32 }
    ImageXmlArgs { file: String, flags: u32 }
    ImageDefineArgs { file: String, dxml: String, flags: u32 }
    CoreDumpArgs { dom: Dom, to: String, flags: u32 }
    CoreDumpFormatArgs { dom: Dom, to: String, dumpformat: u32, flags: u32 }
    StatsPeriodArgs { dom: Dom, period: i32, flags: u32 }
    JobStatsArgs { dom: Dom, flags: u32 }
    AbortJobArgs { dom: Dom }
    JobStatsRet { kind: i32, params: Array<TypedParam, JOB_STATS_MAX> }
}

const JOB_STATS_MAX: usize = 64;

const ABORT_FLAGS: &[Flag] = &[flag(1, "VIR_DOMAIN_ABORT_JOB_POSTCOPY", "postcopy")];

const JOB_STATS: Method = Method {
    api: "virDomainGetJobStats",
    driver_fn: "DomainGetJobStats",
    flags: &[
        flag(1, "VIR_DOMAIN_JOB_STATS_COMPLETED", "completed"),
        flag(2, "VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED", "keep-completed"),
    ],
};

/// libvirt's `virDomainJobOperation` of a core job name.
fn job_operation(job: &str) -> i32 {
    match job {
        "start" => 1,
        "save" | "managed save" => 2,
        "restore" => 3,
        "migration in" => 4,
        "migration out" => 5,
        "snapshot" => 6,
        "revert" => 7,
        "dump" => 8,
        "delete snapshot" => 10,
        _ => 0,
    }
}

const fn flag(bit: u32, name: &'static str, option: &'static str) -> Flag {
    Flag { bit, name, option }
}

const BYPASS_CACHE: Flag = flag(1, "VIR_DOMAIN_SAVE_BYPASS_CACHE", "bypass-cache");
const RUNNING: Flag = flag(2, "VIR_DOMAIN_SAVE_RUNNING", "running");
const PAUSED: Flag = flag(4, "VIR_DOMAIN_SAVE_PAUSED", "paused");
const RESET_NVRAM: Flag = flag(8, "VIR_DOMAIN_SAVE_RESET_NVRAM", "reset-nvram");

/// A method of the QEMU driver's flags, or the test driver's (which accepts fewer).
fn method(
    s: &Session,
    api: &'static str,
    driver_fn: &'static str,
    qemu: &'static [Flag],
    test: &'static [Flag],
) -> Method {
    Method {
        api,
        driver_fn,
        flags: match s.flavor() {
            Flavor::Qemu | Flavor::Lxc => qemu,
            Flavor::Test => test,
        },
    }
}

fn save_method(s: &Session, api: &'static str, driver_fn: &'static str) -> Method {
    method(s, api, driver_fn, &[BYPASS_CACHE, RUNNING, PAUSED], &[])
}

fn restore_method(s: &Session, api: &'static str, driver_fn: &'static str) -> Method {
    method(
        s,
        api,
        driver_fn,
        &[BYPASS_CACHE, RUNNING, PAUSED, RESET_NVRAM],
        &[],
    )
}

const CRASH: Flag = flag(1, "VIR_DUMP_CRASH", "crash");
const DUMP_QEMU: &[Flag] = &[
    CRASH,
    flag(2, "VIR_DUMP_LIVE", "live"),
    flag(4, "VIR_DUMP_BYPASS_CACHE", "bypass-cache"),
    flag(8, "VIR_DUMP_RESET", "reset"),
    flag(16, "VIR_DUMP_MEMORY_ONLY", "memory-only"),
];

fn dump_method(s: &Session, api: &'static str, driver_fn: &'static str) -> Method {
    method(s, api, driver_fn, DUMP_QEMU, &[CRASH])
}

const IMAGE_XML: Method = Method {
    api: "virDomainSaveImageGetXMLDesc",
    driver_fn: "DomainSaveImageGetXMLDesc",
    flags: &[flag(1, "VIR_DOMAIN_SAVE_IMAGE_XML_SECURE", "secure")],
};

const IMAGE_DEFINE: Method = Method {
    api: "virDomainSaveImageDefineXML",
    driver_fn: "DomainSaveImageDefineXML",
    flags: &[RUNNING, PAUSED],
};

const STATS_PERIOD: Method = Method {
    api: "virDomainSetMemoryStatsPeriod",
    driver_fn: "DomainSetMemoryStatsPeriod",
    flags: &[
        flag(1, "VIR_DOMAIN_AFFECT_LIVE", "live"),
        flag(2, "VIR_DOMAIN_AFFECT_CONFIG", "config"),
    ],
};

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    match p {
        procs::DOMAIN_SAVE | procs::DOMAIN_SAVE_FLAGS | procs::DOMAIN_SAVE_PARAMS => {
            save(shared, s, p, body).await
        }
        procs::DOMAIN_RESTORE | procs::DOMAIN_RESTORE_FLAGS | procs::DOMAIN_RESTORE_PARAMS => {
            restore(shared, s, p, body).await
        }
        procs::DOMAIN_SAVE_IMAGE_GET_XML_DESC => {
            let a: ImageXmlArgs = Reader::decode(body)?;
            let m = &IMAGE_XML;
            s.check(m, a.flags)?;
            let secure = m.has(a.flags, "secure");
            if secure {
                s.writable(m)?;
            }
            let path = PathBuf::from(&a.file);
            let (def, _) = image_def(s, m, &path)?;
            let mut ops = vec![Operation::SaveImageRead];
            if secure {
                ops.push(Operation::SaveImageReadSecure);
            }
            let def = authorized(shared, s, m, def, &ops).await?;
            ok(StringRet {
                value: save_image_xml(&def, secure),
            })
        }
        procs::DOMAIN_SAVE_IMAGE_DEFINE_XML => {
            let a: ImageDefineArgs = Reader::decode(body)?;
            let m = &IMAGE_DEFINE;
            s.check(m, a.flags)?;
            s.writable(m)?;
            let path = PathBuf::from(&a.file);
            let (def, _) = image_def(s, m, &path)?;
            authorized(shared, s, m, def, &[Operation::SaveImageDefine]).await?;
            let running = if m.has(a.flags, "running") {
                Some(true)
            } else if m.has(a.flags, "paused") {
                Some(false)
            } else {
                None
            };
            s.view
                .core
                .define_save_image(image_type(s), &path, &a.dxml, running)
                .map_err(|e| RpcError::from_core(e, s.flavor(), m))?;
            ok(())
        }
        procs::DOMAIN_CORE_DUMP | procs::DOMAIN_CORE_DUMP_WITH_FORMAT => {
            let (d, to, format, fl, m) = if p == procs::DOMAIN_CORE_DUMP {
                let a: CoreDumpArgs = Reader::decode(body)?;
                let m = dump_method(s, "virDomainCoreDump", "DomainCoreDumpWithFormat");
                (a.dom, a.to, 0, a.flags, m)
            } else {
                let a: CoreDumpFormatArgs = Reader::decode(body)?;
                let m = dump_method(s, "virDomainCoreDumpWithFormat", "DomainCoreDumpWithFormat");
                (a.dom, a.to, a.dumpformat, a.flags, m)
            };
            let dom = s.domain(&d)?;
            s.check(&m, fl)?;
            let format = match format {
                0 => DumpFormat::Raw,
                1 => DumpFormat::KdumpZlib,
                2 => DumpFormat::KdumpLzo,
                3 => DumpFormat::KdumpSnappy,
                4 => DumpFormat::WinDmp,
                n => {
                    return Err(s.error(Code::InvalidArg, &format!("unknown dumpformat '{n}'")));
                }
            };
            let exclusive = |a: &str, b: &str| m.has(fl, a) && m.has(fl, b);
            if exclusive("crash", "live")
                || exclusive("crash", "reset")
                || exclusive("live", "reset")
            {
                return Err(s.error(
                    Code::InvalidArg,
                    "crash, live and reset flags are mutually exclusive",
                ));
            }
            let after = if m.has(fl, "crash") {
                AfterDump::Crash
            } else if m.has(fl, "reset") {
                AfterDump::Reset
            } else {
                AfterDump::Continue
            };
            let req = ops::CoreDump {
                path: PathBuf::from(to),
                opts: DumpOptions {
                    memory_only: m.has(fl, "memory-only"),
                    format,
                    live: m.has(fl, "live"),
                },
                after,
            };
            s.run(shared, &m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_SET_MEMORY_STATS_PERIOD => {
            let a: StatsPeriodArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &STATS_PERIOD;
            s.check(m, a.flags)?;
            let Ok(secs) = u32::try_from(a.period) else {
                return Err(s.error(Code::InvalidArg, "period parameter must not be negative"));
            };
            let affect = Affect {
                live: m.has(a.flags, "live"),
                config: m.has(a.flags, "config"),
            };
            s.run(shared, m, &dom, ops::SetMemoryStatsPeriod { secs, affect })
                .await?;
            ok(())
        }
        procs::DOMAIN_ABORT_JOB | procs::DOMAIN_ABORT_JOB_FLAGS => {
            let (d, fl) = if p == procs::DOMAIN_ABORT_JOB {
                let a: AbortJobArgs = Reader::decode(body)?;
                (a.dom, 0)
            } else {
                let a: JobStatsArgs = Reader::decode(body)?;
                (a.dom, a.flags)
            };
            let m = Method {
                api: if p == procs::DOMAIN_ABORT_JOB {
                    "virDomainAbortJob"
                } else {
                    "virDomainAbortJobFlags"
                },
                driver_fn: "DomainAbortJobFlags",
                flags: ABORT_FLAGS,
            };
            if s.flavor() == Flavor::Test {
                return Err(RpcError::no_support(m.api));
            }
            let dom = s.domain(&d)?;
            s.check(&m, fl)?;
            s.writable(&m)?;
            if m.has(fl, "postcopy") {
                return Err(s.error(
                    Code::OperationInvalid,
                    "current job is not outgoing migration in post-copy mode",
                ));
            }
            s.run(shared, &m, &dom, ops::AbortJob {}).await?;
            ok(())
        }
        procs::DOMAIN_GET_JOB_STATS => {
            let a: JobStatsArgs = Reader::decode(body)?;
            let m = &JOB_STATS;
            if s.flavor() == Flavor::Test {
                // libvirt's test driver has no job statistics
                return Err(RpcError::no_support(m.api));
            }
            let dom = s.domain(&a.dom)?;
            s.check(m, a.flags)?;
            let backup = crate::core::backup::BackupJobStats {
                completed: m.has(a.flags, "completed"),
                keep: m.has(a.flags, "keep-completed"),
            };
            if let Some(st) = s.run(shared, m, &dom, backup).await? {
                return ok(JobStatsRet {
                    kind: st.kind,
                    params: Array(super::job_params(&st)),
                });
            }
            let job = match dom.running_job() {
                "" => dom.info().job,
                j => j,
            };
            // a migration's figures, as libvirt's QEMU driver gives them
            let migration = if m.has(a.flags, "completed") {
                dom.completed_job().map(|j| (j, 3))
            } else if job == "migration out" {
                s.view
                    .core
                    .migration_stats(&dom)
                    .await
                    .ok()
                    .map(|st| (crate::core::migrate::JobStats::from(&st), 2))
            } else {
                None
            };
            if let Some((stats, kind)) = migration {
                return ok(JobStatsRet {
                    kind,
                    params: Array(super::job_params(&stats.job_stats(kind))),
                });
            }
            // no statistics of completed jobs are kept: none, as libvirt answers before a
            // job completed; a running long job (libvirt's asynchronous ones) is unbounded
            // with its operation, nothing measured
            if m.has(a.flags, "completed") || job_operation(job) == 0 {
                return ok(JobStatsRet::default());
            }
            ok(JobStatsRet {
                kind: 2,
                params: Array(vec![TypedParam {
                    field: "operation".into(),
                    value: TypedValue::Int(job_operation(job)),
                }]),
            })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// The domain type whose driver reads this connection's save images.
fn image_type(s: &Session) -> crate::model::DomainType {
    s.view
        .types
        .first()
        .copied()
        .unwrap_or(crate::model::DomainType::Qemu)
}

/// The definition the image at `path` holds, and whether its guest runs once restored.
fn image_def(
    s: &Session,
    m: &Method,
    path: &std::path::Path,
) -> RpcResult<(crate::model::DomainDef, bool)> {
    s.view
        .core
        .save_image_def(image_type(s), path)
        .map_err(|e| RpcError::from_core(e, s.flavor(), m))
}

/// `def` once the caller may do `ops` with it (and the connection serves its type).
async fn authorized(
    shared: &Shared,
    s: &Session,
    m: &Method,
    def: crate::model::DomainDef,
    ops: &[Operation],
) -> RpcResult<crate::model::DomainDef> {
    let xml = def.to_xml(&crate::model::FormatOptions {
        id: None,
        secure: true,
    });
    Ok(s.definition(shared, m, &xml, ops).await?.0)
}

/// The `file` and `dxml` of a `*_PARAMS` call, checked as `virTypedParamsValidate` does.
fn save_params(
    s: &Session,
    params: Vec<TypedParam>,
) -> RpcResult<(Option<String>, Option<String>)> {
    let (mut file, mut dxml) = (None, None);
    for p in params {
        let slot = match p.field.as_str() {
            "file" => &mut file,
            "dxml" => &mut dxml,
            other => {
                return Err(s.error(
                    Code::ArgumentUnsupported,
                    &format!("parameter '{other}' not supported"),
                ));
            }
        };
        match p.value {
            TypedValue::String(v) => *slot = Some(v),
            _ => {
                return Err(s.error(
                    Code::InvalidArg,
                    &format!(
                        "invalid type '{}' for parameter '{}', expected 'string'",
                        p.value.type_name(),
                        p.field
                    ),
                ));
            }
        }
    }
    Ok((file, dxml))
}

/// Refuse replacement XML where libvirt's test driver does.
fn test_refuses_xml(s: &Session, dxml: &Option<String>) -> RpcResult<()> {
    if s.flavor() == Flavor::Test && dxml.is_some() {
        return Err(s.error(Code::ArgumentUnsupported, "xml modification unsupported"));
    }
    Ok(())
}

async fn save(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    let (d, to, dxml, fl, m) = match p {
        procs::DOMAIN_SAVE => {
            let a: SaveArgs = Reader::decode(body)?;
            let m = save_method(s, "virDomainSave", "DomainSaveFlags");
            (a.dom, Some(a.to), None, 0, m)
        }
        procs::DOMAIN_SAVE_FLAGS => {
            let a: SaveFlagsArgs = Reader::decode(body)?;
            let m = save_method(s, "virDomainSaveFlags", "DomainSaveFlags");
            (a.dom, Some(a.to), a.dxml, a.flags, m)
        }
        _ => {
            let a: SaveParamsArgs = Reader::decode(body)?;
            let m = save_method(s, "virDomainSaveParams", "DomainSaveParams");
            if s.flavor() == Flavor::Test {
                return Err(RpcError::no_support(m.api));
            }
            s.check(&m, a.flags)?;
            let (file, dxml) = save_params(s, a.params.0)?;
            (a.dom, file, dxml, a.flags, m)
        }
    };
    s.check(&m, fl)?;
    test_refuses_xml(s, &dxml)?;
    let dom = s.domain(&d)?;
    let opts = ManagedSaveOptions {
        running: m.has(fl, "running"),
        paused: m.has(fl, "paused"),
    };
    match to {
        Some(path) => {
            let req = ops::Save {
                path: PathBuf::from(path),
                xml: dxml,
                opts,
            };
            s.run(shared, &m, &dom, req).await?;
        }
        // no file: a managed save, as libvirt's QEMU driver does
        None => {
            if dxml.is_some() {
                return Err(s.error(
                    Code::ArgumentUnsupported,
                    "virtbus takes no replacement XML for a managed save",
                ));
            }
            s.run(shared, &m, &dom, ops::ManagedSave { opts }).await?;
        }
    }
    ok(())
}

async fn restore(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    let (from, dxml, fl, m) = match p {
        procs::DOMAIN_RESTORE => {
            let a: RestoreArgs = Reader::decode(body)?;
            let m = restore_method(s, "virDomainRestore", "DomainRestoreFlags");
            (Some(a.from), None, 0, m)
        }
        procs::DOMAIN_RESTORE_FLAGS => {
            let a: RestoreFlagsArgs = Reader::decode(body)?;
            let m = restore_method(s, "virDomainRestoreFlags", "DomainRestoreFlags");
            (Some(a.from), a.dxml, a.flags, m)
        }
        _ => {
            let a: RestoreParamsArgs = Reader::decode(body)?;
            let m = restore_method(s, "virDomainRestoreParams", "DomainRestoreParams");
            if s.flavor() == Flavor::Test {
                return Err(RpcError::no_support(m.api));
            }
            let (file, dxml) = save_params(s, a.params.0)?;
            (file, dxml, a.flags, m)
        }
    };
    s.check(&m, fl)?;
    s.writable(&m)?;
    test_refuses_xml(s, &dxml)?;
    let Some(from) = from else {
        return Err(s.error(Code::InvalidArg, "missing path to restore from"));
    };
    let path = PathBuf::from(from);
    let (image, was_running) = image_def(s, &m, &path)?;
    let xml = match &dxml {
        Some(x) => {
            let new = crate::model::DomainDef::from_xml(x)
                .map_err(|e| RpcError::from_core(e.into(), s.flavor(), &m))?;
            same_domain(&image, &new).map_err(|e| RpcError::from_core(e, s.flavor(), &m))?;
            x.clone()
        }
        None => image.to_xml(&crate::model::FormatOptions {
            id: None,
            secure: true,
        }),
    };
    let (def, owner) = s
        .definition(shared, &m, &xml, &[Operation::Restore])
        .await?;
    let paused = if m.has(fl, "running") {
        false
    } else if m.has(fl, "paused") {
        true
    } else {
        !was_running
    };
    s.view
        .core
        .restore_from_file(def, &path, paused, owner)
        .await
        .map_err(|e| RpcError::from_core(e, s.flavor(), &m))?;
    s.exec(shared).signals_sent().await;
    ok(())
}
