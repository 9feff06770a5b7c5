//! A domain's disks beyond their definition: I/O throttling (`<iotune>`, live and in the
//! definition), error states, write thresholds, resizing and block jobs (pull, commit,
//! copy). The core finds the disk the caller names (its target, its source path, or for
//! images of its chain `vda[2]`) and checks the request as libvirt does; the driver carries
//! it out in the hypervisor.

use std::sync::Arc;

use super::{Core, Domain, Error, Event, Result, events::lock, ops::Operation, options::Affect};
use crate::{
    drivers::block::{BlockJobStatus, BlockReply, BlockRequest, DiskError, JobStart},
    model::{
        DomainDef,
        devices::{BackingStore, Disk, DiskFormat, IOTUNE_FIELDS, Iotune},
    },
};

/// The largest limit QEMU takes (libvirt's `QEMU_BLOCK_IOTUNE_MAX`).
pub const IOTUNE_MAX: u64 = 1_000_000_000_000_000;

/// A change of throttling: the fields given (by libvirt's names), the rest kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IotuneChange {
    pub limits: Vec<(String, u64)>,
    pub group_name: Option<String>,
}

/// A value of a `tunable` event's parameter (the tuning operations' type).
pub use super::tune::TunableValue;

/// Fields set together: setting one resets the others of its group (libvirt's rule).
const GROUPS: [&[usize]; 7] = [
    &[0, 1, 2],
    &[3, 4, 5],
    &[6, 7, 8],
    &[9, 10, 11],
    &[12],
    &[13, 14, 15],
    &[16, 17, 18],
];

impl IotuneChange {
    /// `old` with this change applied, checked as libvirt checks it.
    pub fn apply(&self, old: Option<&Iotune>) -> Result<Iotune> {
        let old = old.cloned().unwrap_or_default();
        let mut new = old.clone();
        let mut given = [false; 19];
        for (name, v) in &self.limits {
            let i = IOTUNE_FIELDS
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("unknown I/O throttle field '{name}'"))
                })?;
            if *v > IOTUNE_MAX {
                return Err(Error::NotSupported(format!(
                    "block I/O throttle limit value must be no more than {IOTUNE_MAX}"
                )));
            }
            given[i] = true;
        }
        for g in GROUPS {
            if g.iter().any(|i| given[*i]) {
                for i in g.iter() {
                    new.limits[*i] = 0;
                }
            }
        }
        for (name, v) in &self.limits {
            if let Some(i) = IOTUNE_FIELDS.iter().position(|(n, _)| n == name) {
                new.limits[i] = *v;
            }
        }
        if let Some(g) = &self.group_name {
            new.group_name = Some(g.clone()).filter(|g| !g.is_empty());
        }
        let l = &new.limits;
        for (total, rd, wr, what) in [
            (0, 1, 2, "bytes_sec"),
            (3, 4, 5, "iops_sec"),
            (6, 7, 8, "bytes_sec_max"),
            (9, 10, 11, "iops_sec_max"),
        ] {
            if l[total] != 0 && (l[rd] != 0 || l[wr] != 0) {
                return Err(Error::InvalidArgument(format!(
                    "total and read/write of {what} cannot be set at the same time"
                )));
            }
        }
        for i in 0..6 {
            let (val, max) = (l[i], l[i + 6]);
            let (vn, mn) = (IOTUNE_FIELDS[i].0, IOTUNE_FIELDS[i + 6].0);
            if max != 0 && val == 0 {
                return Err(Error::NotSupported(format!(
                    "value '{mn}' cannot be set if '{vn}' is not set"
                )));
            }
            if max != 0 && max < val {
                return Err(Error::NotSupported(format!(
                    "value '{mn}' cannot be smaller than '{vn}'"
                )));
            }
        }
        Ok(new)
    }
}

