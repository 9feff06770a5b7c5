//! Reading an `a{sv}` options dictionary strictly: each key is taken with its expected type,
//! and any key left over is an error that names it.

use std::collections::HashMap;

use zbus::Variant;

use crate::core::Error;

pub type OptionMap<'a> = HashMap<String, Variant<'a>>;

pub struct Options<'a> {
    map: OptionMap<'a>,
    method: &'static str,
    known: Vec<&'static str>,
}

impl<'a> Options<'a> {
    pub fn new(method: &'static str, map: OptionMap<'a>) -> Self {
        Self {
            map,
            method,
            known: Vec::new(),
        }
    }

    /// Takes `key`. A value wrapped in a further variant (`v(v(b))` instead of `v(b)`) is
    /// refused rather than unwrapped: it is a client bug that would otherwise go unnoticed.
    fn take(&mut self, key: &'static str, want: &str) -> Result<Option<Variant<'a>>, Error> {
        self.known.push(key);
        match self.map.remove(key) {
            Some(Variant::Variant(inner)) => Err(Error::InvalidArgument(format!(
                "option '{key}' of {} must be of type '{want}', not a variant holding '{}': \
                 send the value itself",
                self.method,
                inner.value_signature()
            ))),
            v => Ok(v),
        }
    }

    fn wrong_type(&self, key: &str, want: &str, got: &Variant<'_>) -> Error {
        Error::InvalidArgument(format!(
            "option '{key}' of {} must be of type '{want}', not '{}'",
            self.method,
            got.value_signature()
        ))
    }

    pub fn bool(&mut self, key: &'static str) -> Result<bool, Error> {
        match self.take(key, "b")? {
            None => Ok(false),
            Some(Variant::Bool(b)) => Ok(b),
            Some(v) => Err(self.wrong_type(key, "b", &v)),
        }
    }

    pub fn string(&mut self, key: &'static str) -> Result<Option<String>, Error> {
        match self.take(key, "s")? {
            None => Ok(None),
            Some(Variant::Str(s)) => Ok(Some(s.as_str().to_owned())),
            Some(v) => Err(self.wrong_type(key, "s", &v)),
        }
    }

    pub fn u32(&mut self, key: &'static str) -> Result<Option<u32>, Error> {
        match self.take(key, "u")? {
            None => Ok(None),
            Some(Variant::U32(n)) => Ok(Some(n)),
            Some(v) => Err(self.wrong_type(key, "u", &v)),
        }
    }

    pub fn u64(&mut self, key: &'static str) -> Result<Option<u64>, Error> {
        match self.take(key, "t")? {
            None => Ok(None),
            Some(Variant::U64(n)) => Ok(Some(n)),
            Some(v) => Err(self.wrong_type(key, "t", &v)),
        }
    }

    pub fn strings(&mut self, key: &'static str) -> Result<Vec<String>, Error> {
        match self.take(key, "as")? {
            None => Ok(Vec::new()),
            Some(v) => {
                let wrong = self.wrong_type(key, "as", &v);
                Vec::<String>::try_from(v).map_err(|_| wrong)
            }
        }
    }

    /// Fail on any key not taken.
    pub fn finish(self) -> Result<(), Error> {
        let mut unknown: Vec<&String> = self.map.keys().collect();
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort();
        let known = if self.known.is_empty() {
            "it takes none".to_owned()
        } else {
            format!("known: {}", self.known.join(", "))
        };
        Err(Error::InvalidArgument(format!(
            "unknown option '{}' for {} ({known})",
            unknown[0], self.method
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: Vec<(&str, Variant<'static>)>) -> OptionMap<'static> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn typed_and_strict() {
        let mut o = Options::new("Start", map(vec![("paused", Variant::Bool(true))]));
        assert!(o.bool("paused").expect("bool"));
        o.finish().expect("nothing left");

        let mut o = Options::new("Start", map(vec![("paused", Variant::from("yes"))]));
        let e = o.bool("paused").expect_err("wrong type");
        assert_eq!(
            e.to_string(),
            "option 'paused' of Start must be of type 'b', not 's'"
        );

        let mut o = Options::new("Start", map(vec![("pasued", Variant::Bool(true))]));
        assert!(!o.bool("paused").expect("absent is false"));
        let e = o.finish().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown option 'pasued' for Start (known: paused)"
        );

        let o = Options::new("Reset", map(vec![("x", Variant::U32(1))]));
        assert!(
            o.finish()
                .expect_err("none")
                .to_string()
                .contains("it takes none")
        );
    }

    #[test]
    fn a_value_in_an_extra_variant_is_refused() {
        let doubly = Variant::Variant(Box::new(Variant::Bool(true)));
        let mut o = Options::new("ListDomains", map(vec![("active", doubly)]));
        let e = o.bool("active").expect_err("v(v(b))");
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert_eq!(
            e.to_string(),
            "option 'active' of ListDomains must be of type 'b', not a variant holding 'b': \
             send the value itself"
        );
    }

    #[test]
    fn string_lists() {
        let v = Variant::from(vec!["/", "/mnt/data"]);
        let mut o = Options::new("FSFreeze", map(vec![("mountpoints", v)]));
        assert_eq!(o.strings("mountpoints").expect("as"), ["/", "/mnt/data"]);
        let mut o = Options::new("FSFreeze", map(vec![("mountpoints", Variant::U32(3))]));
        assert!(o.strings("mountpoints").is_err());
    }

    /// Generated dictionaries: random keys, types and extra variant wrappers. Decoding never
    /// panics, succeeds exactly when the value has the expected type, and every error names
    /// the offending option.
    #[test]
    fn generated_dictionaries() {
        let mut rng = crate::model::fuzz::Rng::new(0x0b75_0001);
        let keys = ["paused", "mode", "count", "groups", "bogus", "", "p\u{0}x"];
        // Whether a value of type `sig` in `wraps` extra variants is taken as `want`.
        let accepted = |sig: &str, want: &str, wraps: usize| sig == want && wraps == 0;
        for _ in 0..5000 {
            let mut pairs = Vec::new();
            let mut expect = Vec::new();
            for _ in 0..rng.below(4) {
                let key = keys[rng.below(keys.len())];
                let (value, sig) = match rng.below(6) {
                    0 => (Variant::Bool(rng.below(2) == 1), "b"),
                    1 => (Variant::from("x"), "s"),
                    2 => (Variant::U32(rng.below(9) as u32), "u"),
                    3 => (Variant::from(vec!["a", "b"]), "as"),
                    4 => (Variant::I64(-1), "x"),
                    _ => (Variant::from(1.5f64), "d"),
                };
                let wraps = rng.below(3);
                let mut v = value;
                for _ in 0..wraps {
                    v = Variant::Variant(Box::new(v));
                }
                pairs.retain(|(k, _)| *k != key);
                expect.retain(|(k, _, _)| *k != key);
                pairs.push((key, v));
                expect.push((key, sig, wraps));
            }
            let mut o = Options::new("Fuzz", map(pairs));
            for (key, want) in [
                ("paused", "b"),
                ("mode", "s"),
                ("count", "u"),
                ("groups", "as"),
            ] {
                let r = match want {
                    "b" => o.bool(key).map(|_| ()),
                    "s" => o.string(key).map(|_| ()),
                    "u" => o.u32(key).map(|_| ()),
                    _ => o.strings(key).map(|_| ()),
                };
                let given = expect.iter().find(|(k, _, _)| *k == key);
                match (&r, given) {
                    (Ok(()), None) => {}
                    (Ok(()), Some((_, sig, wraps))) => {
                        assert!(accepted(sig, want, *wraps), "{key}: {sig} in {wraps}");
                    }
                    (Err(e), Some((_, sig, wraps))) => {
                        assert!(!accepted(sig, want, *wraps), "{key}: {e}");
                        assert!(e.to_string().contains(&format!("'{key}'")), "{e}");
                        assert!(matches!(e, Error::InvalidArgument(_)));
                    }
                    (Err(e), None) => panic!("absent {key} failed: {e}"),
                }
            }
            let left = expect
                .iter()
                .any(|(k, _, _)| !["paused", "mode", "count", "groups"].contains(k));
            match o.finish() {
                Ok(()) => assert!(!left),
                Err(e) => {
                    assert!(left, "{e}");
                    assert!(matches!(e, Error::InvalidArgument(_)));
                }
            }
        }
    }
}
