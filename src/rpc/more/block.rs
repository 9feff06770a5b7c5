//! Block procedures of virsh's disk commands: `blkdeviotune`, `domblkerror`,
//! `domblkthreshold`, `blockresize` and the block jobs (`blockpull`, `blockcommit`,
//! `blockcopy`, `blockjob`), each over one core request, with libvirt's flags, typed
//! parameters and unit conversions (bandwidths in MiB/s unless `*_BANDWIDTH_BYTES`).

use super::procs;
use crate::{
    compat::{
        domain::affect,
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        block::{BlockAsk, IotuneChange, JobAsk},
        ops,
    },
    drivers::block::BlockReply,
    model::devices::{DiskFormat, IOTUNE_FIELDS},
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{TypedParam, TypedValue},
        proto::Dom,
        xdr::{Array, Reader, xdr_struct},
    },
};

const IOTUNE_PARAMS_MAX: usize = 32;
const COPY_PARAMS_MAX: usize = 16;
const DISK_ERRORS_MAX: usize = 256;

xdr_struct! {
    GetIoTuneArgs { dom: Dom, disk: Option<String>, nparams: i32, flags: u32 }
    GetIoTuneRet { params: Array<TypedParam, IOTUNE_PARAMS_MAX>, nparams: i32 }
    SetIoTuneArgs {
        dom: Dom,
        disk: String,
        params: Array<TypedParam, IOTUNE_PARAMS_MAX>,
        flags: u32,
    }
    DiskErrorsArgs { dom: Dom, maxerrors: u32, flags: u32 }
    DiskErrorWire { disk: String, error: i32 }
    DiskErrorsRet { errors: Array<DiskErrorWire, DISK_ERRORS_MAX>, nerrors: i32 }
    ThresholdArgs { dom: Dom, dev: String, threshold: u64, flags: u32 }
    PullArgs { dom: Dom, path: String, bandwidth: u64, flags: u32 }
    RebaseArgs { dom: Dom, path: String, base: Option<String>, bandwidth: u64, flags: u32 }
    CommitArgs {
        dom: Dom,
        disk: String,
        base: Option<String>,
        top: Option<String>,
        bandwidth: u64,
        flags: u32,
    }
    CopyArgs {
        dom: Dom,
        path: String,
        destxml: String,
        params: Array<TypedParam, COPY_PARAMS_MAX>,
        flags: u32,
    }
    PathFlagsArgs { dom: Dom, path: String, flags: u32 }
    JobInfoRet { found: i32, kind: i32, bandwidth: u64, cur: u64, end: u64 }
    SpeedArgs { dom: Dom, path: String, bandwidth: u64, flags: u32 }
    ResizeArgs { dom: Dom, disk: String, size: u64, flags: u32 }
}

const fn f(bit: u32, name: &'static str, option: &'static str) -> Flag {
    Flag { bit, name, option }
}

const LIVE: Flag = f(1, "VIR_DOMAIN_AFFECT_LIVE", "live");
const CONFIG: Flag = f(2, "VIR_DOMAIN_AFFECT_CONFIG", "config");