/// The disk `name` names in `def`: its target, or its source path (libvirt's
/// `virDomainDiskByName`).
pub fn find_disk<'a>(def: &'a DomainDef, name: &str) -> Option<&'a Disk> {
    def.devices.disks.iter().find(|d| {
        d.target_dev == name || d.source.as_ref().and_then(|s| s.path.as_deref()) == Some(name)
    })
}

fn not_found(name: &str) -> Error {
    Error::InvalidArgument(format!("disk '{name}' not found in domain"))
}

/// One image of a disk's chain: path, index (as the live XML numbers it), format.
#[derive(Debug, Clone)]
struct Image {
    path: String,
    index: Option<u32>,
    format: DiskFormat,
}

fn chain(d: &Disk) -> Vec<Image> {
    let mut out = Vec::new();
    if let Some(s) = &d.source
        && let Some(p) = &s.path
    {
        out.push(Image {
            path: p.clone(),
            index: s.index,
            format: d
                .driver
                .as_ref()
                .and_then(|x| x.format)
                .unwrap_or(DiskFormat::Raw),
        });
    }
    let mut below = d.backing_store.as_ref();
    while let Some(BackingStore::Image(img)) = below {
        if let Some(p) = img.source.as_ref().and_then(|s| s.path.clone()) {
            out.push(Image {
                path: p,
                index: img.index,
                format: img.format.unwrap_or(DiskFormat::Raw),
            });
        }
        below = img.backing_store.as_ref();
    }
    out
}

/// Where image `name` (a path, or `vda[2]`) sits in `images`, searching from `from` on
/// (libvirt's `virStorageSourceChainLookup`).
fn lookup(images: &[Image], d: &Disk, name: &str, from: usize) -> Result<usize> {
    let top = d.target_dev.as_str();
    if let Some((tgt, idx)) = name.strip_suffix(']').and_then(|n| n.split_once('['))
        && let Ok(idx) = idx.parse::<u32>()
    {
        if tgt != d.target_dev {
            return Err(Error::InvalidArgument(format!(
                "requested target '{tgt}' does not match target '{}'",
                d.target_dev
            )));
        }
        return images
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, i)| i.index == Some(idx))
            .map(|(n, _)| n)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "could not find backing store index '{idx}' in chain for '{top}'"
                ))
            });
    }
    let want = std::fs::canonicalize(name).ok();
    images
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, i)| {
            i.path == name || (want.is_some() && std::fs::canonicalize(&i.path).ok() == want)
        })
        .map(|(n, _)| n)
        .ok_or_else(|| {
            Error::InvalidArgument(if from > 0 {
                format!(
                    "could not find image '{name}' beneath '{}' in chain for '{top}'",
                    images[from - 1].path
                )
            } else {
                format!("could not find image '{name}' in chain for '{top}'")
            })
        })
}

/// A block job as asked, before the disk and images it names are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobAsk {
    Pull {
        base: Option<String>,
    },
    Commit {
        top: Option<String>,
        base: Option<String>,
        shallow: bool,
        active: bool,
    },
    Copy {
        dest: String,
        format: Option<DiskFormat>,
        shallow: bool,
        reuse: bool,
        transient_job: bool,
    },
}

/// A request about one disk, naming it as the caller did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockAsk {
    Resize { bytes: u64 },
    Threshold { bytes: u64 },
    Start { job: JobAsk, bandwidth: u64 },
    Info,
    Abort { pivot: bool, wait: bool },
    SetSpeed { bandwidth: u64 },
}

impl Core {
    /// The throttling of disk `disk` in the definition `affect` picks.
    pub fn block_iotune(&self, dom: &Domain, disk: &str, affect: Affect) -> Result<Iotune> {
        let d = lock(&dom.data);
        let live = affect
            .resolve_one(
                &d.def.name,
                Operation::BlockIoTune,
                d.status.state,
                d.persistent,
            )?
            .live;
        let def = d.def_for_read(affect, Operation::BlockIoTune)?;
        // libvirt's test driver words it the config's way for both definitions
        let test = dom.driver.name() == "test";
        let found = find_disk(def, disk).ok_or_else(|| {
            if live && !test {
                not_found(disk)
            } else {
                Error::InvalidArgument(format!("disk '{disk}' was not found in the domain config"))
            }
        })?;
        Ok(found.iotune.clone().unwrap_or_default())
    }

