//! Hand-marshalled `ao` replies. With a thousand domains a list of object paths is some
//! 70 KiB; writing it straight into the message body (no path strings, no serializer pass)
//! keeps the daemon's share of such a call small beside what the bus and the client spend
//! parsing those bytes. Both front ends list domains this way.

use zbus::{Message, message::Header, wire::Endian};

/// The body of an `ao` reply of `n` object paths, little-endian, as the D-Bus wire format lays
/// it out: the array's byte length, then per path its length, bytes, NUL and padding to 4.
/// `write(i, buf)` appends the `i`-th path to the (cleared) `buf`; every path must be valid.
pub fn object_paths(n: usize, mut write: impl FnMut(usize, &mut String)) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + n * 72);
    out.extend_from_slice(&[0; 4]);
    let mut path = String::with_capacity(80);
    for i in 0..n {
        if i > 0 {
            out.resize((out.len() + 3) & !3, 0);
        }
        path.clear();
        write(i, &mut path);
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.push(0);
    }
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The method return to `call` carrying an `ao` body from [`object_paths`].
pub fn reply_object_paths(call: &Header<'_>, body: &[u8]) -> zbus::Result<Message> {
    let builder = Message::method_return(call).endian(Endian::Little);
    // SAFETY: `body` is a well-formed little-endian `ao` (see `object_paths`, checked against
    // zbus's own serializer in the tests below), the message is little-endian, and it carries
    // no file descriptors.
    unsafe { builder.build_raw_body(body, "ao", Vec::new()) }
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
            let strings: Vec<String> = (0..n).map(|i| format!("/a/p{}", "x".repeat(i))).collect();
            let want: Vec<ObjectPath<'_>> = strings
                .iter()
                .map(|s| ObjectPath::try_from(s.as_str()).expect("path"))
                .collect();
            let zbus = to_bytes(ctx, &want).expect("serialize");
            let ours = object_paths(n, |i, buf| buf.push_str(&strings[i]));
            assert_eq!(ours, zbus.bytes(), "{n}");
        }
    }
}
