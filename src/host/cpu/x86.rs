//! libvirt's x86 CPU driver over the map: a definition's CPUID bits, comparing a CPU with the
//! host's, decoding bits into the closest model plus features, and baselines.

use super::{
    Error, Kind,
    def::{CpuDef, CpuType, FeatureDef, Policy},
    map::{Data, Leaf, Map, Model, Relation, relate},
};

/// How a CPU relates to the host's (`virCPUCompareResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Incompatible,
    Identical,
    Superset,
}

/// Which features of a definition to gather (`x86ModelFromCPU`'s policy; `All` is -1:
/// the model and required/forced features less disabled/forbidden ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    All,
    Only(Policy),
}

fn bits(cpu: &CpuDef, map: &Map, pick: Pick) -> Result<Data, Error> {
    if cpu.kind == CpuType::Host && !matches!(pick, Pick::All | Pick::Only(Policy::Require)) {
        return Ok(Data::default());
    }
    let mut data = Data::default();
    if let Some(m) = &cpu.model
        && matches!(pick, Pick::All | Pick::Only(Policy::Require))
    {
        let model = map
            .model(m)
            .ok_or_else(|| Error::internal(format!("Unknown CPU model {m}")))?;
        data = model.data.clone();
    }
    for f in &cpu.features {
        let fpol = f.policy.unwrap_or(Policy::Require);
        let wanted = match pick {
            Pick::All => fpol != Policy::Optional,
            Pick::Only(p) => fpol == p,
        };
        if !wanted {
            continue;
        }
        let feature = map
            .feature(&f.name)
            .ok_or_else(|| Error::internal(format!("Unknown CPU feature {}", f.name)))?;
        match (pick, fpol) {
            (Pick::All, Policy::Disable | Policy::Forbid) => data.subtract(&feature.data),
            _ => data.add(&feature.data),
        }
    }
    Ok(data)
}

/// `cpu` against the host's CPU `host` (`x86Compute`): the result and, when incompatible,
/// libvirt's reason listing the features.
pub fn compare(map: &Map, host: &CpuDef, cpu: &CpuDef) -> Result<(Comparison, String), Error> {
    let incompatible = |m: String| Ok((Comparison::Incompatible, m));
    if let Some(a) = &cpu.arch
        && a != "x86_64"
        && a != "i686"
    {
        return incompatible(format!("CPU arch {a} does not match host arch"));
    }
    if let Some(v) = &cpu.vendor
        && host.vendor.as_deref() != Some(v.as_str())
    {
        return incompatible(format!(
            "host CPU vendor does not match required CPU vendor {v}"
        ));
    }
    let host_bits = bits(host, map, Pick::All)?;
    let force = bits(cpu, map, Pick::Only(Policy::Force))?;
    let mut require = bits(cpu, map, Pick::Only(Policy::Require))?;
    let optional = bits(cpu, map, Pick::Only(Policy::Optional))?;
    let disable = bits(cpu, map, Pick::Only(Policy::Disable))?;
    let mut forbid = bits(cpu, map, Pick::Only(Policy::Forbid))?;
    let names = |d: &Data| map.names(d).join(", ");
    forbid.intersect(&host_bits);
    if !forbid.is_empty() {
        return incompatible(format!(
            "Host CPU provides forbidden features: {}",
            names(&forbid)
        ));
    }
    require.subtract(&force);
    require.subtract(&optional);
    require.subtract(&disable);
    if matches!(
        relate(&host_bits, &require),
        Relation::Subset | Relation::Unrelated
    ) {
        require.subtract(&host_bits);
        return incompatible(format!(
            "Host CPU does not provide required features: {}",
            names(&require)
        ));
    }
    let mut diff = host_bits;
    for d in [&optional, &require, &disable, &force] {
        diff.subtract(d);
    }
    if diff.is_empty() {
        return Ok((Comparison::Identical, String::new()));
    }
    if cpu.kind == CpuType::Guest && cpu.matching == "strict" {
        return incompatible(format!(
            "Host CPU does not strictly match guest CPU: Extra features: {}",
            names(&diff)
        ));
    }
    Ok((Comparison::Superset, String::new()))
}

/// A model the hypervisor offers, with the features that keep it from running here.
#[derive(Debug, Clone)]
pub struct HvModel {
    pub name: String,
    pub blockers: Vec<String>,
}

