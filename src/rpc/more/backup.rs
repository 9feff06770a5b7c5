//! `virsh backup-begin` and `backup-dumpxml`: `virDomainBackupBegin` and
//! `virDomainBackupGetXMLDesc` decoded into the core's backup requests, and a backup job's
//! statistics as libvirt's typed parameters (for `domjobinfo` and the job completed event).
//! libvirt's test driver has no backups: the test flavor answers as it does.

use super::procs;
use crate::{
    compat::flags::{Flag, Flavor, Method},
    core::backup::{BackupBegin, BackupGetXml, JobStats, JobValue},
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objproto::{TypedParam, TypedValue},
        proto::{Dom, StringRet},
        xdr::{Reader, xdr_struct},
    },
};

xdr_struct! {
    BeginArgs { dom: Dom, backup_xml: String, checkpoint_xml: Option<String>, flags: u32 }
    XmlDescArgs { dom: Dom, flags: u32 }
}

const BEGIN: Method = Method {
    api: "virDomainBackupBegin",
    driver_fn: "DomainBackupBegin",
    flags: &[Flag {
        bit: 1,
        name: "VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL",
        option: "reuse-external",
    }],
};

const GET_XML: Method = Method {
    api: "virDomainBackupGetXMLDesc",
    driver_fn: "DomainBackupGetXMLDesc",
    flags: &[],
};

/// A job's statistics as libvirt's typed parameters.
pub(crate) fn job_params(stats: &JobStats) -> Vec<TypedParam> {
    stats
        .params
        .iter()
        .map(|(field, v)| TypedParam {
            field: field.clone(),
            value: match v {
                JobValue::Int(i) => TypedValue::Int(*i),
                JobValue::ULLong(u) => TypedValue::ULLong(*u),
                JobValue::Bool(b) => TypedValue::Boolean(*b),
                JobValue::Str(s) => TypedValue::String(s.clone()),
            },
        })
        .collect()
}

/// Carry out backup procedure `p`.
pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    match p {
        procs::DOMAIN_BACKUP_BEGIN => {
            let a: BeginArgs = Reader::decode(body)?;
            let m = &BEGIN;
            s.writable(m)?;
            match s.flavor() {
                Flavor::Qemu => {}
                Flavor::Lxc | Flavor::Test => return Err(RpcError::no_support(m.api)),
            }
            let dom = s.domain(&a.dom)?;
            s.check(m, a.flags)?;
            let req = BackupBegin {
                xml: a.backup_xml,
                checkpoint_xml: a.checkpoint_xml,
                reuse: m.has(a.flags, "reuse-external"),
            };
            s.run(shared, m, &dom, req).await?;
            ok(())
        }
        procs::DOMAIN_BACKUP_GET_XML_DESC => {
            let a: XmlDescArgs = Reader::decode(body)?;
            let m = &GET_XML;
            match s.flavor() {
                Flavor::Qemu => {}
                Flavor::Lxc | Flavor::Test => return Err(RpcError::no_support(m.api)),
            }
            let dom = s.domain(&a.dom)?;
            s.check(m, a.flags)?;
            let xml = s.run(shared, m, &dom, BackupGetXml {}).await?;
            ok(StringRet { value: xml })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}
