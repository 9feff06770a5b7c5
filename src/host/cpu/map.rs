//! libvirt's x86 CPU map (`/usr/share/libvirt/cpu_map/x86_*.xml`) as data: vendors, features
//! with their CPUID/MSR bits, and models with every feature they inherit, in the map's order
//! (libvirt's CPU driver walks models newest last and features in map order, and so must we).

use std::{collections::BTreeMap, fs, path::Path};

use super::Error;

/// One CPUID leaf (`eax_in`, `ecx_in`) or MSR (`index`), ordered as libvirt sorts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leaf {
    Cpuid(u32, u32),
    Msr(u32),
}

/// CPUID/MSR bits by leaf: `[eax, ebx, ecx, edx]` (an MSR uses `eax` and `edx`).
/// All-zero leaves count as absent, as libvirt's iterator skips them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Data(pub BTreeMap<Leaf, [u32; 4]>);

impl Data {
    pub fn set(&mut self, leaf: Leaf, regs: [u32; 4]) {
        let e = self.0.entry(leaf).or_default();
        for (a, b) in e.iter_mut().zip(regs) {
            *a |= b;
        }
    }

    pub fn get(&self, leaf: Leaf) -> [u32; 4] {
        self.0.get(&leaf).copied().unwrap_or_default()
    }

    /// `self |= other`.
    pub fn add(&mut self, other: &Data) {
        for (l, r) in &other.0 {
            if *r != [0; 4] {
                self.set(*l, *r);
            }
        }
    }

    /// `self &= !other`.
    pub fn subtract(&mut self, other: &Data) {
        for (l, r) in self.0.iter_mut() {
            let o = other.get(*l);
            for (a, b) in r.iter_mut().zip(o) {
                *a &= !b;
            }
        }
    }

    /// `self &= other`.
    pub fn intersect(&mut self, other: &Data) {
        for (l, r) in self.0.iter_mut() {
            let o = other.get(*l);
            for (a, b) in r.iter_mut().zip(o) {
                *a &= b;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|r| *r == [0; 4])
    }

    /// Whether every bit of `sub` is set here.
    pub fn contains(&self, sub: &Data) -> bool {
        sub.0.iter().all(|(l, r)| {
            let mine = self.get(*l);
            mine.iter().zip(r).all(|(a, b)| a & b == *b)
        })
    }

    fn nonzero(&self) -> impl Iterator<Item = (&Leaf, &[u32; 4])> {
        self.0.iter().filter(|(_, r)| **r != [0; 4])
    }
}

/// How two bit sets relate (libvirt's `x86ModelCompare`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Equal,
    Superset,
    Subset,
    Unrelated,
}

/// `a` against `b`, leaf by leaf as libvirt compares models.
pub fn relate(a: &Data, b: &Data) -> Relation {
    let mut result = Relation::Equal;
    let mut step = |m: Relation| -> bool {
        if result == Relation::Equal {
            result = m;
        } else if result != m {
            return false;
        }
        true
    };
    let masked = |x: &[u32; 4], mask: &[u32; 4]| x.iter().zip(mask).all(|(p, q)| p & q == *q);
    for (l, r1) in a.nonzero() {
        let mut m = Relation::Superset;
        if let Some(r2) = b.0.get(l) {
            if r1 == r2 {
                continue;
            }
            if !masked(r1, r2) {
                m = Relation::Subset;
            }
        }
        if !step(m) {
            return Relation::Unrelated;
        }
    }
    for (l, r2) in b.nonzero() {
        let mut m = Relation::Subset;
        if let Some(r1) = a.0.get(l) {
            if r1 == r2 {
                continue;
            }
            if !masked(r2, r1) {
                m = Relation::Superset;
            }
        }
        if !step(m) {
            return Relation::Unrelated;
        }
    }
    result
}

#[derive(Debug, Clone)]
pub struct Vendor {
    pub name: String,
    /// Leaf 0's `ebx`, `edx`, `ecx`: the vendor string.
    pub data: Data,
}

#[derive(Debug, Clone)]
pub struct Feature {
    pub name: String,
    pub data: Data,
    pub migratable: bool,
}

/// A family/model pair (and steppings, none meaning any) a model is decoded for.
#[derive(Debug, Clone)]
pub struct Signature {
    pub family: u32,
    pub model: u32,
    pub steppings: Option<Vec<u32>>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub decode_host: bool,
    pub decode_guest: bool,
    pub vendor: Option<usize>,
    pub signatures: Vec<Signature>,
    pub data: Data,
    /// Features the model lost since it was defined (`removed='yes'`).
    pub removed: Vec<String>,
}

impl Model {
    pub fn matches(&self, signature: u32) -> bool {
        let (family, model, stepping) = split_signature(signature);
        self.signatures.iter().any(|s| {
            s.family == family
                && s.model == model
                && s.steppings.as_ref().is_none_or(|v| v.contains(&stepping))
        })
    }
}