/// `data` as `model` plus required and disabled features (`x86DataToCPU`).
fn to_cpu(map: &Map, data: &Data, model: &Model, hv: Option<&HvModel>, kind: CpuType) -> CpuDef {
    let mut copy = data.clone();
    let mut model_data = model.data.clone();
    if let Some(v) = map.vendor_of(&copy) {
        copy.subtract(&map.vendors[v].data);
    }
    copy.subtract(&model_data);
    model_data.subtract(data);
    if let Some(hv) = hv {
        for b in &hv.blockers {
            if let Some(f) = map.feature(b)
                && !copy.contains(&f.data)
            {
                model_data.add(&f.data);
            }
        }
    }
    let mut cpu = CpuDef::guest();
    cpu.model = Some(model.name.clone());
    for (policy, d) in [
        (Policy::Require, &mut copy),
        (Policy::Disable, &mut model_data),
    ] {
        for f in &map.features {
            if d.contains(&f.data) && !f.data.is_empty() {
                d.subtract(&f.data);
                cpu.features.push(FeatureDef {
                    name: f.name.clone(),
                    policy: Some(policy),
                });
            }
        }
    }
    if kind == CpuType::Guest {
        for r in &model.removed {
            if !cpu.features.iter().any(|f| &f.name == r) {
                cpu.features.push(FeatureDef {
                    name: r.clone(),
                    policy: Some(Policy::Disable),
                });
            }
        }
    }
    cpu.kind = kind;
    cpu
}

const BASE_PENALTY: usize = 2;

/// Whether `cand` has a better feature list than `cur` (`virCPUx86CompareCandidateFeatureList`,
/// its loop bounds included).
fn better_features(cur: &CpuDef, cand: &CpuDef, preferred: bool) -> bool {
    let score = |c: &CpuDef| {
        let mut enabled = c.features.len();
        let mut disabled = 0;
        if cand.kind != CpuType::Host {
            let mut penalty = BASE_PENALTY;
            let mut i = 0;
            while i < enabled {
                if c.features[i].policy == Some(Policy::Disable) {
                    enabled -= 1;
                    disabled += penalty;
                    penalty += 1;
                }
                i += 1;
            }
        }
        (enabled + disabled, disabled)
    };
    let (current, dis_cur) = score(cur);
    let (candidate, dis) = score(cand);
    candidate < current || (candidate == current && dis < dis_cur) || (preferred && dis < dis_cur)
}

/// `x86Decode`: the model closest to `data` with the features that make up the difference.
/// `models` limits the candidates to a hypervisor's; `preferred` names models to favour.
pub fn decode(
    map: &Map,
    data: &Data,
    kind: CpuType,
    models: Option<&[HvModel]>,
    preferred: &[String],
    fallback_forbid: bool,
    migratable: bool,
) -> Result<CpuDef, Error> {
    let mut data = data.clone();
    let vendor = map.vendor_of(&data);
    let signature = data.get(Leaf::Cpuid(1, 0))[0] & 0x0fff_3fff;
    if let Some(v) = vendor
        && map.vendors[v].name == "Intel"
    {
        let (family, model, stepping) = super::map::split_signature(signature);
        if family == 6 && ((model == 63 && stepping < 4) || matches!(model, 60 | 69 | 70)) {
            for f in ["hle", "rtm"] {
                if let Some(f) = map.feature(f) {
                    data.subtract(&f.data);
                }
            }
        }
    }
    let single = (preferred.len() == 1).then(|| preferred[0].as_str());
    let mut best: Option<(&Model, CpuDef)> = None;
    for candidate in map.models.iter().rev() {
        let hv = match models {
            Some(ms) => match ms.iter().find(|m| m.name == candidate.name) {
                Some(m) => Some(m),
                None => {
                    if single == Some(candidate.name.as_str()) && fallback_forbid {
                        return Err(Error::new(
                            Kind::ConfigUnsupported,
                            format!(
                                "CPU model {} is not supported by hypervisor",
                                candidate.name
                            ),
                        ));
                    }
                    continue;
                }
            },
            None => None,
        };
        if let (Some(v), Some(cv)) = (vendor, candidate.vendor)
            && v != cv
        {
            continue;
        }
        let mut cpu = to_cpu(map, &data, candidate, hv, kind);
        // x86DecodeUseCandidate
        if (kind == CpuType::Host && !candidate.decode_host)
            || (kind == CpuType::Guest && !candidate.decode_guest)
        {
            continue;
        }
        if kind == CpuType::Host {
            if cpu
                .features
                .iter()
                .any(|f| f.policy == Some(Policy::Disable))
            {
                continue;
            }
            for f in &mut cpu.features {
                f.policy = None;
            }
        }
        let is_preferred = preferred.contains(&candidate.name);
        if is_preferred && single.is_some() {
            best = Some((candidate, cpu));
            break;
        }
        let take = match &best {
            None => true,
            Some((cur, cur_cpu)) => {
                if signature != 0 && cur.matches(signature) && !candidate.matches(signature) {
                    false
                } else if signature != 0 && !cur.matches(signature) && candidate.matches(signature)
                {
                    true
                } else {
                    better_features(cur_cpu, &cpu, is_preferred)
                }
            }
        };
        if take {
            best = Some((candidate, cpu));
        }
    }
    let Some((_, mut cpu)) = best else {
        return Err(Error::internal(
            "Cannot find suitable CPU model for given data",
        ));
    };
    if migratable {
        cpu.features
            .retain(|f| map.feature(&f.name).is_none_or(|x| x.migratable));
    }
    cpu.vendor = vendor.map(|v| map.vendors[v].name.clone());
    Ok(cpu)
}

