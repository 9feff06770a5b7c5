//! Checkpoints of one domain, with libvirt 9.0's rules: the metadata tree (parent links, the
//! current checkpoint that new ones hang under), one file per checkpoint under the state dir
//! (`STATE/checkpoints/<uuid>/`, written atomically, read back at start), and the requests
//! the driver carries out on the disks (persistent dirty bitmaps, see
//! [`crate::drivers::checkpoint`]).
//!
//! API for features that create a checkpoint inside another operation (backup-begin's
//! `--checkpointxml`, incremental backups):
//! - [`Core::checkpoint_bitmaps`]: a checkpoint's name to its per-disk bitmap names;
//! - [`Core::checkpoint_prepare`]: a `<domaincheckpoint>` made ready to take (named,
//!   aligned to the running domain's disks, parented, refused as libvirt refuses); turn its
//!   bitmaps ([`CheckpointDef::bitmaps`]) into QMP `transaction` actions with
//!   `drivers::qemu::checkpoint::add_actions`, run them within your transaction, then
//! - [`Core::checkpoint_record`]: store the prepared checkpoint and make it current.
//!
//! Call the last two under the domain's job (the caller's own).

use std::{path::PathBuf, sync::Arc};

use super::{Core, Domain, Error, Result, error::Missing, events::lock, now_unix, store, store_io};
use crate::{
    drivers::checkpoint::{BitmapRequest, DiskBitmap},
    model::{
        CheckpointDef, CheckpointFormat, DomainDef,
        checkpoint::{CheckpointKind, bitmap_capable},
        state::DomainState,
    },
    util::fs::{remove_durable, write_atomic},
};

/// The checkpoints of one domain, in creation order (listings are stable).
#[derive(Debug, Clone, Default)]
pub struct CheckpointList {
    entries: Vec<Arc<CheckpointDef>>,
    current: Option<String>,
}

fn name_of(c: &CheckpointDef) -> &str {
    c.name.as_deref().unwrap_or_default()
}

impl CheckpointList {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<CheckpointDef>> {
        self.entries.iter().find(|c| name_of(c) == name)
    }

    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Build from stored checkpoints; the current one is the newest (libvirt keeps no mark).
    pub fn from_loaded(mut defs: Vec<CheckpointDef>) -> Self {
        defs.sort_by(|a, b| (a.creation_time, &a.name).cmp(&(b.creation_time, &b.name)));
        let current = defs.last().and_then(|d| d.name.clone());
        Self {
            entries: defs.into_iter().map(Arc::new).collect(),
            current,
        }
    }

    fn children(&self, name: &str) -> Vec<&Arc<CheckpointDef>> {
        self.entries
            .iter()
            .filter(|c| c.parent.as_deref() == Some(name))
            .collect()
    }

    fn is_leaf(&self, name: &str) -> bool {
        self.children(name).is_empty()
    }

    /// Every descendant of `name`, parents before children.
    fn descendants(&self, name: &str) -> Vec<&Arc<CheckpointDef>> {
        let mut out = Vec::new();
        let mut todo = vec![name.to_owned()];
        while let Some(n) = todo.pop() {
            for c in self.children(&n) {
                todo.push(name_of(c).to_owned());
                out.push(c);
            }
        }
        out
    }

    /// Parents before children: roots, then each one's descendants.
    fn topological(&self) -> Vec<&Arc<CheckpointDef>> {
        let mut out = Vec::new();
        for r in self
            .entries
            .iter()
            .filter(|c| c.parent.as_deref().is_none_or(|p| self.get(p).is_none()))
        {
            out.push(r);
            out.extend(self.descendants(name_of(r)));
        }
        out
    }
}

/// The filters of `virDomainListAllCheckpoints` / `virDomainCheckpointListAllChildren`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointListOptions {
    /// Roots only (domain list) or all descendants (children list): the same bit.
    pub roots_or_descendants: bool,
    pub topological: bool,
    pub leaves: bool,
    pub no_leaves: bool,
}

/// What `checkpoint-create` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointCreateOptions {
    pub redefine: bool,
    /// With `redefine`: check that the bitmaps are there and usable.
    pub redefine_validate: bool,
    pub quiesce: bool,
}

/// What `checkpoint-delete` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointDeleteOptions {
    pub children: bool,
    pub children_only: bool,
    pub metadata_only: bool,
}