/// Family, model and stepping of CPUID leaf 1's `eax`.
pub fn split_signature(sig: u32) -> (u32, u32, u32) {
    (
        ((sig >> 20) & 0xff) + ((sig >> 8) & 0xf),
        ((sig >> 12) & 0xf0) + ((sig >> 4) & 0xf),
        sig & 0xf,
    )
}

#[derive(Debug, Clone, Default)]
pub struct Map {
    pub vendors: Vec<Vendor>,
    pub features: Vec<Feature>,
    pub models: Vec<Model>,
}

impl Map {
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn vendor(&self, name: &str) -> Option<usize> {
        self.vendors.iter().position(|v| v.name == name)
    }

    /// The vendor whose string `data` carries.
    pub fn vendor_of(&self, data: &Data) -> Option<usize> {
        self.vendors.iter().position(|v| data.contains(&v.data))
    }

    /// The names of the features wholly in `data`, in map order.
    pub fn names(&self, data: &Data) -> Vec<&str> {
        self.features
            .iter()
            .filter(|f| data.contains(&f.data))
            .map(|f| f.name.as_str())
            .collect()
    }

    /// The x86 section of the map under `dir`.
    pub fn load(dir: &Path) -> Result<Map, Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|e| {
                Error::internal(format!("cannot read the CPU map '{}': {e}", path.display()))
            })
        };
        let index = read("index.xml")?;
        let doc = roxmltree::Document::parse(&index)
            .map_err(|e| Error::internal(format!("cannot parse the CPU map 'index.xml': {e}")))?;
        let mut map = Map::default();
        let Some(sec) = doc
            .descendants()
            .find(|n| n.has_tag_name("arch") && n.attribute("name") == Some("x86"))
        else {
            return Ok(map);
        };
        for inc in sec.descendants().filter(|n| n.has_tag_name("include")) {
            let Some(file) = inc.attribute("filename") else {
                continue;
            };
            let text = read(file)?;
            let d = roxmltree::Document::parse(&text)
                .map_err(|e| Error::internal(format!("cannot parse the CPU map '{file}': {e}")))?;
            for n in d.root_element().children().filter(|n| n.is_element()) {
                let name = n.attribute("name").unwrap_or_default().to_owned();
                match n.tag_name().name() {
                    "vendor" => map.add_vendor(name, n.attribute("string").unwrap_or_default())?,
                    "feature" => map.add_feature(name, n)?,
                    "model" => map.add_model(name, n)?,
                    _ => {}
                }
            }
        }
        Ok(map)
    }

    fn add_vendor(&mut self, name: String, string: &str) -> Result<(), Error> {
        let b = string.as_bytes();
        if b.len() != 12 {
            return Err(Error::internal(format!(
                "Invalid CPU vendor string '{string}'"
            )));
        }
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut data = Data::default();
        data.set(Leaf::Cpuid(0, 0), [0, word(0), word(8), word(4)]);
        self.vendors.push(Vendor { name, data });
        Ok(())
    }

    fn add_feature(&mut self, name: String, n: roxmltree::Node) -> Result<(), Error> {
        let mut data = Data::default();
        for item in n.children().filter(|c| c.is_element()) {
            let attr = |a: &str| item.attribute(a).map_or(Some(0), parse_uint);
            let bad = || Error::internal(format!("invalid CPU map data of feature {name}"));
            match item.tag_name().name() {
                "cpuid" => {
                    let v: Option<Vec<u32>> = ["eax_in", "ecx_in", "eax", "ebx", "ecx", "edx"]
                        .iter()
                        .map(|a| attr(a))
                        .collect();
                    let v = v.ok_or_else(bad)?;
                    data.set(Leaf::Cpuid(v[0], v[1]), [v[2], v[3], v[4], v[5]]);
                }
                "msr" => {
                    let v: Option<Vec<u32>> =
                        ["index", "eax", "edx"].iter().map(|a| attr(a)).collect();
                    let v = v.ok_or_else(bad)?;
                    data.set(Leaf::Msr(v[0]), [v[1], 0, 0, v[2]]);
                }
                _ => {}
            }
        }
        let migratable = n.attribute("migratable") != Some("no");
        self.features.push(Feature {
            name,
            data,
            migratable,
        });
        Ok(())
    }

    fn add_model(&mut self, name: String, n: roxmltree::Node) -> Result<(), Error> {
        let child = |tag: &str| n.children().find(|c| c.has_tag_name(tag));
        let decode = child("decode");
        let on = |a: &str| decode.and_then(|d| d.attribute(a)) == Some("on");
        let mut model = Model {
            decode_host: on("host"),
            decode_guest: on("guest"),
            vendor: None,
            signatures: Vec::new(),
            data: Data::default(),
            removed: Vec::new(),
            name,
        };
        if let Some(anc) = child("model").and_then(|m| m.attribute("name")) {
            let a = self.model(anc).ok_or_else(|| {
                Error::internal(format!(
                    "Ancestor model {anc} not found for CPU model {}",
                    model.name
                ))
            })?;
            model.vendor = a.vendor;
            model.signatures = a.signatures.clone();
            model.data = a.data.clone();
        }
        let sigs: Vec<Signature> = n
            .children()
            .filter(|c| c.has_tag_name("signature"))
            .map(|s| Signature {
                family: s.attribute("family").and_then(parse_uint).unwrap_or(0),
                model: s.attribute("model").and_then(parse_uint).unwrap_or(0),
                steppings: s.attribute("stepping").map(parse_list),
            })
            .collect();
        if !sigs.is_empty() {
            model.signatures = sigs;
        }
        if let Some(v) = child("vendor").and_then(|v| v.attribute("name")) {
            model.vendor = Some(self.vendor(v).ok_or_else(|| {
                Error::internal(format!(
                    "Unknown vendor {v} referenced by CPU model {}",
                    model.name
                ))
            })?);
        }
        for f in n.children().filter(|c| c.has_tag_name("feature")) {
            let fname = f.attribute("name").unwrap_or_default();
            let feature = self.feature(fname).ok_or_else(|| {
                Error::internal(format!(
                    "Feature {fname} required by CPU model {} not found",
                    model.name
                ))
            })?;
            if f.attribute("removed") == Some("yes") {
                model.removed.push(fname.to_owned());
            } else {
                model.data.add(&feature.data);
            }
        }
        self.models.push(model);
        Ok(())
    }
}

