//! Guest agent procedures of virsh's `domtime`, `domfsinfo`, `domfstrim`, `guestvcpus`,
//! `set-user-password` and `get-/set-user-sshkeys`, each over a core request; and the
//! typed parameters of `guestinfo`'s users, filesystems and disks.
//!
//! libvirt's API refuses all of them on a read-only connection (its getters too, since
//! they ask the guest), and words an agent that does not answer as
//! `VIR_ERR_AGENT_UNRESPONSIVE`; both rules are applied here, where the wire's vocabulary is.

use super::procs;
use crate::{
    compat::{
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        self,
        agent::{GUEST_VCPU_MAX_ID, GuestDetails, SshKeysMode, format_bitmap, parse_bitmap},
        ops::{self, DomainOp},
    },
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{TypedParam, TypedValue},
        proto::{Dom, DomainFlagsArgs},
        xdr::{Array, Reader, xdr_struct},
    },
    server::exec::ExecError,
};

const FSINFO_MAX: usize = 256;
const FSINFO_DISKS_MAX: usize = 256;
const GUEST_VCPU_PARAMS_MAX: usize = 64;
const SSH_KEYS_MAX: usize = 2048;

xdr_struct! {
    TimeRet { seconds: i64, nseconds: u32 }
    SetTimeArgs { dom: Dom, seconds: i64, nseconds: u32, flags: u32 }
    FsTrimArgs { dom: Dom, mountpoint: Option<String>, minimum: u64, flags: u32 }
    FsInfo {
        mountpoint: String,
        name: String,
        fstype: String,
        dev_aliases: Array<String, FSINFO_DISKS_MAX>,
    }
    FsInfoRet { info: Array<FsInfo, FSINFO_MAX>, ret: u32 }
    GuestVcpusRet { params: Array<TypedParam, GUEST_VCPU_PARAMS_MAX> }
    SetGuestVcpusArgs { dom: Dom, cpumap: String, state: i32, flags: u32 }
    SetUserPasswordArgs {
        dom: Dom,
        user: Option<String>,
        password: Option<String>,
        flags: u32,
    }
    SshKeysGetArgs { dom: Dom, user: String, flags: u32 }
    SshKeysRet { keys: Array<String, SSH_KEYS_MAX> }
    SshKeysSetArgs { dom: Dom, user: String, keys: Array<String, SSH_KEYS_MAX>, flags: u32 }
}

const fn method(api: &'static str, driver_fn: &'static str, flags: &'static [Flag]) -> Method {
    Method {
        api,
        driver_fn,
        flags,
    }
}

const GET_TIME: Method = method("virDomainGetTime", "DomainGetTime", &[]);
const SET_TIME: Method = method(
    "virDomainSetTime",
    "DomainSetTime",
    &[Flag {
        bit: 1,
        name: "VIR_DOMAIN_TIME_SYNC",
        option: "sync",
    }],
);
const FSTRIM: Method = method("virDomainFSTrim", "DomainFSTrim", &[]);
const GET_FSINFO: Method = method("virDomainGetFSInfo", "DomainGetFSInfo", &[]);
const GET_GUEST_VCPUS: Method = method("virDomainGetGuestVcpus", "DomainGetGuestVcpus", &[]);
const SET_GUEST_VCPUS: Method = method("virDomainSetGuestVcpus", "DomainSetGuestVcpus", &[]);
const SET_USER_PASSWORD: Method = method(
    "virDomainSetUserPassword",
    "DomainSetUserPassword",
    &[Flag {
        bit: 1,
        name: "VIR_DOMAIN_PASSWORD_ENCRYPTED",
        option: "encrypted",
    }],
);
const SSH_KEYS_GET: Method = method(
    "virDomainAuthorizedSSHKeysGet",
    "DomainAuthorizedSSHKeysGet",
    &[],
);
const SSH_KEYS_SET: Method = method(
    "virDomainAuthorizedSSHKeysSet",
    "DomainAuthorizedSSHKeysSet",
    &[
        Flag {
            bit: 1,
            name: "VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_APPEND",
            option: "append",
        },
        Flag {
            bit: 2,
            name: "VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_REMOVE",
            option: "remove",
        },
    ],
);

