//! XDR (RFC 4506), as libvirt's `.x` files use it: big-endian 4-byte units, strings and
//! variable arrays with a length word, fixed opaque data padded to 4 bytes, optional data
//! (`*`) as a boolean and the value.
//!
//! Each message type implements [`Xdr`]; [`xdr_struct!`] writes that for a struct as the
//! `.x` file lists its fields. Decoding is bounded: lengths are checked against libvirt's
//! limits and against what the packet holds before anything is allocated.

/// libvirt's `REMOTE_STRING_MAX`: the longest string a message may carry.
pub const STRING_MAX: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdrError {
    #[error("the message ends early: {0} more bytes expected")]
    Truncated(usize),
    #[error("a string of {0} bytes is longer than {STRING_MAX}")]
    StringTooLong(usize),
    #[error("an array of {len} elements is longer than its limit {max}")]
    ArrayTooLong { len: usize, max: usize },
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("{0} is not a boolean")]
    NotBool(u32),
    #[error("{0} bytes are left after the arguments")]
    Trailing(usize),
    #[error("{0} is not a known union discriminant")]
    BadDiscriminant(i32),
}

/// Reads XDR data from a packet.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        if self.buf.len() < n {
            return Err(XdrError::Truncated(n - self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn word(&mut self) -> Result<[u8; 4], XdrError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// `n` bytes of opaque data and their padding.
    pub(crate) fn opaque(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let data = self.take(n)?;
        self.take(pad(n))?;
        Ok(data)
    }

    /// The element count of a variable array, checked against `max` and against what is left
    /// (every element takes at least 4 bytes).
    pub fn count(&mut self, max: usize) -> Result<usize, XdrError> {
        let len = u32::get(self)? as usize;
        if len > max {
            return Err(XdrError::ArrayTooLong { len, max });
        }
        if len > self.buf.len() / 4 {
            return Err(XdrError::Truncated(len * 4 - self.buf.len()));
        }
        Ok(len)
    }

    /// Decode a whole message body: nothing may be left after it.
    pub fn decode<T: Xdr>(buf: &'a [u8]) -> Result<T, XdrError> {
        let mut r = Self::new(buf);
        let v = T::get(&mut r)?;
        if !r.buf.is_empty() {
            return Err(XdrError::Trailing(r.buf.len()));
        }
        Ok(v)
    }
}

fn pad(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// A value with an XDR encoding.
pub trait Xdr: Sized {
    fn put(&self, w: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError>;
}

/// Encode `v` alone.
pub fn encode<T: Xdr>(v: &T) -> Vec<u8> {
    let mut w = Vec::new();
    v.put(&mut w);
    w
}

macro_rules! xdr_int {
    ($($t:ty),*) => {$(
        impl Xdr for $t {
            fn put(&self, w: &mut Vec<u8>) {
                w.extend_from_slice(&self.to_be_bytes());
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
                let b = r.take(std::mem::size_of::<$t>())?;
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                Ok(<$t>::from_be_bytes(a))
            }
        }
    )*};
}
xdr_int!(u32, i32, u64, i64);

impl Xdr for bool {
    fn put(&self, w: &mut Vec<u8>) {
        u32::from(*self).put(w);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        match u32::from_be_bytes(r.word()?) {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(XdrError::NotBool(n)),
        }
    }
}

impl Xdr for String {
    fn put(&self, w: &mut Vec<u8>) {
        (self.len() as u32).put(w);
        w.extend_from_slice(self.as_bytes());
        w.extend(std::iter::repeat_n(0, pad(self.len())));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let len = u32::get(r)? as usize;
        if len > STRING_MAX {
            return Err(XdrError::StringTooLong(len));
        }
        let b = r.opaque(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| XdrError::NotUtf8)
    }
}

/// Fixed-length opaque data (`opaque x[N]`, `char x[N]`).
impl<const N: usize> Xdr for [u8; N] {
    fn put(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(self);
        w.extend(std::iter::repeat_n(0, pad(N)));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let b = r.opaque(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
}

/// Optional data (`T *x`).
impl<T: Xdr> Xdr for Option<T> {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            None => false.put(w),
            Some(v) => {
                true.put(w);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(if bool::get(r)? {
            Some(T::get(r)?)
        } else {
            None
        })
    }
}

/// A variable array with libvirt's limit `MAX` (`T x<MAX>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Array<T, const MAX: usize>(pub Vec<T>);

impl<T: Xdr, const MAX: usize> Xdr for Array<T, MAX> {
    fn put(&self, w: &mut Vec<u8>) {
        (self.0.len() as u32).put(w);
        for v in &self.0 {
            v.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let n = r.count(MAX)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(T::get(r)?);
        }
        Ok(Self(out))
    }
}

/// No arguments, or no result.
impl Xdr for () {
    fn put(&self, _: &mut Vec<u8>) {}
    fn get(_: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(())
    }
}

/// A struct of the `.x` files, its fields in their order.
macro_rules! xdr_struct {
    ($($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name { $(pub $field: $ty),* }

        impl $crate::rpc::xdr::Xdr for $name {
            fn put(&self, _w: &mut Vec<u8>) {
                $(self.$field.put(_w);)*
            }
            fn get(
                _r: &mut $crate::rpc::xdr::Reader<'_>,
            ) -> Result<Self, $crate::rpc::xdr::XdrError> {
                Ok(Self { $($field: $crate::rpc::xdr::Xdr::get(_r)?),* })
            }
        }
    )*};
}
pub(crate) use xdr_struct;

#[cfg(test)]
mod tests {
    use super::*;

    xdr_struct! {
        Sample { name: String, id: i32, uuid: [u8; 16], opt: Option<String>, list: Array<u32, 2> }
    }

    #[test]
    fn round_trip_and_padding() {
        let s = Sample {
            name: "abcde".into(),
            id: -1,
            uuid: [7; 16],
            opt: Some("x".into()),
            list: Array(vec![1, 2]),
        };
        let b = encode(&s);
        // 4 + 5 + 3 pad, 4, 16, 4 + 4 + 1 + 3, 4 + 8
        assert_eq!(b.len(), 12 + 4 + 16 + 12 + 12);
        assert_eq!(&b[..4], &[0, 0, 0, 5]);
        assert_eq!(&b[9..12], &[0, 0, 0]);
        assert_eq!(&b[12..16], &[0xff; 4]);
        assert_eq!(Reader::decode::<Sample>(&b), Ok(s));
    }

    #[test]
    fn bad_input_is_refused_before_allocating() {
        // a string claiming 4 GiB
        assert_eq!(
            Reader::decode::<String>(&[0xff, 0xff, 0xff, 0xff]),
            Err(XdrError::StringTooLong(0xffff_ffff))
        );
        // a string longer than the packet
        assert!(matches!(
            Reader::decode::<String>(&[0, 0, 0, 8, b'a']),
            Err(XdrError::Truncated(_))
        ));
        // an array over its limit, or over what the packet holds
        assert!(matches!(
            Reader::decode::<Array<u32, 2>>(&[0, 0, 0, 3]),
            Err(XdrError::ArrayTooLong { len: 3, max: 2 })
        ));
        assert!(matches!(
            Reader::decode::<Array<u32, 100>>(&[0, 0, 0, 50]),
            Err(XdrError::Truncated(_))
        ));
        assert_eq!(
            Reader::decode::<bool>(&[0, 0, 0, 2]),
            Err(XdrError::NotBool(2))
        );
        assert_eq!(
            Reader::decode::<u32>(&[0, 0, 0, 2, 9]),
            Err(XdrError::Trailing(1))
        );
        assert_eq!(
            Reader::decode::<String>(&[0, 0, 0, 1, 0xff, 0, 0, 0]),
            Err(XdrError::NotUtf8)
        );
    }
}
