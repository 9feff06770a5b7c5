//! virsh's smaller domain commands: `send-key`, `set-lifecycle-action`, `domrename`,
//! `dompmsuspend`/`dompmwakeup`, `domdirtyrate-calc`, `domlaunchsecinfo` and
//! `domsetlaunchsecstate`, each over its core request. What libvirt checks of the wire
//! arguments alone (flags, ranges, typed parameter names) is checked here, in its words.

use super::{
    params::{Kind, validate},
    procs,
};
use crate::{
    compat::{
        domain::affect,
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        keys,
        misc::{self, LifecycleEvent},
        saved_xml,
    },
    drivers::misc::SuspendTarget,
    model::LifecycleAction,
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::TypedParam,
        proto::Dom,
        xdr::{Array, Reader, xdr_struct},
    },
};

const SEND_KEY_MAX: usize = 16;
const LAUNCH_SECURITY_PARAMS_MAX: usize = 64;

xdr_struct! {
    SendKeyArgs {
        dom: Dom,
        codeset: u32,
        holdtime: u32,
        keycodes: Array<u32, SEND_KEY_MAX>,
        flags: u32,
    }
    RenameArgs { dom: Dom, new_name: Option<String>, flags: u32 }
    RenameRet { retcode: i32 }
    PmSuspendArgs { dom: Dom, target: u32, duration: u64, flags: u32 }
    LifecycleArgs { dom: Dom, kind: u32, action: u32, flags: u32 }
    LaunchSecurityInfoRet { params: Array<TypedParam, LAUNCH_SECURITY_PARAMS_MAX> }
    LaunchSecurityStateArgs {
        dom: Dom,
        params: Array<TypedParam, LAUNCH_SECURITY_PARAMS_MAX>,
        flags: u32,
    }
    DirtyRateArgs { dom: Dom, seconds: i32, flags: u32 }
    SaveDefineArgs { dom: Dom, dxml: Option<String>, flags: u32 }
}

const fn method(api: &'static str, driver_fn: &'static str, flags: &'static [Flag]) -> Method {
    Method {
        api,
        driver_fn,
        flags,
    }
}

const SEND_KEY: Method = method("virDomainSendKey", "DomainSendKey", &[]);
const RENAME: Method = method("virDomainRename", "DomainRename", &[]);
const PM_SUSPEND: Method = method(
    "virDomainPMSuspendForDuration",
    "DomainPMSuspendForDuration",
    &[],
);
const PM_WAKEUP: Method = method("virDomainPMWakeup", "DomainPMWakeup", &[]);
const SET_LIFECYCLE_ACTION: Method = method(
    "virDomainSetLifecycleAction",
    "DomainSetLifecycleAction",
    &[
        Flag {
            bit: 1,
            name: "VIR_DOMAIN_AFFECT_LIVE",
            option: "live",
        },
        Flag {
            bit: 2,
            name: "VIR_DOMAIN_AFFECT_CONFIG",
            option: "config",
        },
    ],
);
const GET_LAUNCH_SECURITY_INFO: Method = method(
    "virDomainGetLaunchSecurityInfo",
    "DomainGetLaunchSecurityInfo",
    &[],
);
const SET_LAUNCH_SECURITY_STATE: Method = method(
    "virDomainSetLaunchSecurityState",
    "DomainSetLaunchSecurityState",
    &[],
);
const START_DIRTY_RATE_CALC: Method = method(
    "virDomainStartDirtyRateCalc",
    "DomainStartDirtyRateCalc",
    &[
        Flag {
            bit: 1,
            name: "VIR_DOMAIN_DIRTYRATE_MODE_DIRTY_BITMAP",
            option: "dirty-bitmap",
        },
        Flag {
            bit: 2,
            name: "VIR_DOMAIN_DIRTYRATE_MODE_DIRTY_RING",
            option: "dirty-ring",
        },
    ],
);