    /// Change the throttling of disk `disk` in the definitions `affect` picks: the running
    /// guest's through its driver, the persistent definition on disk.
    pub async fn set_block_iotune(
        &self,
        dom: &Arc<Domain>,
        disk: &str,
        change: IotuneChange,
        affect: Affect,
    ) -> Result<()> {
        let _job = dom.begin_job("block I/O tune").await?;
        let (t, live, config) = {
            let d = lock(&dom.data);
            let t = affect.resolve(
                &d.def.name,
                Operation::SetBlockIoTune,
                d.status.state,
                d.persistent,
            )?;
            (t, d.live.clone(), d.def.clone())
        };
        let mut new_live = None;
        if t.live
            && let Some(l) = &live
        {
            let found = find_disk(l, disk).ok_or_else(|| {
                if dom.driver.name() == "test" {
                    // libvirt's test driver words it the config's way for both definitions
                    Error::InvalidArgument(format!(
                        "missing persistent configuration for disk '{disk}'"
                    ))
                } else {
                    not_found(disk)
                }
            })?;
            let tune = change.apply(found.iotune.as_ref())?;
            dom.driver.check_iotune(&tune)?;
            let target = found.target_dev.clone();
            let req = BlockRequest::SetIoTune {
                target: target.clone(),
                tune: tune.clone(),
            };
            dom.driver.block(&self.ctx(dom), l, req).await?;
            let mut def = DomainDef::clone(l);
            set_tune(&mut def, &target, tune);
            new_live = Some(Arc::new(def));
        }
        let mut new_config = None;
        if t.config {
            let found = find_disk(&config, disk).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "missing persistent configuration for disk '{disk}'"
                ))
            })?;
            let tune = change.apply(found.iotune.as_ref())?;
            dom.driver.check_iotune(&tune)?;
            let target = found.target_dev.clone();
            let mut def = DomainDef::clone(&config);
            set_tune(&mut def, &target, tune);
            let def = Arc::new(def);
            let mut rec = lock(&dom.data).record();
            rec.def = (*def).clone();
            self.save_record(rec).await?;
            new_config = Some(def);
        }
        let mut events = Vec::new();
        // libvirt's test driver raises none
        if new_live.is_some() && dom.driver.name() != "test" {
            // libvirt's `tunable` event: the disk as named, then each value given
            let mut params = vec![(
                "blkdeviotune.disk".to_owned(),
                TunableValue::Str(disk.to_owned()),
            )];
            for (k, v) in &change.limits {
                params.push((format!("blkdeviotune.{k}"), TunableValue::ULLong(*v)));
            }
            if let Some(g) = &change.group_name {
                params.push((
                    "blkdeviotune.group_name".to_owned(),
                    TunableValue::Str(g.clone()),
                ));
            }
            events.push(Event::Tunable {
                uuid: dom.uuid,
                params,
            });
        }
        self.update(dom, |d| {
            if let Some(l) = new_live {
                d.live = Some(l);
            }
            if let Some(c) = new_config {
                d.def = c;
            }
            ((), events)
        });
        Ok(())
    }

    /// The disks of the running guest in an error state; `None` asks only how many disks
    /// there are (libvirt's first call). The test driver makes its errors up as libvirt's
    /// does.
    pub async fn disk_errors(
        &self,
        dom: &Arc<Domain>,
        max: Option<usize>,
    ) -> Result<(usize, Vec<(String, DiskError)>)> {
        let (live, _) = Self::require(dom, Operation::DiskErrors)?;
        let n = live.devices.disks.len();
        let Some(max) = max else {
            return Ok((n, Vec::new()));
        };
        let errors = match dom
            .driver
            .block(&self.ctx(dom), &live, BlockRequest::Errors)
            .await?
        {
            BlockReply::Errors(e) => e,
            _ => Vec::new(),
        };
        let errors: Vec<_> = errors.into_iter().take(max).collect();
        Ok((errors.len(), errors))
    }

    /// A request about disk `disk` of the running guest.
    pub async fn block(&self, dom: &Arc<Domain>, disk: &str, ask: BlockAsk) -> Result<BlockReply> {
        let op = match ask {
            BlockAsk::Info => Operation::BlockJobInfo,
            _ => Operation::BlockWrite,
        };
        let _job = match op.job() {
            Some(j) => Some(dom.begin_job(j).await?),
            None => None,
        };
        if let BlockAsk::Start {
            job: job @ JobAsk::Commit { .. },
            ..
        } = &ask
        {
            // libvirt looks the images up before it asks for a running domain
            let def = lock(&dom.data).current_def().clone();
            let d = find_disk(&def, disk).ok_or_else(|| not_found(disk))?;
            commit_images(d, job)?;
        }
        let (live, _) = Self::require(dom, op)?;
        let persistent = lock(&dom.data).persistent;
        let req = match ask {
            BlockAsk::Threshold { bytes } => {
                let (target, index) = match disk.strip_suffix(']').and_then(|n| n.split_once('[')) {
                    Some((t, i)) => (
                        t,
                        Some(i.parse::<u32>().map_err(|_| {
                            Error::InvalidArgument(format!("failed to parse block device '{disk}'"))
                        })?),
                    ),
                    None => (disk, None),
                };
                let d = live
                    .devices
                    .disks
                    .iter()
                    .find(|d| d.target_dev == target)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("failed to find disk '{target}'"))
                    })?;
                // index 0 is the top image
                let index = index.filter(|i| *i != 0);
                if index.is_some() {
                    lookup(&chain(d), d, disk, 0).map_err(|_| {
                        Error::InvalidArgument(format!("failed to find disk '{disk}'"))
                    })?;
                }
                BlockRequest::SetThreshold {
                    target: target.to_owned(),
                    index,
                    bytes,
                }
            }
            BlockAsk::Resize { bytes } => {
                let d = find_disk(&live, disk).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "disk '{disk}' was not found in the domain config"
                    ))
                })?;
                let qcow = matches!(
                    d.driver.as_ref().and_then(|x| x.format),
                    Some(DiskFormat::Qcow2 | DiskFormat::Qed)
                );
                let empty = d.source.as_ref().is_none_or(|s| s.path.is_none());
                if empty || d.readonly {
                    return Err(Error::NotSupported(format!(
                        "can't resize empty or readonly disk '{}'",
                        d.target_dev
                    )));
                }
                let bytes = if qcow {
                    bytes.div_ceil(512).saturating_mul(512)
                } else {
                    bytes
                };
                BlockRequest::Resize {
                    target: d.target_dev.clone(),
                    bytes,
                }
            }
            BlockAsk::Start { job, bandwidth } => {
                let d = find_disk(&live, disk).ok_or_else(|| not_found(disk))?;
                let job = resolve_job(d, job, persistent)?;
                BlockRequest::Start {
                    target: d.target_dev.clone(),
                    job,
                    bandwidth,
                }
            }
            BlockAsk::Info => {
                let d = find_disk(&live, disk).ok_or_else(|| not_found(disk))?;
                BlockRequest::Info {
                    target: d.target_dev.clone(),
                }
            }
            BlockAsk::Abort { pivot, wait } => {
                let d = find_disk(&live, disk).ok_or_else(|| not_found(disk))?;
                BlockRequest::Abort {
                    target: d.target_dev.clone(),
                    pivot,
                    wait,
                }
            }
            BlockAsk::SetSpeed { bandwidth } => {
                let d = find_disk(&live, disk).ok_or_else(|| not_found(disk))?;
                BlockRequest::SetSpeed {
                    target: d.target_dev.clone(),
                    bandwidth,
                }
            }
        };
        Ok(dom.driver.block(&self.ctx(dom), &live, req).await?)
    }

    /// A block job changed (driver event): the live disk as the job left it (and the
    /// persistent one where libvirt changes it: an active commit whose disk the definition
    /// names by the same image moves onto the base there too), then libvirt's events.
    pub(crate) fn block_job_event(
        &self,
        dom: &Arc<Domain>,
        target: String,
        kind: crate::drivers::block::BlockJobKind,
        status: BlockJobStatus,
        disk: Option<Box<Disk>>,
    ) {
        let uuid = dom.uuid;
        let persist = self.update(dom, |d| {
            let mut persist = false;
            let mut path = None;
            if let Some(new) = &disk
                && let Some(live) = &d.live
            {
                let mut def = DomainDef::clone(live);
                if let Some(slot) = def
                    .devices
                    .disks
                    .iter_mut()
                    .find(|x| x.target_dev == target)
                {
                    let old_src = slot.source.as_ref().and_then(|s| s.path.clone());
                    *slot = (**new).clone();
                    if kind == crate::drivers::block::BlockJobKind::ActiveCommit && d.persistent {
                        let mut cfg = DomainDef::clone(&d.def);
                        if let Some(c) = cfg.devices.disks.iter_mut().find(|x| {
                            x.target_dev == target
                                && x.source.as_ref().and_then(|s| s.path.clone()) == old_src
                        }) {
                            c.source = new
                                .source
                                .clone()
                                .map(|s| crate::model::devices::DiskSource { index: None, ..s });
                            if let Some(f) = new.driver.as_ref().and_then(|x| x.format) {
                                c.driver.get_or_insert_with(Default::default).format = Some(f);
                            }
                            c.backing_store = None;
                            d.def = Arc::new(cfg);
                            persist = true;
                        }
                    }
                }
                d.live = Some(Arc::new(def));
            }
            let cur = d.current_def();
            if let Some(x) = cur.devices.disks.iter().find(|x| x.target_dev == target) {
                path = x.source.as_ref().and_then(|s| s.path.clone());
            }
            (
                persist,
                vec![Event::BlockJob {
                    uuid,
                    target: target.clone(),
                    path,
                    kind,
                    status,
                }],
            )
        });
        if persist {
            let core = self.clone();
            let dom = dom.clone();
            tokio::spawn(async move {
                if let Err(e) = core.persist(&dom).await {
                    tracing::error!("domain '{}': {e}", dom.name());
                }
            });
        }
    }

    async fn save_record(&self, rec: super::store::DomainRecord) -> Result<()> {
        self.save(rec).await
    }
}