/// One checkpoint's facts for lookups: its name and parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFacts {
    pub name: String,
    pub parent: Option<String>,
}

fn not_found(name: &str) -> Error {
    Error::NotFound(
        Missing::Checkpoint(name.to_owned()),
        format!("no domain checkpoint with matching name '{name}'"),
    )
}

fn file_of(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{}.xml", store::file_key(name)))
}

/// Read a domain's stored checkpoints; unreadable files are set aside, never fatal.
pub(crate) fn load(dir: &std::path::Path) -> Vec<CheckpointDef> {
    let mut out = Vec::new();
    for path in store::xml_files(dir) {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| CheckpointDef::from_stored_xml(&t).map_err(|e| e.to_string()))
            .and_then(|d| match d.name {
                Some(_) => Ok(d),
                None => Err("checkpoint has no name".to_owned()),
            });
        match parsed {
            Ok(d) => out.push(d),
            Err(e) => store::set_aside(&path, &e),
        }
    }
    out
}

/// The stored form: everything, secrets of the embedded domain included (as libvirt).
fn stored_text(def: &CheckpointDef) -> String {
    def.to_xml(CheckpointFormat {
        secure: true,
        ..Default::default()
    })
}

impl Core {
    /// Write (`Some`) or remove (`None`) checkpoint `name`'s file.
    async fn store_checkpoint(
        &self,
        dom: &Domain,
        name: &str,
        def: Option<&CheckpointDef>,
    ) -> Result<()> {
        let Some(dir) = self.store().checkpoint_dir(&dom.uuid) else {
            return Ok(());
        };
        let path = file_of(&dir, name);
        let text = def.map(stored_text);
        store_io(move || match text {
            Some(t) => {
                store::create_dir(&dir)?;
                write_atomic(&path, t.as_bytes(), 0o600)
                    .map_err(|source| store::StoreError::Write { path, source })
            }
            None => {
                remove_durable(&path).map_err(|source| store::StoreError::Remove { path, source })
            }
        })
        .await
    }

    fn checkpoint_def(&self, dom: &Domain, name: &str) -> Result<Arc<CheckpointDef>> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        d.checkpoints
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    /// The bitmap of each disk checkpoint `name` covers (target and bitmap name).
    pub fn checkpoint_bitmaps(&self, dom: &Domain, name: &str) -> Result<Vec<DiskBitmap>> {
        let def = self.checkpoint_def(dom, name)?;
        Ok(def
            .bitmaps()
            .into_iter()
            .map(|(target, bitmap)| DiskBitmap { target, bitmap })
            .collect())
    }

    /// A new checkpoint made ready to take on the running domain: named (the creation time
    /// by default), its disks aligned to the domain's, its parent the current checkpoint,
    /// the domain's definition embedded. Refused as libvirt refuses: an inactive domain, a
    /// redefinition-only element, a bitmap name other than the checkpoint's, a disk that
    /// is not qcow2, a name taken.
    pub fn checkpoint_prepare(
        &self,
        dom: &Domain,
        mut def: CheckpointDef,
    ) -> Result<CheckpointDef> {
        let d = lock(&dom.data);
        if !d.status.is_active() {
            return Err(Error::NotSupported(
                "cannot create checkpoint for inactive domain".into(),
            ));
        }
        for (given, element) in [
            (def.parent.is_some(), "parent"),
            (def.creation_time.is_some(), "creationTime"),
            (def.domain.is_some(), "domain"),
        ] {
            if given {
                return Err(Error::InvalidArgument(format!(
                    "element /domaincheckpoint/{element} is only accepted with option 'redefine'"
                )));
            }
        }
        let now = now_unix();
        let name = def.name.clone().unwrap_or_else(|| now.to_string());
        def.name = Some(name.clone());
        def.creation_time = Some(now);
        let live: &DomainDef = d.current_def();
        def.align_disks(live).map_err(Error::ConfigUnsupported)?;
        // libvirt's test driver checks neither bitmap names nor image formats
        let metadata_only = dom.driver.name() == "test";
        for (cd, disk) in def.disks.iter().zip(&live.devices.disks) {
            if metadata_only || cd.checkpoint != Some(CheckpointKind::Bitmap) {
                continue;
            }
            if cd.bitmap.as_deref() != Some(&name) {
                return Err(Error::ConfigUnsupported(format!(
                    "bitmap for disk '{}' must match checkpoint name '{name}'",
                    cd.name
                )));
            }
            bitmap_capable(disk).map_err(Error::ConfigUnsupported)?;
        }
        if d.checkpoints.get(&name).is_some() {
            return Err(Error::AlreadyExists(format!(
                "domain moment {name} already exists"
            )));
        }
        def.parent = d.checkpoints.current().map(str::to_owned);
        def.domain = Some(live.clone());
        Ok(def)
    }

