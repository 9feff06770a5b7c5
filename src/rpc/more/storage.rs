//! Storage pool source discovery and the pool capabilities, which virt-manager's "Add pool"
//! dialog asks for.

use super::procs;
use crate::{
    compat::{errors::Code, flags::Flavor, storage::find_sources},
    core::ops::Operation,
    rpc::{
        Shared,
        dispatch::{Session, ok},
        error::{RpcError, RpcResult},
        objects::check_flags,
        objproto::FlagsArgs,
        proto::StringRet,
        xdr::{Reader, xdr_struct},
    },
    server::authz::Details,
};

xdr_struct! {
    FindSourcesArgs { pool_type: String, spec: Option<String>, flags: u32 }
}

pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    let flavor = s.flavor();
    let read = || async {
        s.exec(shared)
            .authorize_as(&s.caller, Operation::ReadStorage, &Details::default())
            .await
            .map_err(|e| RpcError::denied(e, flavor))
    };
    match p {
        procs::CONNECT_FIND_STORAGE_POOL_SOURCES => {
            let a: FindSourcesArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virConnectFindStoragePoolSources")?;
            read().await?;
            let xml =
                find_sources(flavor, &a.pool_type).map_err(|e| RpcError::from_compat(e, flavor))?;
            ok(StringRet { value: xml })
        }
        procs::CONNECT_GET_STORAGE_POOL_CAPABILITIES => {
            let a: FlagsArgs = Reader::decode(body)?;
            match flavor {
                // libvirt's test driver has no pool capabilities
                Flavor::Test => {
                    Err(s.error(Code::NoSupport, "virConnectGetStoragePoolCapabilities"))
                }
                Flavor::Qemu | Flavor::Lxc => {
                    check_flags(s, a.flags, 0, "virConnectGetStoragePoolCapabilities")?;
                    read().await?;
                    ok(StringRet {
                        value: crate::storage::caps::capabilities_xml(),
                    })
                }
            }
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}