fn set_tune(def: &mut DomainDef, target: &str, tune: Iotune) {
    if let Some(d) = def
        .devices
        .disks
        .iter_mut()
        .find(|d| d.target_dev == target)
    {
        d.iotune = (tune.has_limits() || tune.group_name.is_some()).then_some(tune);
    }
}

/// Where a commit's top and base sit in the disk's chain (libvirt's lookups alone).
fn commit_images(d: &Disk, job: &JobAsk) -> Result<(usize, usize)> {
    let JobAsk::Commit {
        top, base, shallow, ..
    } = job
    else {
        return Ok((0, 0));
    };
    let images = chain(d);
    let ti = match top.as_deref() {
        None => 0,
        Some(t) if t == d.target_dev => 0,
        Some(t) => lookup(&images, d, t, 0)?,
    };
    let bi = match base.as_deref() {
        None if *shallow => ti + 1,
        None => {
            if images.len() <= ti + 1 {
                return Err(Error::InvalidArgument(format!(
                    "could not find base image in chain for '{}'",
                    d.target_dev
                )));
            }
            images.len() - 1
        }
        Some(b) => lookup(&images, d, b, ti + 1)?,
    };
    Ok((ti, bi))
}

/// The job's images as paths of the disk's chain, checked as libvirt checks them.
fn resolve_job(d: &Disk, job: JobAsk, persistent: bool) -> Result<JobStart> {
    let images = chain(d);
    let top_path = images.first().map(|i| i.path.clone()).unwrap_or_default();
    Ok(match job {
        JobAsk::Pull { base } => JobStart::Pull {
            base: match base {
                Some(b) => Some(images[lookup(&images, d, &b, 1)?].path.clone()),
                None => None,
            },
        },
        ref job @ JobAsk::Commit {
            shallow, active, ..
        } => {
            let (ti, bi) = commit_images(d, job)?;
            if images.is_empty() {
                return Err(Error::NotSupported(format!(
                    "disk {} has no source file to be committed",
                    d.target_dev
                )));
            }
            if ti == 0 && !active {
                return Err(Error::InvalidArgument(format!(
                    "commit of '{}' active layer requires active flag",
                    d.target_dev
                )));
            }
            if ti != 0 && active {
                return Err(Error::InvalidArgument(format!(
                    "active commit requested but '{}' is not active",
                    images[ti].path
                )));
            }
            if images.len() <= ti + 1 {
                return Err(Error::InvalidArgument(format!(
                    "top '{}' in chain for '{top_path}' has no backing file",
                    images[ti].path
                )));
            }
            if shallow && bi != ti + 1 {
                return Err(Error::InvalidArgument(format!(
                    "base '{}' is not immediately below '{}' in chain for '{top_path}'",
                    images[bi].path, images[ti].path
                )));
            }
            JobStart::Commit {
                top: (ti != 0).then(|| images[ti].path.clone()),
                base: images[bi].path.clone(),
                active,
            }
        }
        JobAsk::Copy {
            dest,
            format,
            shallow,
            reuse,
            transient_job,
        } => {
            if !dest.starts_with('/') {
                return Err(Error::InvalidArgument(
                    "absolute path must be used as block copy target".into(),
                ));
            }
            if persistent && !transient_job {
                return Err(Error::InvalidState("domain is not transient".into()));
            }
            let exists = std::fs::metadata(&dest).ok();
            match &exists {
                None if reuse => {
                    return Err(Error::Failed(format!(
                        "missing destination file for disk {}: {dest}: No such file or \
                         directory",
                        d.target_dev
                    )));
                }
                Some(m) if m.len() > 0 && !reuse => {
                    return Err(Error::NotSupported(format!(
                        "external destination file for disk {} already exists and is not \
                         a block device: {dest}",
                        d.target_dev
                    )));
                }
                _ => {}
            }
            let shallow = shallow && images.len() > 1;
            let format = match format {
                Some(f) => f,
                None if reuse => {
                    return Err(Error::NotSupported(
                        "reused mirror destination format must be specified".into(),
                    ));
                }
                None => images.first().map_or(DiskFormat::Raw, |i| i.format),
            };
            if shallow && !reuse && format == DiskFormat::Raw {
                return Err(Error::NotSupported(format!(
                    "shallow copy of disk '{}' into a raw file is not possible",
                    d.target_dev
                )));
            }
            JobStart::Copy {
                dest,
                format,
                shallow,
                reuse,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iotune_groups_reset_and_checks() {
        let old = Iotune {
            limits: {
                let mut l = [0; 19];
                l[1] = 10;
                l[2] = 20;
                l[3] = 5;
                l
            },
            group_name: None,
        };
        let c = IotuneChange {
            limits: vec![("total_bytes_sec".into(), 100)],
            group_name: None,
        };
        let n = c.apply(Some(&old)).expect("applies");
        assert_eq!(n.get("total_bytes_sec"), 100);
        assert_eq!(n.get("read_bytes_sec"), 0);
        assert_eq!(n.get("total_iops_sec"), 5);
        let bad = IotuneChange {
            limits: vec![("total_bytes_sec_max".into(), 1)],
            group_name: None,
        };
        assert!(bad.apply(None).is_err());
    }
}
