//! A D-Bus dictionary written straight from a list of pairs, in order. Replies with thousands
//! of properties would otherwise spend most of their time building and hashing maps that are
//! only serialized once.

use serde::{Serialize, Serializer, ser::SerializeMap};
use zbus::{Basic, Signature, Type};

#[derive(Debug, Clone, Default)]
pub struct Dict<K, V>(pub Vec<(K, V)>);

impl<K, V> Dict<K, V> {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn push(&mut self, k: K, v: V) {
        self.0.push((k, v));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: PartialEq, V> Dict<K, V> {
    /// Take the value of `k` out.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.0.iter().position(|(key, _)| key == k)?;
        Some(self.0.swap_remove(i).1)
    }
}

impl<K, V> FromIterator<(K, V)> for Dict<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<K: Serialize, V: Serialize> Serialize for Dict<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<K: Basic, V: Type> Type for Dict<K, V> {
    const SIGNATURE: &'static Signature = &Signature::static_dict(K::SIGNATURE, V::SIGNATURE);
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use zbus::{
        Variant,
        wire::{Endian, serialized::Context, to_bytes},
    };

    use super::*;

    #[test]
    fn encodes_like_a_map() {
        let ctx = Context::new(Endian::Little, 0);
        let d: Dict<&str, Variant<'_>> = [("a", Variant::U32(1)), ("b", Variant::from("x"))]
            .into_iter()
            .collect();
        // A sorted map: its entries come out in the order the Dict has them.
        let m: BTreeMap<&str, Variant<'_>> = [("a", Variant::U32(1)), ("b", Variant::from("x"))]
            .into_iter()
            .collect();
        assert_eq!(Dict::<&str, Variant<'_>>::SIGNATURE.to_string(), "a{sv}");
        let ours = to_bytes(ctx, &d).expect("dict");
        let decoded: HashMap<String, zbus::OwnedVariant> = ours.deserialize().expect("decode").0;
        assert_eq!(decoded.len(), 2);
        assert_eq!(to_bytes(ctx, &m).expect("map").bytes(), ours.bytes());
    }
}