const MANAGED_SAVE_GET_XML_DESC: Method = method(
    "virDomainManagedSaveGetXMLDesc",
    "DomainManagedSaveGetXMLDesc",
    &[Flag {
        bit: 1,
        name: "VIR_DOMAIN_SAVE_IMAGE_XML_SECURE",
        option: "secure",
    }],
);
const MANAGED_SAVE_DEFINE_XML: Method = method(
    "virDomainManagedSaveDefineXML",
    "DomainManagedSaveDefineXML",
    &[
        Flag {
            bit: 2,
            name: "VIR_DOMAIN_SAVE_RUNNING",
            option: "running",
        },
        Flag {
            bit: 4,
            name: "VIR_DOMAIN_SAVE_PAUSED",
            option: "paused",
        },
    ],
);

/// The typed parameters `virDomainSetLaunchSecurityState` takes, with their types.
const LAUNCH_SECRET_PARAMS: [(&str, Kind); 3] = [
    ("sev-secret-header", Kind::Str),
    ("sev-secret", Kind::Str),
    ("sev-secret-set-address", Kind::ULLong),
];

/// The API the procedure stands for, for the drivers that lack it.
fn api(p: i32) -> &'static str {
    match p {
        procs::DOMAIN_SEND_KEY => SEND_KEY.api,
        procs::DOMAIN_RENAME => RENAME.api,
        procs::DOMAIN_PM_SUSPEND_FOR_DURATION => PM_SUSPEND.api,
        procs::DOMAIN_PM_WAKEUP => PM_WAKEUP.api,
        procs::DOMAIN_SET_LIFECYCLE_ACTION => SET_LIFECYCLE_ACTION.api,
        procs::DOMAIN_GET_LAUNCH_SECURITY_INFO => GET_LAUNCH_SECURITY_INFO.api,
        procs::DOMAIN_SET_LAUNCH_SECURITY_STATE => SET_LAUNCH_SECURITY_STATE.api,
        procs::DOMAIN_MANAGED_SAVE_GET_XML_DESC => MANAGED_SAVE_GET_XML_DESC.api,
        procs::DOMAIN_MANAGED_SAVE_DEFINE_XML => MANAGED_SAVE_DEFINE_XML.api,
        _ => START_DIRTY_RATE_CALC.api,
    }
}