/// An unsigned number as C's `strtoul` with base 0 reads it (`0x` hex, leading-0 octal).
pub fn parse_uint(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// A list such as `0-3,5`.
fn parse_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.trim().parse::<u32>().ok()),
        }
    }
    out
}

/// The ppc64 section of the map: vendor names and models with their vendor (libvirt's ppc64
/// driver compares models by name only).
#[derive(Debug, Clone, Default)]
pub struct Ppc64Map {
    pub vendors: Vec<String>,
    pub models: Vec<(String, Option<String>)>,
}

impl Ppc64Map {
    pub fn load(dir: &Path) -> Result<Ppc64Map, Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|e| {
                Error::internal(format!("cannot read the CPU map '{}': {e}", path.display()))
            })
        };
        let index = read("index.xml")?;
        let doc = roxmltree::Document::parse(&index)
            .map_err(|e| Error::internal(format!("cannot parse the CPU map 'index.xml': {e}")))?;
        let mut map = Ppc64Map::default();
        let Some(sec) = doc
            .descendants()
            .find(|n| n.has_tag_name("arch") && n.attribute("name") == Some("ppc64"))
        else {
            return Ok(map);
        };
        for inc in sec.descendants().filter(|n| n.has_tag_name("include")) {
            let Some(file) = inc.attribute("filename") else {
                continue;
            };
            let text = read(file)?;
            let d = roxmltree::Document::parse(&text)
                .map_err(|e| Error::internal(format!("cannot parse the CPU map '{file}': {e}")))?;
            for n in d.root_element().children().filter(|n| n.is_element()) {
                let name = n.attribute("name").unwrap_or_default().to_owned();
                match n.tag_name().name() {
                    "vendor" => map.vendors.push(name),
                    "model" => {
                        let vendor = n
                            .children()
                            .find(|c| c.has_tag_name("vendor"))
                            .and_then(|v| v.attribute("name"))
                            .map(str::to_owned);
                        map.models.push((name, vendor));
                    }
                    _ => {}
                }
            }
        }
        Ok(map)
    }

    /// `virCPUppc64Baseline`: every CPU must be of the first one's model.
    pub fn baseline(&self, cpus: &[super::CpuDef]) -> Result<super::CpuDef, Error> {
        let failed = |m: String| Error::new(super::Kind::OperationFailed, m);
        let first = cpus[0].model.clone().unwrap_or_default();
        let (name, model_vendor) = self
            .models
            .iter()
            .find(|(n, _)| *n == first)
            .ok_or_else(|| Error::internal(format!("Unknown CPU model {first}")))?;
        let mut vendor: Option<&str> = None;
        for c in cpus {
            if c.model.as_deref() != Some(name.as_str()) {
                return Err(failed("CPUs are incompatible".into()));
            }
            let Some(v) = c.vendor.as_deref() else {
                continue;
            };
            if !self.vendors.iter().any(|x| x == v) {
                return Err(failed(format!("Unknown CPU vendor {v}")));
            }
            match (model_vendor, vendor) {
                (Some(mv), _) if mv != v => {
                    return Err(failed(format!(
                        "CPU vendor {mv} of model {name} differs from vendor {v}"
                    )));
                }
                (Some(_), _) => {}
                (None, Some(prev)) if prev != v => {
                    return Err(failed("CPU vendors do not match".into()));
                }
                (None, Some(_)) => {}
                (None, None) => vendor = Some(v),
            }
        }
        let mut cpu = super::CpuDef::guest();
        cpu.model = Some(name.clone());
        cpu.vendor = vendor.map(str::to_owned);
        cpu.fallback_forbid = true;
        Ok(cpu)
    }
}
