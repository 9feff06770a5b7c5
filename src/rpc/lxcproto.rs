//! libvirt's LXC program (`lxc_protocol.x`: opening a container init's namespaces, which
//! `virsh lxc-enter-namespace` enters) and the remote program's container procedures:
//! `virDomainSendProcessSignal` and starting with descriptors handed to the init
//! (`virDomainCreateWithFiles`, `virDomainCreateXMLWithFiles`; the descriptors arrive in a
//! `CALL_WITH_FDS` packet). Each decodes into a core request ([`crate::core::lxc_ops`]).

use std::{os::fd::OwnedFd, sync::Arc};

use super::{
    Shared,
    dispatch::{Session, ok, wire_dom},
    error::{RpcError, RpcResult},
    proto::{Dom, DomainRet},
    xdr::{Reader, xdr_struct},
};
use crate::{
    compat::{
        errors::Code,
        flags::{Flag, Flavor, Method},
    },
    core::{
        lxc_ops::{OpenNamespaces, SIGNAL_LAST, SendProcessSignal, StartWithFiles},
        ops::Operation,
        options::StartOptions,
    },
};

/// `LXC_PROGRAM` and its version.
pub const LXC_PROGRAM: u32 = 0x0006_8000;
pub const LXC_VERSION: u32 = 1;
/// `LXC_PROC_DOMAIN_OPEN_NAMESPACE`.
pub const LXC_PROC_DOMAIN_OPEN_NAMESPACE: i32 = 1;

/// The LXC program's procedures implemented, for the coverage count.
pub const LXC_IMPLEMENTED: &[i32] = &[LXC_PROC_DOMAIN_OPEN_NAMESPACE];

/// Descriptors one call may pass (libvirt's `VIR_NET_MESSAGE_NUM_FDS_MAX`).
pub const FDS_MAX: u32 = 32;

/// `remote_procedure` numbers of the remote program's procedures answered here.
pub mod procs {
    pub const DOMAIN_SEND_PROCESS_SIGNAL: i32 = 295;
    pub const DOMAIN_CREATE_XML_WITH_FILES: i32 = 309;
    pub const DOMAIN_CREATE_WITH_FILES: i32 = 310;

    /// Every procedure above, for the coverage count.
    pub const IMPLEMENTED: &[i32] = &[
        DOMAIN_SEND_PROCESS_SIGNAL,
        DOMAIN_CREATE_XML_WITH_FILES,
        DOMAIN_CREATE_WITH_FILES,
    ];

    /// The procedures that take descriptors (`CALL_WITH_FDS`).
    pub const WITH_FILES: &[i32] = &[DOMAIN_CREATE_XML_WITH_FILES, DOMAIN_CREATE_WITH_FILES];
}

pub fn handles(p: i32) -> bool {
    procs::IMPLEMENTED.contains(&p)
}

xdr_struct! {
    SendProcessSignalArgs { dom: Dom, pid_value: i64, signum: u32, flags: u32 }
    CreateWithFilesArgs { dom: Dom, flags: u32 }
    CreateXmlWithFilesArgs { xml_desc: String, flags: u32 }
    OpenNamespaceArgs { dom: Dom, flags: u32 }
}

const SEND_PROCESS_SIGNAL: Method = Method {
    api: "virDomainSendProcessSignal",
    driver_fn: "DomainSendProcessSignal",
    flags: &[],
};
const OPEN_NAMESPACE: Method = Method {
    api: "virDomainLxcOpenNamespace",
    driver_fn: "DomainLxcOpenNamespace",
    flags: &[],
};
const PAUSED: Flag = Flag {
    bit: 1,
    name: "VIR_DOMAIN_START_PAUSED",
    option: "paused",
};
const VALIDATE: Flag = Flag {
    bit: 16,
    name: "VIR_DOMAIN_START_VALIDATE",
    option: "validate",
};
/// libvirt's LXC driver takes only `AUTODESTROY`, which virtbus does not implement.
const CREATE_WITH_FILES_LXC: Method = Method {
    api: "virDomainCreateWithFiles",
    driver_fn: "DomainCreateWithFiles",
    flags: &[],
};
/// libvirt's test driver starts as `virDomainCreateWithFlags` does.
const CREATE_WITH_FILES_TEST: Method = Method {
    api: "virDomainCreateWithFiles",
    driver_fn: "DomainCreateWithFlags",
    flags: &[PAUSED],
};
const CREATE_XML_WITH_FILES_LXC: Method = Method {
    api: "virDomainCreateXMLWithFiles",
    driver_fn: "DomainCreateXMLWithFiles",
    flags: &[VALIDATE],
};
const CREATE_XML_WITH_FILES_TEST: Method = Method {
    api: "virDomainCreateXMLWithFiles",
    driver_fn: "DomainCreateXML",
    flags: &[PAUSED, VALIDATE],
};