/// `VIR_ERR_AGENT_UNRESPONSIVE`.
const AGENT_UNRESPONSIVE: i32 = 86;

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    match p {
        procs::DOMAIN_GET_TIME => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_TIME;
            s.check(m, a.flags)?;
            let (seconds, nseconds) = run(shared, s, m, &dom, ops::GuestTime {}).await?;
            ok(TimeRet { seconds, nseconds })
        }
        procs::DOMAIN_SET_TIME => {
            let a: SetTimeArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SET_TIME;
            s.check(m, a.flags)?;
            let time = (!m.has(a.flags, "sync")).then_some((a.seconds, a.nseconds));
            if s.flavor() == Flavor::Qemu && a.seconds > i64::MAX / 1_000_000_000 {
                return Err(s.error(
                    Code::InvalidArg,
                    &format!("Time '{}' is too big for guest agent", a.seconds),
                ));
            }
            run(shared, s, m, &dom, ops::SetGuestTime { time }).await?;
            ok(())
        }
        procs::DOMAIN_FSTRIM => {
            let a: FsTrimArgs = Reader::decode(body)?;
            let m = &FSTRIM;
            s.check(m, a.flags)?;
            if a.mountpoint.is_some() && s.flavor() == Flavor::Qemu {
                // libvirt's QEMU driver refuses before it looks the domain up
                return Err(s.error(
                    Code::ArgumentUnsupported,
                    "Specifying mount point is not supported for now",
                ));
            }
            let dom = s.domain(&a.dom)?;
            let req = ops::FsTrim {
                mountpoint: a.mountpoint,
                minimum: a.minimum,
            };
            run(shared, s, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_GET_FSINFO => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_FSINFO;
            s.check(m, a.flags)?;
            let fs = run(shared, s, m, &dom, ops::GuestFsInfo {}).await?;
            let info: Vec<FsInfo> = fs
                .into_iter()
                .map(|f| FsInfo {
                    mountpoint: f.mountpoint,
                    name: f.name,
                    fstype: f.fstype,
                    dev_aliases: Array(f.disks.into_iter().filter_map(|d| d.target_dev).collect()),
                })
                .collect();
            let n = u32::try_from(info.len()).unwrap_or(u32::MAX);
            ok(FsInfoRet {
                info: Array(info),
                ret: n,
            })
        }
        procs::DOMAIN_GET_GUEST_VCPUS => {
            let a: DomainFlagsArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &GET_GUEST_VCPUS;
            s.check(m, a.flags)?;
            let vcpus = run(shared, s, m, &dom, ops::GuestVcpus {}).await?;
            let ids = |f: &dyn Fn(&crate::drivers::guest_agent::GuestVcpu) -> bool| {
                let mut v: Vec<u32> = vcpus.iter().filter(|c| f(c)).map(|c| c.id).collect();
                v.sort_unstable();
                TypedValue::String(format_bitmap(&v))
            };
            let params = vec![
                param("vcpus", ids(&|_| true)),
                param("online", ids(&|c| c.online)),
                param("offlinable", ids(&|c| c.offlinable)),
            ];
            ok(GuestVcpusRet {
                params: Array(params),
            })
        }
        procs::DOMAIN_SET_GUEST_VCPUS => {
            let a: SetGuestVcpusArgs = Reader::decode(body)?;
            let m = &SET_GUEST_VCPUS;
            s.check(m, a.flags)?;
            if a.state != 0 && a.state != 1 {
                return Err(s.error(Code::InvalidArg, "unsupported state value"));
            }
            let ids = parse_bitmap(&a.cpumap, GUEST_VCPU_MAX_ID).ok_or_else(|| {
                s.error(
                    Code::InvalidArg,
                    &format!("Failed to parse bitmap '{}'", a.cpumap),
                )
            })?;
            let dom = s.domain(&a.dom)?;
            let req = ops::SetGuestVcpus {
                ids,
                online: a.state == 1,
            };
            run(shared, s, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_SET_USER_PASSWORD => {
            let a: SetUserPasswordArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SET_USER_PASSWORD;
            let (Some(user), Some(password)) = (a.user, a.password) else {
                return Err(s.error(
                    Code::InvalidArg,
                    "user and password in virDomainSetUserPassword must not be NULL",
                ));
            };
            s.check(m, a.flags)?;
            let req = ops::SetUserPassword {
                user,
                password,
                crypted: m.has(a.flags, "encrypted"),
            };
            run(shared, s, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_AUTHORIZED_SSH_KEYS_GET => {
            let a: SshKeysGetArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SSH_KEYS_GET;
            s.check(m, a.flags)?;
            let keys = run(shared, s, m, &dom, ops::GetSshKeys { user: a.user }).await?;
            ok(SshKeysRet { keys: Array(keys) })
        }
        procs::DOMAIN_AUTHORIZED_SSH_KEYS_SET => {
            let a: SshKeysSetArgs = Reader::decode(body)?;
            let dom = s.domain(&a.dom)?;
            let m = &SSH_KEYS_SET;
            let (append, remove) = (m.has(a.flags, "append"), m.has(a.flags, "remove"));
            if append && remove {
                return Err(bare(
                    s,
                    "Flags 'VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_APPEND' and \
                     'VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_REMOVE' are mutually exclusive",
                ));
            }
            s.check(m, a.flags)?;
            let mode = if remove {
                SshKeysMode::Remove
            } else if append {
                SshKeysMode::Append
            } else {
                SshKeysMode::Replace
            };
            let req = ops::SetSshKeys {
                user: a.user,
                keys: a.keys.0,
                mode,
            };
            run(shared, s, m, &dom, req).await?;
            ok(())
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// Run an agent request: refused on a read-only connection whatever it does, and an agent
/// that does not answer (or is not configured) worded as libvirt's QEMU driver words it.
pub(super) async fn run<O: DomainOp>(
    shared: &Shared,
    s: &Session,
    m: &Method,
    dom: &std::sync::Arc<core::Domain>,
    req: O,
) -> RpcResult<O::Output> {
    s.writable(m)?;
    s.exec(shared)
        .run_as(&s.caller, dom, req)
        .await
        .map_err(|e| agent_error(s, m, e))
}

fn agent_error(s: &Session, m: &Method, e: ExecError) -> RpcError {
    match &e {
        // a paused guest's agent cannot answer: libvirt says so whatever the other state
        ExecError::Core(core::Error::WrongState(_)) => {
            s.error(Code::OperationInvalid, "domain is not running")
        }
        ExecError::Core(core::Error::Timeout(msg)) if s.flavor() == Flavor::Qemu => {
            // the port not open yet, or no answer in time
            let why = if msg == crate::drivers::qemu::agent_ops::NOT_CONNECTED {
                msg
            } else {
                "Guest agent not available for now"
            };
            RpcError {
                code: AGENT_UNRESPONSIVE,
                message: format!("Guest agent is not responding: {why}"),
                ..s.error(Code::Internal, "")
            }
        }
        // the QEMU driver's refusal of a domain without the agent's channel
        ExecError::Core(core::Error::NotSupported(msg))
            if msg.contains("has no guest agent channel") =>
        {
            s.error(
                Code::ArgumentUnsupported,
                "QEMU guest agent is not configured",
            )
        }
        _ => RpcError::from_exec(e, s.flavor(), m),
    }
}

fn param(field: &str, value: TypedValue) -> TypedParam {
    TypedParam {
        field: field.into(),
        value,
    }
}

fn bare(s: &Session, msg: &str) -> RpcError {
    RpcError::from_compat(crate::compat::errors::bare(msg.to_owned()), s.flavor())
}

/// The typed parameters of `virDomainGetGuestInfo` for users (they come first in libvirt's
/// order).
pub(super) fn user_params(d: &GuestDetails, out: &mut Vec<TypedParam>) {
    let Some(users) = &d.users else { return };
    out.push(param("user.count", count(users.len())));
    for (i, u) in users.iter().enumerate() {
        out.push(param(
            &format!("user.{i}.name"),
            TypedValue::String(u.name.clone()),
        ));
        if let Some(dom) = &u.domain {
            out.push(param(
                &format!("user.{i}.domain"),
                TypedValue::String(dom.clone()),
            ));
        }
        out.push(param(
            &format!("user.{i}.login-time"),
            TypedValue::ULLong(u.login_ms),
        ));
    }
}

/// The typed parameters for filesystems and disks (after the host name in libvirt's order).
pub(super) fn fs_disk_params(d: GuestDetails, out: &mut Vec<TypedParam>) {
    let str_p = |k: String, v: String| param(&k, TypedValue::String(v));
    if let Some(fs) = d.filesystems.filter(|f| !f.is_empty()) {
        out.push(param("fs.count", count(fs.len())));
        for (i, f) in fs.into_iter().enumerate() {
            out.push(str_p(format!("fs.{i}.name"), f.name));
            out.push(str_p(format!("fs.{i}.mountpoint"), f.mountpoint));
            out.push(str_p(format!("fs.{i}.fstype"), f.fstype));
            if let Some(t) = f.total_bytes {
                out.push(param(&format!("fs.{i}.total-bytes"), TypedValue::ULLong(t)));
            }
            if let Some(u) = f.used_bytes {
                out.push(param(&format!("fs.{i}.used-bytes"), TypedValue::ULLong(u)));
            }
            out.push(param(&format!("fs.{i}.disk.count"), count(f.disks.len())));
            for (j, disk) in f.disks.into_iter().enumerate() {
                if let Some(t) = disk.target_dev {
                    out.push(str_p(format!("fs.{i}.disk.{j}.alias"), t));
                }
                if let Some(sn) = disk.serial {
                    out.push(str_p(format!("fs.{i}.disk.{j}.serial"), sn));
                }
                if let Some(dev) = disk.dev {
                    out.push(str_p(format!("fs.{i}.disk.{j}.device"), dev));
                }
            }
        }
    }
    if let Some(disks) = d.disks.filter(|d| !d.is_empty()) {
        out.push(param("disk.count", count(disks.len())));
        for (i, disk) in disks.into_iter().enumerate() {
            out.push(str_p(format!("disk.{i}.name"), disk.name));
            out.push(param(
                &format!("disk.{i}.partition"),
                TypedValue::Boolean(disk.partition),
            ));
            if !disk.dependencies.is_empty() {
                out.push(param(
                    &format!("disk.{i}.dependency.count"),
                    count(disk.dependencies.len()),
                ));
                for (j, dep) in disk.dependencies.into_iter().enumerate() {
                    out.push(str_p(format!("disk.{i}.dependency.{j}.name"), dep));
                }
            }
            if let Some(a) = disk.address {
                if let Some(sn) = a.serial {
                    out.push(str_p(format!("disk.{i}.serial"), sn));
                }
                if let Some(t) = a.target_dev {
                    out.push(str_p(format!("disk.{i}.alias"), t));
                }
            }
            if let Some(alias) = disk.alias {
                out.push(str_p(format!("disk.{i}.guest_alias"), alias));
            }
        }
    }
}

fn count(n: usize) -> TypedValue {
    TypedValue::UInt(u32::try_from(n).unwrap_or(u32::MAX))
}