    /// Store a checkpoint taken (or redefined) and, with `make_current`, make it the one new
    /// checkpoints hang under. Replaces one of the same name (a redefinition).
    pub async fn checkpoint_record(
        &self,
        dom: &Domain,
        def: CheckpointDef,
        make_current: bool,
    ) -> Result<()> {
        let name = name_of(&def).to_owned();
        self.store_checkpoint(dom, &name, Some(&def)).await?;
        let mut d = lock(&dom.data);
        let list = &mut d.checkpoints;
        match list.entries.iter_mut().find(|c| name_of(c) == name) {
            Some(slot) => *slot = Arc::new(def),
            None => list.entries.push(Arc::new(def)),
        }
        if make_current {
            list.current = Some(name);
        }
        Ok(())
    }

    /// Take a checkpoint (or, with `redefine`, import one's metadata); its name.
    pub async fn checkpoint_create(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        opts: CheckpointCreateOptions,
    ) -> Result<String> {
        let test = dom.driver.name() == "test";
        if test && !lock(&dom.data).snapshots.is_empty() {
            // libvirt's test driver only; QEMU allows both since it has bitmaps
            return Err(Error::NotSupported(
                "cannot create checkpoint while snapshot exists".into(),
            ));
        }
        if test && !lock(&dom.data).status.is_active() {
            return Err(Error::NotSupported(
                "cannot create checkpoint for inactive domain".into(),
            ));
        }
        let def = CheckpointDef::from_xml(xml)?;
        let _job = dom.begin_job("checkpoint").await?;
        if opts.redefine {
            return self.checkpoint_redefine(dom, def, opts).await;
        }
        let def = self.checkpoint_prepare(dom, def)?;
        let bitmaps: Vec<DiskBitmap> = def
            .bitmaps()
            .into_iter()
            .map(|(target, bitmap)| DiskBitmap { target, bitmap })
            .collect();
        let live = lock(&dom.data).current_def().clone();
        dom.driver
            .checkpoint_bitmaps(&self.ctx(dom), &live, BitmapRequest::Add(bitmaps))
            .await?;
        let name = name_of(&def).to_owned();
        self.checkpoint_record(dom, def, true).await?;
        Ok(name)
    }

    async fn checkpoint_redefine(
        &self,
        dom: &Arc<Domain>,
        mut def: CheckpointDef,
        opts: CheckpointCreateOptions,
    ) -> Result<String> {
        let name = def.name.clone().ok_or_else(|| {
            Error::InvalidArgument("a redefined checkpoint must have a name".into())
        })?;
        if def.creation_time.is_none() {
            return Err(Error::Failed(
                "missing creationTime from existing checkpoint".into(),
            ));
        }
        let make_current = {
            let d = lock(&dom.data);
            let list = &d.checkpoints;
            if let Some(p) = &def.parent {
                if *p == name {
                    return Err(Error::InvalidArgument(format!(
                        "cannot set moment {name} as its own parent"
                    )));
                }
                if list.get(p).is_none() {
                    return Err(Error::InvalidArgument(format!(
                        "parent {p} for moment {name} not found"
                    )));
                }
                if list.descendants(&name).iter().any(|c| name_of(c) == p) {
                    return Err(Error::InvalidArgument(format!(
                        "parent {p} would create cycle to {name}"
                    )));
                }
            }
            match &def.domain {
                Some(embedded) => {
                    if embedded.uuid != dom.uuid {
                        return Err(Error::InvalidArgument(format!(
                            "definition for checkpoint {name} must use uuid {}",
                            dom.uuid
                        )));
                    }
                    let embedded = embedded.clone();
                    def.align_disks(&embedded)
                        .map_err(Error::ConfigUnsupported)?;
                }
                None => def.assign_bitmap_names(),
            }
            let under_current = def
                .parent
                .as_deref()
                .is_some_and(|p| list.current() == Some(p));
            under_current || list.current().is_none()
        };
        if opts.redefine_validate {
            let (active, live) = {
                let d = lock(&dom.data);
                (d.status.is_active(), d.current_def().clone())
            };
            if !active {
                return Err(Error::WrongState(super::error::StateConflict {
                    domain: dom.name(),
                    op: super::ops::Operation::CheckpointCreate,
                    state: DomainState::ShutOff,
                    needs_active: true,
                }));
            }
            let bitmaps: Vec<DiskBitmap> = def
                .bitmaps()
                .into_iter()
                .filter(|(t, _)| live.devices.disks.iter().any(|d| d.target_dev == *t))
                .map(|(target, _)| DiskBitmap {
                    target,
                    bitmap: name.clone(),
                })
                .collect();
            let sizes = dom
                .driver
                .checkpoint_bitmaps(
                    &self.ctx(dom),
                    &live,
                    BitmapRequest::Measure(bitmaps.clone()),
                )
                .await?;
            if let Some((b, _)) = bitmaps.iter().zip(&sizes).find(|(_, s)| s.is_none()) {
                return Err(Error::InvalidState(format!(
                    "missing or broken bitmap '{name}' for disk '{}'",
                    b.target
                )));
            }
        }
        self.checkpoint_record(dom, def, make_current).await?;
        Ok(name)
    }