/// Carry out remote procedure `p` (one of [`procs::IMPLEMENTED`]) with the descriptors
/// `files` the call passed (none for a plain `CALL`).
pub(super) async fn call(
    shared: &Shared,
    s: &Session,
    p: i32,
    body: &[u8],
    files: Vec<OwnedFd>,
) -> RpcResult<Vec<u8>> {
    let flavor = s.flavor();
    match p {
        procs::DOMAIN_SEND_PROCESS_SIGNAL => {
            let a: SendProcessSignalArgs = Reader::decode(body)?;
            if flavor == Flavor::Qemu {
                // libvirt's QEMU driver has no such call
                return Err(RpcError::no_support(SEND_PROCESS_SIGNAL.api));
            }
            let m = &SEND_PROCESS_SIGNAL;
            s.check(m, a.flags)?;
            // libvirt's drivers check the arguments in their own order
            if flavor == Flavor::Test && a.pid_value != 1 {
                return Err(s.error(
                    Code::InvalidArg,
                    "only sending a signal to pid 1 is supported",
                ));
            }
            if a.signum >= SIGNAL_LAST {
                return Err(s.error(
                    Code::InvalidArg,
                    &format!("signum value {} is out of range", a.signum),
                ));
            }
            let dom = s.domain(&a.dom)?;
            if flavor == Flavor::Lxc && a.pid_value != 1 && dom.info().status.is_active() {
                return Err(s.error(
                    Code::ArgumentUnsupported,
                    "Only the init process may be killed",
                ));
            }
            let req = SendProcessSignal {
                pid: a.pid_value,
                signum: a.signum,
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_CREATE_WITH_FILES => {
            let a: CreateWithFilesArgs = Reader::decode(body)?;
            let m = match flavor {
                Flavor::Qemu => return Err(RpcError::no_support("virDomainCreateWithFiles")),
                Flavor::Lxc => &CREATE_WITH_FILES_LXC,
                Flavor::Test => &CREATE_WITH_FILES_TEST,
            };
            s.check(m, a.flags)?;
            let dom = s.domain(&a.dom)?;
            let req = StartWithFiles {
                opts: StartOptions {
                    paused: m.has(a.flags, "paused"),
                    force_boot: false,
                },
                files: Arc::new(files),
            };
            s.run(shared, m, &dom, req).await?;
            ok(DomainRet {
                dom: wire_dom(&dom),
            })
        }
        procs::DOMAIN_CREATE_XML_WITH_FILES => {
            let a: CreateXmlWithFilesArgs = Reader::decode(body)?;
            let m = match flavor {
                Flavor::Qemu => return Err(RpcError::no_support("virDomainCreateXMLWithFiles")),
                Flavor::Lxc => &CREATE_XML_WITH_FILES_LXC,
                Flavor::Test => &CREATE_XML_WITH_FILES_TEST,
            };
            s.check(m, a.flags)?;
            s.writable(m)?;
            let (def, owner) = s
                .definition(
                    shared,
                    m,
                    &a.xml_desc,
                    &[Operation::DefineDomain, Operation::CreateDomain],
                )
                .await?;
            let opts = StartOptions {
                paused: m.has(a.flags, "paused"),
                force_boot: false,
            };
            let dom = s
                .view
                .core
                .create_with_files(def, opts, owner, &files)
                .await
                .map_err(|e| RpcError::from_core(e, flavor, m))?;
            ok(DomainRet {
                dom: wire_dom(&dom),
            })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// Carry out procedure `p` of the LXC program: the descriptors of the reply.
pub(super) async fn lxc_call(
    shared: &Shared,
    s: &Session,
    p: i32,
    body: &[u8],
) -> RpcResult<Vec<OwnedFd>> {
    match p {
        LXC_PROC_DOMAIN_OPEN_NAMESPACE => {
            let a: OpenNamespaceArgs = Reader::decode(body)?;
            let m = &OPEN_NAMESPACE;
            if s.flavor() != Flavor::Lxc {
                // only libvirt's LXC driver has it
                return Err(RpcError::no_support(m.api));
            }
            s.writable(m)?;
            s.check(m, a.flags)?;
            let dom = s.domain(&a.dom)?;
            s.run(shared, m, &dom, OpenNamespaces {}).await
        }
        p => Err(RpcError::rpc(format!(
            "cannot find procedure {p} of program {LXC_PROGRAM} version {LXC_VERSION}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dispatch asks the other tables first: none of them may take these procedures.
    #[test]
    fn procedures_are_no_other_tables() {
        for &p in procs::IMPLEMENTED {
            assert!(!crate::rpc::proto::procs::IMPLEMENTED.contains(&p), "{p}");
            assert!(!crate::rpc::objproto::procs::handles(p), "{p}");
            assert!(!crate::rpc::more::handles(p), "{p}");
            assert!(handles(p));
        }
        for p in procs::WITH_FILES {
            assert!(procs::IMPLEMENTED.contains(p));
        }
    }
}