/// `virCPUx86Baseline`: the CPU all of `cpus` can run, from `models` when given, limited to
/// `features` when given.
pub fn baseline(
    map: &Map,
    cpus: &[CpuDef],
    models: Option<&[HvModel]>,
    features: Option<&[String]>,
    migratable: bool,
) -> Result<CpuDef, Error> {
    let failed = |m: String| Error::new(Kind::OperationFailed, m);
    let first = &cpus[0];
    let mut base = bits(first, map, Pick::All)?;
    let mut output_vendor = true;
    let mut vendor = match &first.vendor {
        None => {
            output_vendor = false;
            None
        }
        Some(v) => Some(
            map.vendor(v)
                .ok_or_else(|| failed(format!("Unknown CPU vendor {v}")))?,
        ),
    };
    let mut names: Vec<String> = first.model.iter().cloned().collect();
    for cpu in &cpus[1..] {
        if let Some(m) = &cpu.model
            && !names.contains(m)
        {
            names.push(m.clone());
        }
        let data = bits(cpu, map, Pick::All)?;
        let model = cpu.model.as_deref().and_then(|m| map.model(m));
        let model_vendor = model
            .and_then(|m| m.vendor)
            .map(|v| map.vendors[v].name.as_str());
        if let (Some(v), Some(mv)) = (&cpu.vendor, model_vendor)
            && v != mv
        {
            return Err(failed(format!(
                "CPU vendor {mv} of model {} differs from vendor {v}",
                cpu.model.as_deref().unwrap_or_default()
            )));
        }
        let vn = match &cpu.vendor {
            Some(v) => Some(v.as_str()),
            None => {
                output_vendor = false;
                model_vendor
            }
        };
        if let Some(vn) = vn {
            match vendor {
                None => {
                    vendor = Some(
                        map.vendor(vn)
                            .ok_or_else(|| failed(format!("Unknown CPU vendor {vn}")))?,
                    )
                }
                Some(v) if map.vendors[v].name != vn => {
                    return Err(failed("CPU vendors do not match".into()));
                }
                Some(_) => {}
            }
        }
        base.intersect(&data);
    }
    if let Some(fs) = features {
        let mut allowed = Data::default();
        for f in fs {
            if let Some(f) = map.feature(f) {
                allowed.add(&f.data);
            }
        }
        base.intersect(&allowed);
    }
    if base.is_empty() {
        return Err(failed("CPUs are incompatible".into()));
    }
    if let Some(v) = vendor {
        base.add(&map.vendors[v].data);
    }
    let mut cpu = decode(
        map,
        &base,
        CpuType::Guest,
        models,
        &names,
        false,
        migratable,
    )?;
    if names.len() == 1 && cpu.model.as_deref() == Some(names[0].as_str()) {
        cpu.fallback_forbid = true;
    }
    if !output_vendor {
        cpu.vendor = None;
    }
    Ok(cpu)
}

/// `virCPUx86ExpandFeatures` then libvirt's sort by name: every feature the model implies
/// listed explicitly.
pub fn expand(map: &Map, cpu: &mut CpuDef) -> Result<(), Error> {
    let name = cpu.model.clone().unwrap_or_default();
    let model = map
        .model(&name)
        .ok_or_else(|| Error::internal(format!("unknown CPU model {name}")))?;
    let host = cpu.kind == CpuType::Host;
    let mut expanded = cpu.clone();
    expanded.features.clear();
    let mut data = model.data.clone();
    for f in &map.features {
        if data.contains(&f.data) && !f.data.is_empty() {
            data.subtract(&f.data);
            expanded.update_feature(&f.name, (!host).then_some(Policy::Require));
        }
    }
    for f in &cpu.features {
        if !host && !matches!(f.policy, Some(Policy::Require | Policy::Disable)) {
            continue;
        }
        expanded.update_feature(&f.name, f.policy);
    }
    if !host {
        for r in &model.removed {
            if !expanded.features.iter().any(|f| &f.name == r) {
                expanded.update_feature(r, Some(Policy::Disable));
            }
        }
    }
    cpu.features = expanded.features;
    cpu.features.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(())
}