    /// Checkpoint names matching the filters: all of the domain's, or (`from`) the children
    /// or descendants of one.
    pub fn checkpoint_list(
        &self,
        dom: &Domain,
        from: Option<&str>,
        opts: CheckpointListOptions,
    ) -> Result<Vec<String>> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        let t = &d.checkpoints;
        let picked: Vec<&Arc<CheckpointDef>> = match from {
            None if opts.topological => t.topological(),
            None => t.entries.iter().collect(),
            Some(n) => {
                if t.get(n).is_none() {
                    return Err(not_found(n));
                }
                let mut v = if opts.roots_or_descendants {
                    t.descendants(n)
                } else {
                    t.children(n)
                };
                if !opts.topological {
                    let order: Vec<&str> = t.entries.iter().map(|c| name_of(c)).collect();
                    v.sort_by_key(|c| order.iter().position(|n| *n == name_of(c)));
                }
                v
            }
        };
        let roots_only = from.is_none() && opts.roots_or_descendants;
        let filter_leaves = opts.leaves != opts.no_leaves;
        Ok(picked
            .into_iter()
            .filter(|c| !roots_only || c.parent.as_deref().is_none_or(|p| t.get(p).is_none()))
            .filter(|c| !filter_leaves || t.is_leaf(name_of(c)) == opts.leaves)
            .map(|c| name_of(c).to_owned())
            .collect())
    }

    pub fn checkpoint_facts(&self, dom: &Domain, name: &str) -> Result<CheckpointFacts> {
        let def = self.checkpoint_def(dom, name)?;
        Ok(CheckpointFacts {
            name: name_of(&def).to_owned(),
            parent: def.parent.clone(),
        })
    }

    /// A checkpoint's XML; with `size`, each bitmap's dirty bytes as the driver measures
    /// them now (the domain must run).
    pub async fn checkpoint_xml(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        f: CheckpointFormat,
    ) -> Result<String> {
        let def = self.checkpoint_def(dom, name)?;
        if !f.size {
            return Ok(def.to_xml(f));
        }
        let _job = dom.begin_job("checkpoint size").await?;
        let (active, state, live) = {
            let d = lock(&dom.data);
            (
                d.status.is_active(),
                d.status.state,
                d.current_def().clone(),
            )
        };
        if !active {
            return Err(Error::WrongState(super::error::StateConflict {
                domain: dom.name(),
                op: super::ops::Operation::CheckpointGetXml,
                state,
                needs_active: true,
            }));
        }
        let bitmaps: Vec<DiskBitmap> = def
            .bitmaps()
            .into_iter()
            .filter(|(t, _)| live.devices.disks.iter().any(|d| d.target_dev == *t))
            .map(|(target, bitmap)| DiskBitmap { target, bitmap })
            .collect();
        let sizes = dom
            .driver
            .checkpoint_bitmaps(
                &self.ctx(dom),
                &live,
                BitmapRequest::Measure(bitmaps.clone()),
            )
            .await?;
        let mut out = (*def).clone();
        for (b, s) in bitmaps.iter().zip(sizes) {
            if let Some(disk) = out.disks.iter_mut().find(|d| d.name == b.target) {
                disk.size = s;
            }
        }
        Ok(out.to_xml(f))
    }

    /// Delete a checkpoint (its bitmaps too, unless `metadata_only`), with or without its
    /// descendants, as libvirt: children of a checkpoint deleted alone move to its parent.
    pub async fn checkpoint_delete(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        opts: CheckpointDeleteOptions,
    ) -> Result<()> {
        let _job = dom.begin_job("delete checkpoint").await?;
        let test = dom.driver.name() == "test";
        let (active, live) = {
            let d = lock(&dom.data);
            (d.status.is_active(), d.current_def().clone())
        };
        if !opts.metadata_only && !active && !test {
            return Err(Error::NotSupported(
                "cannot delete checkpoint for inactive domain".into(),
            ));
        }
        let def = self.checkpoint_def(dom, name)?;
        let (doomed, reparent): (Vec<Arc<CheckpointDef>>, Vec<Arc<CheckpointDef>>) = {
            let d = lock(&dom.data);
            let t = &d.checkpoints;
            if opts.children || opts.children_only {
                let mut v: Vec<_> = t.descendants(name).into_iter().cloned().collect();
                if !opts.children_only {
                    v.push(def.clone());
                }
                (v, Vec::new())
            } else {
                (
                    vec![def.clone()],
                    t.children(name).into_iter().cloned().collect(),
                )
            }
        };
        // bitmaps first, all in one transaction: nothing of the metadata changes if QEMU
        // refuses
        if !opts.metadata_only && !test {
            let bitmaps: Vec<DiskBitmap> = doomed
                .iter()
                .flat_map(|c| c.bitmaps())
                .filter(|(t, _)| live.devices.disks.iter().any(|d| d.target_dev == *t))
                .map(|(target, bitmap)| DiskBitmap { target, bitmap })
                .collect();
            if !bitmaps.is_empty() {
                dom.driver
                    .checkpoint_bitmaps(&self.ctx(dom), &live, BitmapRequest::Remove(bitmaps))
                    .await?;
            }
        }
        for child in reparent {
            let mut c = (*child).clone();
            c.parent = def.parent.clone();
            self.checkpoint_record(dom, c, false).await?;
        }
        let current = lock(&dom.data).checkpoints.current().map(str::to_owned);
        for c in &doomed {
            self.store_checkpoint(dom, name_of(c), None).await?;
        }
        let mut d = lock(&dom.data);
        let list = &mut d.checkpoints;
        list.entries
            .retain(|c| !doomed.iter().any(|x| name_of(x) == name_of(c)));
        if let Some(cur) = current
            && doomed.iter().any(|x| name_of(x) == cur)
        {
            // libvirt: the deleted subtree's root (children-only) or its parent
            list.current = if opts.children_only {
                Some(name.to_owned())
            } else {
                def.parent.clone()
            };
        }
        Ok(())
    }

    /// Forget every checkpoint's metadata (undefine with `checkpoints-metadata`).
    pub(crate) async fn checkpoints_forget(&self, dom: &Domain) -> Result<()> {
        let names: Vec<String> = {
            let d = lock(&dom.data);
            d.checkpoints
                .entries
                .iter()
                .map(|c| name_of(c).to_owned())
                .collect()
        };
        for n in &names {
            self.store_checkpoint(dom, n, None).await?;
        }
        lock(&dom.data).checkpoints = CheckpointList::default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(name: &str, parent: Option<&str>, t: i64) -> CheckpointDef {
        CheckpointDef {
            name: Some(name.into()),
            parent: parent.map(str::to_owned),
            creation_time: Some(t),
            ..Default::default()
        }
    }

    #[test]
    fn tree_orders_and_current() {
        let l = CheckpointList::from_loaded(vec![
            cp("c", Some("a"), 3),
            cp("a", None, 1),
            cp("b", Some("a"), 2),
            cp("d", Some("c"), 4),
        ]);
        assert_eq!(l.current(), Some("d"));
        let names = |v: Vec<&Arc<CheckpointDef>>| -> Vec<String> {
            v.into_iter().map(|c| name_of(c).to_owned()).collect()
        };
        assert_eq!(names(l.children("a")), ["b", "c"]);
        assert!(l.is_leaf("b") && !l.is_leaf("c"));
        let topo = names(l.topological());
        assert_eq!(topo[0], "a");
        let pos = |n: &str| topo.iter().position(|x| x == n).unwrap();
        assert!(pos("c") < pos("d"));
    }
}
