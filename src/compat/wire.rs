//! `ListDomains`' array of object paths, written straight from the UUIDs into the message body
//! (see [`crate::server::wire`]).

use uuid::Uuid;
use zbus::Message;

use super::{errors::Reply, paths};
use crate::server::{
    Call,
    wire::{object_paths, reply_object_paths},
};

/// The body of an `ao` reply of the paths of `uuids` under `connect`.
pub fn domain_paths(connect: &str, uuids: &[Uuid]) -> Vec<u8> {
    object_paths(uuids.len(), |i, buf| {
        paths::push_domain(buf, connect, &uuids[i])
    })
}

/// The method return of `call` carrying the paths of `uuids`.
pub(crate) fn reply_domain_paths(call: &Call, connect: &str, uuids: &[Uuid]) -> Reply<Message> {
    Ok(reply_object_paths(
        &call.header(),
        &domain_paths(connect, uuids),
    )?)
}

#[cfg(test)]
mod tests {
    use zbus::{
        ObjectPath,
        wire::{Endian, serialized::Context, to_bytes},
    };

    use super::*;

    #[test]
    fn same_bytes_as_zbus() {
        let ctx = Context::new(Endian::Little, 0);
        for n in [0usize, 1, 2, 7] {
            let uuids: Vec<Uuid> = (0..n).map(|i| Uuid::from_u128(i as u128 * 7919)).collect();
            for connect in ["/org/libvirt/Test", "/org/libvirt/QEMU", "/x"] {
                let strings: Vec<String> =
                    uuids.iter().map(|u| paths::domain(connect, u)).collect();
                let want: Vec<ObjectPath<'_>> = strings
                    .iter()
                    .map(|s| ObjectPath::try_from(s.as_str()).expect("path"))
                    .collect();
                let zbus = to_bytes(ctx, &want).expect("serialize");
                assert_eq!(domain_paths(connect, &uuids), zbus.bytes(), "{n} {connect}");
            }
        }
    }
}