const GET_IOTUNE: Method = Method {
    api: "virDomainGetBlockIoTune",
    driver_fn: "DomainGetBlockIoTune",
    flags: &[LIVE, CONFIG, f(4, "VIR_TYPED_PARAM_STRING_OKAY", "strings")],
};
const SET_IOTUNE: Method = Method {
    api: "virDomainSetBlockIoTune",
    driver_fn: "DomainSetBlockIoTune",
    flags: &[LIVE, CONFIG],
};
const DISK_ERRORS: Method = Method {
    api: "virDomainGetDiskErrors",
    driver_fn: "DomainGetDiskErrors",
    flags: &[],
};
const THRESHOLD: Method = Method {
    api: "virDomainSetBlockThreshold",
    driver_fn: "DomainSetBlockThreshold",
    flags: &[],
};
const PULL: Method = Method {
    api: "virDomainBlockPull",
    driver_fn: "DomainBlockPull",
    flags: &[f(64, "VIR_DOMAIN_BLOCK_PULL_BANDWIDTH_BYTES", "bytes")],
};
const REBASE: Method = Method {
    api: "virDomainBlockRebase",
    driver_fn: "DomainBlockRebase",
    flags: &[
        f(1, "VIR_DOMAIN_BLOCK_REBASE_SHALLOW", "shallow"),
        f(2, "VIR_DOMAIN_BLOCK_REBASE_REUSE_EXT", "reuse"),
        f(4, "VIR_DOMAIN_BLOCK_REBASE_COPY_RAW", "raw"),
        f(8, "VIR_DOMAIN_BLOCK_REBASE_COPY", "copy"),
        f(16, "VIR_DOMAIN_BLOCK_REBASE_RELATIVE", "relative"),
        f(32, "VIR_DOMAIN_BLOCK_REBASE_COPY_DEV", "dev"),
        f(64, "VIR_DOMAIN_BLOCK_REBASE_BANDWIDTH_BYTES", "bytes"),
    ],
};
const COMMIT: Method = Method {
    api: "virDomainBlockCommit",
    driver_fn: "DomainBlockCommit",
    flags: &[
        f(1, "VIR_DOMAIN_BLOCK_COMMIT_SHALLOW", "shallow"),
        f(2, "VIR_DOMAIN_BLOCK_COMMIT_DELETE", "delete"),
        f(4, "VIR_DOMAIN_BLOCK_COMMIT_ACTIVE", "active"),
        f(8, "VIR_DOMAIN_BLOCK_COMMIT_RELATIVE", "relative"),
        f(16, "VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES", "bytes"),
    ],
};
const COPY: Method = Method {
    api: "virDomainBlockCopy",
    driver_fn: "DomainBlockCopy",
    flags: &[
        f(1, "VIR_DOMAIN_BLOCK_COPY_SHALLOW", "shallow"),
        f(2, "VIR_DOMAIN_BLOCK_COPY_REUSE_EXT", "reuse"),
        f(4, "VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB", "transient"),
        f(8, "VIR_DOMAIN_BLOCK_COPY_SYNCHRONOUS_WRITES", "sync"),
    ],
};
const JOB_INFO: Method = Method {
    api: "virDomainGetBlockJobInfo",
    driver_fn: "DomainGetBlockJobInfo",
    flags: &[f(1, "VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES", "bytes")],
};
const ABORT: Method = Method {
    api: "virDomainBlockJobAbort",
    driver_fn: "DomainBlockJobAbort",
    flags: &[
        f(1, "VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC", "async"),
        f(2, "VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT", "pivot"),
    ],
};
const SPEED: Method = Method {
    api: "virDomainBlockJobSetSpeed",
    driver_fn: "DomainBlockJobSetSpeed",
    flags: &[f(1, "VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES", "bytes")],
};
const RESIZE: Method = Method {
    api: "virDomainBlockResize",
    driver_fn: "DomainBlockResize",
    flags: &[f(1, "VIR_DOMAIN_BLOCK_RESIZE_BYTES", "bytes")],
};

/// `VIR_ERR_OVERFLOW`'s text for a bandwidth in MiB/s too large for bytes.
fn bandwidth(s: &Session, mib: u64, bytes: bool) -> RpcResult<u64> {
    if bytes {
        return Ok(mib);
    }
    const LIMIT: u64 = (i64::MAX as u64) >> 20;
    if mib > LIMIT {
        return Err(s.error(
            Code::InvalidArg,
            &format!("bandwidth must be less than {LIMIT}"),
        ));
    }
    Ok(mib << 20)
}

/// The libvirt method of block procedure `p`.
fn method(p: i32) -> &'static Method {
    match p {
        procs::DOMAIN_GET_BLOCK_IO_TUNE => &GET_IOTUNE,
        procs::DOMAIN_SET_BLOCK_IO_TUNE => &SET_IOTUNE,
        procs::DOMAIN_GET_DISK_ERRORS => &DISK_ERRORS,
        procs::DOMAIN_SET_BLOCK_THRESHOLD => &THRESHOLD,
        procs::DOMAIN_BLOCK_RESIZE => &RESIZE,
        procs::DOMAIN_BLOCK_PULL => &PULL,
        procs::DOMAIN_BLOCK_REBASE => &REBASE,
        procs::DOMAIN_BLOCK_COMMIT => &COMMIT,
        procs::DOMAIN_BLOCK_COPY => &COPY,
        procs::DOMAIN_GET_BLOCK_JOB_INFO => &JOB_INFO,
        procs::DOMAIN_BLOCK_JOB_ABORT => &ABORT,
        _ => &SPEED,
    }
}