/// Whether the driver of `flavor` implements procedure `p` in libvirt (libvirt's LXC
/// driver implements none of these; its test driver sends keys, renames, sets lifecycle
/// actions and reports launch security, and keeps no XML with its managed save images).
fn implemented(flavor: Flavor, p: i32) -> bool {
    match flavor {
        Flavor::Qemu => true,
        Flavor::Test => matches!(
            p,
            procs::DOMAIN_SEND_KEY
                | procs::DOMAIN_RENAME
                | procs::DOMAIN_SET_LIFECYCLE_ACTION
                | procs::DOMAIN_GET_LAUNCH_SECURITY_INFO
        ),
        Flavor::Lxc => false,
    }
}

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    if !implemented(s.flavor(), p) {
        return Err(RpcError::no_support(api(p)));
    }
    match p {
        procs::DOMAIN_SEND_KEY => {
            let a: SendKeyArgs = Reader::decode(body)?;
            s.check(&SEND_KEY, a.flags)?;
            let dom = s.domain(&a.dom)?;
            let codes = a.keycodes.0;
            if s.flavor() == Flavor::Test {
                // libvirt's test driver wants the domain running first, then checks each
                // key against its code set alone (asked of a caller allowed to send keys)
                s.writable(&SEND_KEY)?;
                s.authorize(shared, crate::core::ops::Operation::SendKey, &dom)
                    .await?;
                if !dom.info().status.is_active() {
                    return Err(s.error(Code::OperationInvalid, "domain is not running"));
                }
                test_keys(s, a.codeset, &codes)?;
            }
            let req = misc::SendKey {
                codeset: a.codeset,
                codes,
                hold_ms: a.holdtime,
            };
            s.run(shared, &SEND_KEY, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_RENAME => {
            let a: RenameArgs = Reader::decode(body)?;
            s.check(&RENAME, a.flags)?;
            let dom = s.domain(&a.dom)?;
            let Some(name) = a.new_name else {
                return Err(bare(s, "new_name in virDomainRename must not be NULL"));
            };
            if name.contains('/') {
                return Err(s.error(Code::XmlError, &format!("name {name} cannot contain '/'")));
            }
            s.run(shared, &RENAME, &dom, misc::Rename { name }).await?;
            ok(RenameRet { retcode: 0 })
        }
        procs::DOMAIN_PM_SUSPEND_FOR_DURATION => {
            let a: PmSuspendArgs = Reader::decode(body)?;
            s.check(&PM_SUSPEND, a.flags)?;
            if a.duration != 0 {
                return Err(s.error(
                    Code::ArgumentUnsupported,
                    "Duration not supported. Use 0 for now",
                ));
            }
            let Some(target) = SuspendTarget::from_code(a.target) else {
                return Err(s.error(
                    Code::InvalidArg,
                    &format!("Unknown suspend target: {}", a.target),
                ));
            };
            let dom = s.domain(&a.dom)?;
            s.run(shared, &PM_SUSPEND, &dom, misc::PmSuspend { target })
                .await?;
            ok(())
        }
        procs::DOMAIN_PM_WAKEUP => {
            let a: crate::rpc::proto::DomainFlagsArgs = Reader::decode(body)?;
            s.check(&PM_WAKEUP, a.flags)?;
            let dom = s.domain(&a.dom)?;
            s.run(shared, &PM_WAKEUP, &dom, misc::PmWakeup {}).await?;
            ok(())
        }
        procs::DOMAIN_SET_LIFECYCLE_ACTION => {
            let a: LifecycleArgs = Reader::decode(body)?;
            let m = &SET_LIFECYCLE_ACTION;
            s.check(m, a.flags)?;
            let (event, action) = lifecycle(s, a.kind, a.action)?;
            let dom = s.domain(&a.dom)?;
            let req = misc::SetLifecycleAction {
                event,
                action,
                affect: affect(m, a.flags),
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_GET_LAUNCH_SECURITY_INFO => {
            let a: crate::rpc::proto::DomainFlagsArgs = Reader::decode(body)?;
            if s.flavor() == Flavor::Test {
                s.check(&GET_LAUNCH_SECURITY_INFO, a.flags)?;
            }
            let dom = s.domain(&a.dom)?;
            let m = &GET_LAUNCH_SECURITY_INFO;
            let sev = s.run(shared, m, &dom, misc::LaunchSecurity {}).await?;
            if sev && s.flavor() == Flavor::Qemu {
                // libvirt reads the measurement of a running SEV guest; virtbus runs none
                return Err(s.error(Code::OperationInvalid, "domain is not running"));
            }
            ok(LaunchSecurityInfoRet {
                params: Array(Vec::new()),
            })
        }
        procs::DOMAIN_MANAGED_SAVE_GET_XML_DESC => {
            let a: crate::rpc::proto::DomainFlagsArgs = Reader::decode(body)?;
            let m = &MANAGED_SAVE_GET_XML_DESC;
            s.check(m, a.flags)?;
            let secure = m.has(a.flags, "secure");
            if secure && s.readonly {
                return Err(RpcError::read_only(&format!("{} with secure flag", m.api)));
            }
            let dom = s.domain(&a.dom)?;
            let xml = s
                .run(shared, m, &dom, saved_xml::ManagedSaveXml { secure })
                .await?;
            ok(crate::rpc::proto::StringRet { value: xml })
        }
        procs::DOMAIN_MANAGED_SAVE_DEFINE_XML => {
            let a: SaveDefineArgs = Reader::decode(body)?;
            let m = &MANAGED_SAVE_DEFINE_XML;
            s.check(m, a.flags)?;
            let dom = s.domain(&a.dom)?;
            let Some(xml) = a.dxml else {
                return Err(bare(
                    s,
                    "dxml in virDomainManagedSaveDefineXML must not be NULL",
                ));
            };
            // libvirt's QEMU driver: running wins when both are given
            let paused = if m.has(a.flags, "running") {
                Some(false)
            } else if m.has(a.flags, "paused") {
                Some(true)
            } else {
                None
            };
            s.writable(m)?;
            s.run(
                shared,
                m,
                &dom,
                saved_xml::ManagedSaveDefine { xml, paused },
            )
            .await?;
            ok(())
        }
        procs::DOMAIN_SET_LAUNCH_SECURITY_STATE => {
            let a: LaunchSecurityStateArgs = Reader::decode(body)?;
            let m = &SET_LAUNCH_SECURITY_STATE;
            s.check(m, a.flags)?;
            launch_secret_params(s, &a.params.0)?;
            let dom = s.domain(&a.dom)?;
            s.writable(m)?;
            let sev = s.run(shared, m, &dom, misc::LaunchSecurity {}).await?;
            if !sev {
                return Err(s.error(
                    Code::OperationUnsupported,
                    "setting a launch secret is only supported in SEV-enabled domains",
                ));
            }
            Err(s.error(Code::OperationInvalid, "domain is not running"))
        }
        _ => {
            let a: DirtyRateArgs = Reader::decode(body)?;
            let m = &START_DIRTY_RATE_CALC;
            s.check(m, a.flags)?;
            if !(1..=60).contains(&a.seconds) {
                return Err(s.error(
                    Code::ConfigUnsupported,
                    &format!(
                        "seconds={} is invalid, please choose value within [1, 60].",
                        a.seconds
                    ),
                ));
            }
            let dom = s.domain(&a.dom)?;
            let mode = if m.has(a.flags, "dirty-bitmap") {
                "dirty-bitmap"
            } else if m.has(a.flags, "dirty-ring") {
                return Err(s.error(
                    Code::OperationUnsupported,
                    "dirty-ring calculation mode requires dirty-ring feature enabled.",
                ));
            } else {
                "page-sampling"
            };
            let req = misc::DirtyRateCalc {
                secs: a.seconds,
                mode,
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
    }
}

/// The keys of a send-key to libvirt's test driver: each must name a key of its set.
fn test_keys(s: &Session, codeset: u32, codes: &[u32]) -> RpcResult<()> {
    let set =
        keys::codeset(codeset).map_err(|e| s.error(Code::ArgumentUnsupported, &e.to_string()))?;
    for c in codes {
        if keys::to_qnum(set, *c).is_err() {
            return Err(s.error(
                Code::Internal,
                &format!("invalid keycode {c} of {} codeset", set.name()),
            ));
        }
    }
    Ok(())
}

/// libvirt's `virDomainLifecycle` and `virDomainLifecycleAction` numbers, refused as
/// libvirt refuses them (out of range, or a core dump after anything but a crash).
fn lifecycle(s: &Session, kind: u32, action: u32) -> RpcResult<(LifecycleEvent, LifecycleAction)> {
    let event = match kind {
        0 => LifecycleEvent::Poweroff,
        1 => LifecycleEvent::Reboot,
        2 => LifecycleEvent::Crash,
        _ => {
            return Err(s.error(
                Code::InvalidArg,
                &format!("invalid lifecycle type '{kind}'"),
            ));
        }
    };
    let action = match action {
        0 => LifecycleAction::Destroy,
        1 => LifecycleAction::Restart,
        2 => LifecycleAction::RenameRestart,
        3 => LifecycleAction::Preserve,
        4 => LifecycleAction::CoredumpDestroy,
        5 => LifecycleAction::CoredumpRestart,
        _ => {
            return Err(s.error(
                Code::InvalidArg,
                &format!("invalid lifecycle action '{action}'"),
            ));
        }
    };
    if !event.allows(action) {
        return Err(s.error(
            Code::ConfigUnsupported,
            &format!(
                "Lifecycle event '{}' doesn't support '{action}' action",
                event.name()
            ),
        ));
    }
    Ok((event, action))
}

/// The typed parameters of a launch secret: known names with their types only.
fn launch_secret_params(s: &Session, params: &[TypedParam]) -> RpcResult<()> {
    validate(s, params, &LAUNCH_SECRET_PARAMS)
}

fn bare(s: &Session, msg: &str) -> RpcError {
    RpcError::from_compat(crate::compat::errors::bare(msg.to_owned()), s.flavor())
}
