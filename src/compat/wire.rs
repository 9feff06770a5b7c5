//! A hand-marshalled reply for the longest one: `ListDomains`' array of object paths, written
//! straight from the UUIDs into the message body (no path strings, no serializer pass). With
//! a thousand domains the reply is some 70 KiB; this keeps the daemon's share of the call
//! small beside what the bus and the client spend on those bytes.

use uuid::Uuid;
use zbus::{Message, wire::Endian};

use super::{errors::Reply, paths};
use crate::bus::Call;

/// The body of an `ao` reply of domain paths, little-endian, as the D-Bus wire format lays it
/// out: the array's byte length, then per path its length, bytes, NUL and padding to 4.
pub fn domain_paths(connect: &str, uuids: &[Uuid]) -> Vec<u8> {
    // Each path: 4 (length) + connect + "/domain/" + 37 + NUL, padded to 4.
    let each = (4 + connect.len() + 8 + 37 + 1 + 3) & !3;
    let mut out = Vec::with_capacity(4 + uuids.len() * each);
    out.extend_from_slice(&[0; 4]);
    let mut path = String::with_capacity(connect.len() + 45);
    for (i, u) in uuids.iter().enumerate() {
        if i > 0 {
            out.resize((out.len() + 3) & !3, 0);
        }
        path.clear();
        paths::push_domain(&mut path, connect, u);
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.push(0);
    }
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The method return of `call` carrying the paths of `uuids`.
pub(crate) fn reply_domain_paths(call: &Call, connect: &str, uuids: &[Uuid]) -> Reply<Message> {
    let body = domain_paths(connect, uuids);
    let builder = Message::method_return(&call.header()).endian(Endian::Little);
    // SAFETY: `body` is a well-formed little-endian `ao` (see `domain_paths`, checked against
    // zbus's own serializer in the tests below), the message is little-endian, and it carries
    // no file descriptors.
    let msg = unsafe { builder.build_raw_body(&body, "ao", Vec::new()) }?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use zbus::{
        ObjectPath,
        wire::{serialized::Context, to_bytes},
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