/// Whether the driver `flavor` stands for has procedure `p`: libvirt's QEMU driver has them
/// all, its test driver the throttling and the disk errors, its LXC driver none.
fn served(flavor: Flavor, p: i32) -> bool {
    match flavor {
        Flavor::Qemu => true,
        Flavor::Test => matches!(
            p,
            procs::DOMAIN_GET_BLOCK_IO_TUNE
                | procs::DOMAIN_SET_BLOCK_IO_TUNE
                | procs::DOMAIN_GET_DISK_ERRORS
        ),
        Flavor::Lxc => false,
    }
}

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    if !served(s.flavor(), p) {
        // libvirt's API layer refuses a change on a read-only connection first
        let read = matches!(
            p,
            procs::DOMAIN_GET_BLOCK_IO_TUNE
                | procs::DOMAIN_GET_DISK_ERRORS
                | procs::DOMAIN_GET_BLOCK_JOB_INFO
        );
        if !read {
            s.writable(method(p))?;
        }
        return Err(RpcError::no_support(method(p).api));
    }
    match p {
        procs::DOMAIN_GET_BLOCK_IO_TUNE => {
            let a: GetIoTuneArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_IOTUNE;
            s.check(m, a.flags)?;
            let all = IOTUNE_FIELDS.len() + 1;
            if a.nparams == 0 {
                s.authorize(shared, ops::Operation::BlockIoTune, &dom)
                    .await?;
                return ok(GetIoTuneRet {
                    params: Array(Vec::new()),
                    nparams: all as i32,
                });
            }
            let disk = a.disk.unwrap_or_default();
            let affect = affect(m, a.flags);
            let t = s
                .run(shared, m, &dom, ops::GetBlockIoTune { disk, affect })
                .await?;
            let mut params = Vec::new();
            for (i, (name, _)) in IOTUNE_FIELDS.iter().enumerate() {
                if i == 13 {
                    params.push(TypedParam {
                        field: "group_name".into(),
                        value: TypedValue::String(t.group_name.clone().unwrap_or_default()),
                    });
                }
                params.push(TypedParam {
                    field: (*name).into(),
                    value: TypedValue::ULLong(t.limits[i]),
                });
            }
            params.truncate(usize::try_from(a.nparams).unwrap_or(0).min(all));
            let n = params.len() as i32;
            ok(GetIoTuneRet {
                params: Array(params),
                nparams: n,
            })
        }
        procs::DOMAIN_SET_BLOCK_IO_TUNE => {
            let a: SetIoTuneArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SET_IOTUNE;
            s.check(m, a.flags)?;
            let mut change = IotuneChange::default();
            for p in a.params.0 {
                match (p.field.as_str(), p.value) {
                    ("group_name", TypedValue::String(g)) => change.group_name = Some(g),
                    (f, TypedValue::ULLong(v)) if IOTUNE_FIELDS.iter().any(|(n, _)| *n == f) => {
                        if v > crate::core::block::IOTUNE_MAX {
                            return Err(s.error(
                                Code::ArgumentUnsupported,
                                &format!(
                                    "block I/O throttle limit value must be no more than {}",
                                    crate::core::block::IOTUNE_MAX
                                ),
                            ));
                        }
                        change.limits.push((f.to_owned(), v))
                    }
                    (f, v) if f == "group_name" || IOTUNE_FIELDS.iter().any(|(n, _)| *n == f) => {
                        let want = if f == "group_name" {
                            "string"
                        } else {
                            "ullong"
                        };
                        return Err(s.error(
                            Code::InvalidArg,
                            &format!(
                                "invalid type '{}' for parameter '{f}', expected '{want}'",
                                v.type_name()
                            ),
                        ));
                    }
                    (f, _) => {
                        return Err(s.error(
                            Code::ArgumentUnsupported,
                            &format!("parameter '{f}' not supported"),
                        ));
                    }
                }
            }
            let affect = affect(m, a.flags);
            let req = ops::SetBlockIoTune {
                disk: a.disk,
                change,
                affect,
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_GET_DISK_ERRORS => {
            let a: DiskErrorsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &DISK_ERRORS;
            s.check(m, a.flags)?;
            if a.maxerrors as usize > DISK_ERRORS_MAX {
                return Err(RpcError::rpc(
                    "maxerrors > REMOTE_DOMAIN_DISK_ERRORS_MAX".into(),
                ));
            }
            let max = (a.maxerrors > 0).then_some(a.maxerrors as usize);
            let (n, errors) = s.run(shared, m, &dom, ops::GetDiskErrors { max }).await?;
            ok(DiskErrorsRet {
                errors: Array(
                    errors
                        .into_iter()
                        .map(|(disk, e)| DiskErrorWire {
                            disk,
                            error: e.code(),
                        })
                        .collect(),
                ),
                nerrors: i32::try_from(n).unwrap_or(i32::MAX),
            })
        }
        procs::DOMAIN_SET_BLOCK_THRESHOLD => {
            let a: ThresholdArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &THRESHOLD;
            s.check(m, a.flags)?;
            let ask = BlockAsk::Threshold { bytes: a.threshold };
            write(shared, s, m, &dom, a.dev, ask).await
        }
        procs::DOMAIN_BLOCK_RESIZE => {
            let a: ResizeArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &RESIZE;
            s.check(m, a.flags)?;
            let bytes = if m.has(a.flags, "bytes") {
                a.size
            } else {
                a.size.checked_mul(1024).ok_or_else(|| {
                    s.error(
                        Code::InvalidArg,
                        &format!("size must be less than {}", u64::MAX / 1024),
                    )
                })?
            };
            write(shared, s, m, &dom, a.disk, BlockAsk::Resize { bytes }).await
        }
        procs::DOMAIN_BLOCK_PULL => {
            let a: PullArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &PULL;
            s.check(m, a.flags)?;
            let bw = bandwidth(s, a.bandwidth, m.has(a.flags, "bytes"))?;
            let ask = BlockAsk::Start {
                job: JobAsk::Pull { base: None },
                bandwidth: bw,
            };
            write(shared, s, m, &dom, a.path, ask).await
        }
        procs::DOMAIN_BLOCK_REBASE => {
            let a: RebaseArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &REBASE;
            s.check(m, a.flags)?;
            let has = |o| m.has(a.flags, o);
            let job = if has("copy") {
                if has("relative") {
                    return Err(s.error(
                        Code::ArgumentUnsupported,
                        "Relative backing during copy not supported yet",
                    ));
                }
                if has("dev") {
                    return Err(s.error(
                        Code::ArgumentUnsupported,
                        "virtbus copies into files only, not block devices",
                    ));
                }
                JobAsk::Copy {
                    dest: a.base.unwrap_or_default(),
                    format: has("raw").then_some(DiskFormat::Raw),
                    shallow: has("shallow"),
                    reuse: has("reuse"),
                    transient_job: false,
                }
            } else {
                if has("relative") {
                    if a.base.is_none() {
                        return Err(s.error(
                            Code::InvalidArg,
                            "flag VIR_DOMAIN_BLOCK_REBASE_RELATIVE is valid only with non-null \
                             base",
                        ));
                    }
                    return Err(s.error(
                        Code::ArgumentUnsupported,
                        "virtbus keeps no relative backing paths",
                    ));
                }
                JobAsk::Pull { base: a.base }
            };
            let bw = bandwidth(s, a.bandwidth, has("bytes"))?;
            let ask = BlockAsk::Start { job, bandwidth: bw };
            write(shared, s, m, &dom, a.path, ask).await
        }
        procs::DOMAIN_BLOCK_COMMIT => {
            let a: CommitArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &COMMIT;
            s.check(m, a.flags)?;
            let has = |o| m.has(a.flags, o);
            for o in ["delete", "relative"] {
                if has(o) {
                    return Err(s.error(
                        Code::ArgumentUnsupported,
                        &format!("virtbus does not do block commit's '{o}' flag"),
                    ));
                }
            }
            let bw = bandwidth(s, a.bandwidth, has("bytes"))?;
            let ask = BlockAsk::Start {
                job: JobAsk::Commit {
                    top: a.top,
                    base: a.base,
                    shallow: has("shallow"),
                    active: has("active"),
                },
                bandwidth: bw,
            };
            write(shared, s, m, &dom, a.disk, ask).await
        }
        procs::DOMAIN_BLOCK_COPY => {
            let a: CopyArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &COPY;
            s.check(m, a.flags)?;
            let mut bw = 0;
            for p in a.params.0 {
                match (p.field.as_str(), p.value) {
                    ("bandwidth", TypedValue::ULLong(v)) => bw = v,
                    ("granularity", TypedValue::UInt(v)) => {
                        if !v.is_power_of_two() {
                            return Err(s.error(Code::InvalidArg, "granularity must be power of 2"));
                        }
                    }
                    ("buf-size", TypedValue::ULLong(_)) => {}
                    (f @ ("bandwidth" | "granularity" | "buf-size"), v) => {
                        let want = if f == "granularity" { "uint" } else { "ullong" };
                        return Err(s.error(
                            Code::InvalidArg,
                            &format!(
                                "invalid type '{}' for parameter '{f}', expected '{want}'",
                                v.type_name()
                            ),
                        ));
                    }
                    (f, _) => {
                        return Err(s.error(
                            Code::ArgumentUnsupported,
                            &format!("parameter '{f}' not supported"),
                        ));
                    }
                }
            }
            let (dest, format) = copy_destination(s, &a.destxml)?;
            let ask = BlockAsk::Start {
                job: JobAsk::Copy {
                    dest,
                    format,
                    shallow: m.has(a.flags, "shallow"),
                    reuse: m.has(a.flags, "reuse"),
                    transient_job: m.has(a.flags, "transient"),
                },
                bandwidth: bw,
            };
            write(shared, s, m, &dom, a.path, ask).await
        }
        procs::DOMAIN_GET_BLOCK_JOB_INFO => {
            let a: PathFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &JOB_INFO;
            s.check(m, a.flags)?;
            let reply = s
                .run(shared, m, &dom, ops::GetBlockJob { disk: a.path })
                .await?;
            let BlockReply::Info(Some(i)) = reply else {
                return ok(JobInfoRet::default());
            };
            let bw = if m.has(a.flags, "bytes") {
                i.bandwidth
            } else {
                i.bandwidth.div_ceil(1 << 20)
            };
            ok(JobInfoRet {
                found: 1,
                kind: i.kind.code(),
                bandwidth: bw,
                cur: i.cur,
                end: i.end,
            })
        }
        procs::DOMAIN_BLOCK_JOB_ABORT => {
            let a: PathFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &ABORT;
            s.check(m, a.flags)?;
            let ask = BlockAsk::Abort {
                pivot: m.has(a.flags, "pivot"),
                wait: !m.has(a.flags, "async"),
            };
            write(shared, s, m, &dom, a.path, ask).await
        }
        procs::DOMAIN_BLOCK_JOB_SET_SPEED => {
            let a: SpeedArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SPEED;
            s.check(m, a.flags)?;
            let bw = bandwidth(s, a.bandwidth, m.has(a.flags, "bytes"))?;
            let ask = BlockAsk::SetSpeed { bandwidth: bw };
            write(shared, s, m, &dom, a.path, ask).await
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// Run a block request that changes the domain (refused on read-only connections).
async fn write(
    shared: &Shared,
    s: &Session,
    m: &Method,
    dom: &std::sync::Arc<crate::core::Domain>,
    disk: String,
    ask: BlockAsk,
) -> RpcResult<Vec<u8>> {
    s.run(shared, m, dom, ops::BlockWrite { disk, ask }).await?;
    ok(())
}

/// The file and format of a block copy's `<disk>` destination.
fn copy_destination(s: &Session, xml: &str) -> RpcResult<(String, Option<DiskFormat>)> {
    let bad = |why: &str| s.error(Code::XmlError, why);
    let doc = roxmltree::Document::parse(xml).map_err(|e| bad(&e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name("disk") {
        return Err(bad("the copy destination must be a <disk> element"));
    }
    match root.attribute("type").unwrap_or("file") {
        "file" => {}
        t => {
            return Err(s.error(
                Code::ConfigUnsupported,
                &format!("virtbus copies into files only, not disk type '{t}'"),
            ));
        }
    }
    let src = root
        .children()
        .find(|n| n.has_tag_name("source"))
        .and_then(|n| n.attribute("file"))
        .ok_or_else(|| bad("the copy destination has no <source file=...>"))?;
    let format = root
        .children()
        .find(|n| n.has_tag_name("driver"))
        .and_then(|n| n.attribute("type"))
        .map(|t| {
            t.parse::<DiskFormat>().map_err(|_| {
                s.error(
                    Code::ConfigUnsupported,
                    &format!("unknown driver format value '{t}'"),
                )
            })
        })
        .transpose()?;
    Ok((src.to_owned(), format))
}
