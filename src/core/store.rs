//! Persistent state: one file per persistent domain and one per snapshot under the state dir.
//!
//! ```text
//! STATE/domains/<uuid>.xml                 <virtbus-domain> wrapping the libvirt domain XML
//! STATE/snapshots/<uuid>/<escaped name>.xml  libvirt domainsnapshot XML
//! ```
//! Every write is atomic (see [`crate::util::fs::write_atomic`]). A file that does not parse is
//! logged and renamed to `*.corrupt`; the others still load.
//!
//! A store can also keep nothing ([`Store::memory`]): for a core whose domains live only as
//! long as the daemon (the libvirt facade's `test:///default` connection).

use std::{
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use uuid::Uuid;

use super::domain::ManagedSave;
use crate::{
    model::{DomainDef, FormatOptions, MAX_XML_BYTES, SnapshotDef},
    util::{
        escape::escape,
        fs::{leftover_temps, remove_durable, write_atomic},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    /// Refused before anything is written: a file over the limit could not be trusted to
    /// load again.
    #[error(
        "the stored form of {what} would be {size} bytes, more than the limit of {limit} bytes"
    )]
    TooLarge {
        what: String,
        size: usize,
        limit: usize,
    },
}

/// Refuses a file whose text is over the write limit ([`MAX_XML_BYTES`]); reads allow more
/// ([`crate::model::MAX_STORED_XML_BYTES`]), so whatever passes here loads again.
fn check_size(what: impl FnOnce() -> String, text: &str) -> Result<(), StoreError> {
    if text.len() > MAX_XML_BYTES {
        return Err(StoreError::TooLarge {
            what: what(),
            size: text.len(),
            limit: MAX_XML_BYTES,
        });
    }
    Ok(())
}

/// What a domain's file holds beside its definition.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRecord {
    pub def: DomainDef,
    pub autostart: bool,
    pub current_snapshot: Option<String>,
    pub managed_save: Option<ManagedSave>,
}

/// A domain read back at start, with its snapshots.
#[derive(Debug)]
pub struct LoadedDomain {
    pub record: DomainRecord,
    pub snapshots: Vec<SnapshotDef>,
}

/// Where state is kept: files under a directory, or nowhere.
#[derive(Debug, Clone)]
pub struct Store {
    disk: Option<Dirs>,
}

#[derive(Debug, Clone)]
struct Dirs {
    domains: PathBuf,
    snapshots: PathBuf,
}

const FILE_MODE: u32 = 0o600;

impl Store {
    /// Open the store under `state_dir`, creating its directories.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let dirs = Dirs {
            domains: state_dir.join("domains"),
            snapshots: state_dir.join("snapshots"),
        };
        for d in [&dirs.domains, &dirs.snapshots] {
            create_dir(d)?;
        }
        Ok(Self { disk: Some(dirs) })
    }

    /// A store that keeps nothing: every write succeeds and loading finds nothing.
    pub fn memory() -> Self {
        Self { disk: None }
    }

    /// Whether what is saved outlives the daemon.
    pub fn is_persistent(&self) -> bool {
        self.disk.is_some()
    }

    pub fn save_domain(&self, rec: &DomainRecord) -> Result<(), StoreError> {
        let Some(dirs) = &self.disk else {
            return Ok(());
        };
        let path = dirs.domain_path(&rec.def.uuid);
        let text = format_record(rec);
        check_size(|| format!("domain '{}'", rec.def.name), &text)?;
        write_atomic(&path, text.as_bytes(), FILE_MODE).map_err(|source| StoreError::Write {
            path: path.clone(),
            source,
        })
    }

    /// Remove a domain's file and all its snapshot files.
    pub fn remove_domain(&self, uuid: &Uuid) -> Result<(), StoreError> {
        let Some(dirs) = &self.disk else {
            return Ok(());
        };
        if let Some(cdir) = self.checkpoint_dir(uuid)
            && cdir.exists()
        {
            fs::remove_dir_all(&cdir).map_err(|source| StoreError::Remove {
                path: cdir.clone(),
                source,
            })?;
        }
        let dir = dirs.snapshot_dir(uuid);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|source| StoreError::Remove {
                path: dir.clone(),
                source,
            })?;
        }
        let path = dirs.domain_path(uuid);
        remove_durable(&path).map_err(|source| StoreError::Remove { path, source })
    }

    /// Where a domain's checkpoint files live (`STATE/checkpoints/<uuid>/<escaped name>.xml`);
    /// `None` for a store that keeps nothing. See [`super::checkpoints`].
    pub fn checkpoint_dir(&self, uuid: &Uuid) -> Option<PathBuf> {
        let dirs = self.disk.as_ref()?;
        let root = dirs.domains.parent()?;
        Some(root.join("checkpoints").join(uuid.to_string()))
    }

    pub fn save_snapshot(&self, domain: &Uuid, def: &SnapshotDef) -> Result<(), StoreError> {
        let Some(dirs) = &self.disk else {
            return Ok(());
        };
        let text = snapshot_text(def);
        check_size(|| snapshot_what(def), &text)?;
        let dir = dirs.snapshot_dir(domain);
        create_dir(&dir)?;
        let path = dirs.snapshot_path(domain, def.name.as_deref().unwrap_or_default());
        write_atomic(&path, text.as_bytes(), FILE_MODE).map_err(|source| StoreError::Write {
            path: path.clone(),
            source,
        })
    }

    pub fn remove_snapshot(&self, domain: &Uuid, name: &str) -> Result<(), StoreError> {
        let Some(dirs) = &self.disk else {
            return Ok(());
        };
        let path = dirs.snapshot_path(domain, name);
        remove_durable(&path).map_err(|source| StoreError::Remove { path, source })
    }

    /// Read every domain and its snapshots. Never fails as a whole: unreadable or corrupt
    /// files are logged and set aside.
    pub fn load(&self) -> Vec<LoadedDomain> {
        let Some(dirs) = &self.disk else {
            return Vec::new();
        };
        sweep_temps(&dirs.domains, |t| parse_record(t).map(|_| ()));
        let files = xml_files(&dirs.domains);
        // Reading and parsing a thousand files is most of a start: spread it over the CPUs,
        // so that the bus name is owned sooner.
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(files.len().div_ceil(64))
            .max(1);
        let chunk = files.len().div_ceil(threads).max(1);
        let load_some = |paths: &[PathBuf]| -> Vec<LoadedDomain> {
            let mut out = Vec::with_capacity(paths.len());
            for path in paths {
                match fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| parse_record(&t))
                {
                    Ok(record) => {
                        let snapshots = dirs.load_snapshots(&record.def.uuid);
                        out.push(LoadedDomain { record, snapshots });
                    }
                    Err(e) => set_aside(path, &e),
                }
            }
            out
        };
        if threads == 1 {
            return load_some(&files);
        }
        std::thread::scope(|scope| {
            let workers: Vec<_> = files
                .chunks(chunk)
                .map(|part| scope.spawn(move || load_some(part)))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        })
    }
}

impl Dirs {
    fn domain_path(&self, uuid: &Uuid) -> PathBuf {
        self.domains.join(format!("{uuid}.xml"))
    }

    fn snapshot_dir(&self, uuid: &Uuid) -> PathBuf {
        self.snapshots.join(uuid.to_string())
    }

    fn snapshot_path(&self, uuid: &Uuid, name: &str) -> PathBuf {
        self.snapshot_dir(uuid)
            .join(format!("{}.xml", file_key(name)))
    }

    fn load_snapshots(&self, uuid: &Uuid) -> Vec<SnapshotDef> {
        let mut out = Vec::new();
        let dir = self.snapshot_dir(uuid);
        sweep_temps(&dir, |t| {
            SnapshotDef::from_stored_xml(t)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        for path in xml_files(&dir) {
            let parsed = fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| SnapshotDef::from_stored_xml(&t).map_err(|e| e.to_string()))
                .and_then(|d| match d.name {
                    Some(_) => Ok(d),
                    None => Err("snapshot has no name".to_owned()),
                });
            match parsed {
                Ok(def) => out.push(def),
                Err(e) => set_aside(&path, &e),
            }
        }
        out.sort_by(|a, b| {
            (a.creation_time, a.name.as_deref()).cmp(&(b.creation_time, b.name.as_deref()))
        });
        out
    }
}

/// A snapshot's file content.
fn snapshot_text(def: &SnapshotDef) -> String {
    def.to_xml(&FormatOptions {
        id: None,
        secure: true,
    })
}

fn snapshot_what(def: &SnapshotDef) -> String {
    format!("snapshot '{}'", def.name.as_deref().unwrap_or_default())
}

/// Refuses, before anything is done, a snapshot whose file would be over the write limit,
/// keeping `reserve` bytes for what the driver adds when it takes the snapshot.
pub fn check_snapshot_size(def: &SnapshotDef, reserve: usize) -> Result<(), StoreError> {
    let text = snapshot_text(def);
    if text.len() + reserve > MAX_XML_BYTES {
        return Err(StoreError::TooLarge {
            what: snapshot_what(def),
            size: text.len(),
            limit: MAX_XML_BYTES - reserve,
        });
    }
    Ok(())
}

pub(crate) fn create_dir(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StoreError::CreateDir {
            path: path.to_owned(),
            source,
        })
}

pub(crate) fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "xml")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

/// Removes the temporary files an interrupted write left in `dir`. One is only garbage when
/// the file it was to replace is intact (`check` accepts it) or absent (the write was never
/// acknowledged); beside a damaged file it may be the last good copy, so it is kept for a
/// human to look at.
fn sweep_temps(dir: &Path, check: impl Fn(&str) -> Result<(), String>) {
    for (tmp, real) in leftover_temps(dir) {
        let verdict = match fs::read_to_string(&real) {
            Ok(text) => check(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut aside = real.as_os_str().to_owned();
                aside.push(".corrupt");
                match Path::new(&aside).exists() {
                    true => Err("it was set aside as damaged".to_owned()),
                    false => Ok(()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match verdict {
            Ok(()) => match remove_durable(&tmp) {
                Ok(()) => tracing::info!("removed {} left by an interrupted write", tmp.display()),
                Err(e) => tracing::warn!("cannot remove {}: {e}", tmp.display()),
            },
            Err(why) => tracing::warn!(
                "kept {} left by an interrupted write: {} is not intact ({why})",
                tmp.display(),
                real.display()
            ),
        }
    }
}

pub(crate) fn set_aside(path: &Path, why: &str) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    match fs::rename(path, &aside) {
        Ok(()) => tracing::error!(
            "cannot load {}: {why}; moved it to {}",
            path.display(),
            Path::new(&aside).display()
        ),
        Err(e) => tracing::error!(
            "cannot load {}: {why}; and cannot move it aside: {e}",
            path.display()
        ),
    }
}

/// The file name (without extension) for a snapshot name: its escaped form, shortened with a
/// stable hash when too long for a file name.
pub(crate) fn file_key(name: &str) -> String {
    let e = escape(name);
    if e.len() <= 200 {
        return e;
    }
    let mut cut = 180;
    while !e.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{:016x}", &e[..cut], fnv1a(name.as_bytes()))
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn format_record(rec: &DomainRecord) -> String {
    let mut s = String::with_capacity(1024);
    let managed = match &rec.managed_save {
        None => "",
        Some(ManagedSave { paused: false, .. }) => " managed-save='running'",
        Some(ManagedSave { paused: true, .. }) => " managed-save='paused'",
    };
    let _ = writeln!(
        s,
        "<virtbus-domain version='1' autostart='{}'{managed}>",
        if rec.autostart { "yes" } else { "no" }
    );
    if let Some(cur) = &rec.current_snapshot {
        let _ = writeln!(
            s,
            "<current-snapshot>{}</current-snapshot>",
            xml_escape(cur)
        );
    }
    s.push_str(&rec.def.to_xml(&FormatOptions {
        id: None,
        secure: true,
    }));
    if let Some(def) = rec.managed_save.as_ref().and_then(|m| m.def.as_ref()) {
        // the definition given with the managed save image, restored instead
        s.push_str("<managed-save-domain>\n");
        s.push_str(&def.to_xml(&FormatOptions {
            id: None,
            secure: true,
        }));
        s.push_str("</managed-save-domain>\n");
    }
    s.push_str("</virtbus-domain>\n");
    s
}

use crate::util::xml::attr as xml_escape;

fn parse_record(text: &str) -> Result<DomainRecord, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if !root.has_tag_name("virtbus-domain") {
        return Err(format!(
            "expected <virtbus-domain>, found <{}>",
            root.tag_name().name()
        ));
    }
    let autostart = match root.attribute("autostart") {
        Some("yes") => true,
        Some("no") | None => false,
        Some(v) => return Err(format!("invalid autostart '{v}'")),
    };
    let managed_save = match root.attribute("managed-save") {
        None => None,
        Some("running") => Some(ManagedSave {
            paused: false,
            def: None,
        }),
        Some("paused") => Some(ManagedSave {
            paused: true,
            def: None,
        }),
        Some(v) => return Err(format!("invalid managed-save '{v}'")),
    };
    let mut current_snapshot = None;
    let mut def = None;
    let mut saved_def = None;
    for c in root.children().filter(|n| n.is_element()) {
        match c.tag_name().name() {
            "current-snapshot" => current_snapshot = Some(c.text().unwrap_or("").to_owned()),
            "managed-save-domain" => {
                let d = c
                    .children()
                    .find(|n| n.has_tag_name("domain"))
                    .ok_or("no <domain> in <managed-save-domain>")?;
                saved_def =
                    Some(DomainDef::from_stored_xml(&text[d.range()]).map_err(|e| e.to_string())?)
            }
            "domain" => {
                def = Some(DomainDef::from_stored_xml(&text[c.range()]).map_err(|e| e.to_string())?)
            }
            other => return Err(format!("unknown element <{other}>")),
        }
    }
    let def = def.ok_or("no <domain> element")?;
    let mut managed_save = managed_save;
    match (&mut managed_save, saved_def) {
        (Some(m), Some(d)) => m.def = Some(std::sync::Arc::new(d)),
        (None, Some(_)) => return Err("<managed-save-domain> without a managed save".into()),
        _ => {}
    }
    Ok(DomainRecord {
        def,
        autostart,
        current_snapshot,
        managed_save,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain record: not autostarted, no current snapshot, no managed save.
    fn record(def: DomainDef) -> DomainRecord {
        DomainRecord {
            def,
            autostart: false,
            current_snapshot: None,
            managed_save: None,
        }
    }

    fn def(name: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='test'><name>{name}</name><memory>1024</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os></domain>"
        ))
        .expect("valid domain")
    }

    #[test]
    fn a_managed_save_definition_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut saved = def("a");
        saved.title = Some("given with the image".into());
        let mut rec = record(def("a"));
        saved.uuid = rec.def.uuid;
        rec.managed_save = Some(ManagedSave {
            paused: false,
            def: Some(std::sync::Arc::new(saved)),
        });
        store.save_domain(&rec).expect("save");
        let loaded = store.load();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].record, rec);
        // a definition without an image is a broken record
        let text = format_record(&rec).replace(" managed-save='running'", "");
        assert!(parse_record(&text).is_err());
    }

    #[test]
    fn domain_and_snapshots_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rec = DomainRecord {
            def: def("a&amp;b"),
            autostart: true,
            current_snapshot: Some("s<1>".into()),
            managed_save: Some(ManagedSave {
                paused: true,
                def: None,
            }),
        };
        store.save_domain(&rec).expect("save");
        for (name, t) in [("s<1>", 5), ("zero", 1)] {
            let snap = SnapshotDef {
                name: Some(name.into()),
                creation_time: Some(t),
                ..Default::default()
            };
            store.save_snapshot(&rec.def.uuid, &snap).expect("snap");
        }
        let loaded = store.load();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].record, rec);
        let names: Vec<_> = loaded[0]
            .snapshots
            .iter()
            .map(|s| s.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["zero", "s<1>"], "sorted by creation time");
        store.remove_snapshot(&rec.def.uuid, "zero").expect("rm");
        assert_eq!(store.load()[0].snapshots.len(), 1);
        store.remove_domain(&rec.def.uuid).expect("rm dom");
        assert!(store.load().is_empty());
    }

    #[test]
    fn corrupt_files_are_set_aside_and_the_rest_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.save_domain(&record(def("good"))).expect("save");
        let bad = dir.path().join("domains/bad.xml");
        fs::write(&bad, "<virtbus-domain><domain").expect("write");
        let loaded = store.load();
        assert_eq!(loaded.len(), 1);
        assert!(!bad.exists());
        assert!(dir.path().join("domains/bad.xml.corrupt").exists());
    }

    #[test]
    fn memory_store_keeps_nothing() {
        let store = Store::memory();
        assert!(!store.is_persistent());
        let rec = DomainRecord {
            def: def("m"),
            autostart: true,
            current_snapshot: None,
            managed_save: None,
        };
        store.save_domain(&rec).expect("save");
        let snap = SnapshotDef {
            name: Some("s".into()),
            ..Default::default()
        };
        store.save_snapshot(&rec.def.uuid, &snap).expect("snap");
        assert!(store.load().is_empty());
        store.remove_snapshot(&rec.def.uuid, "s").expect("rm snap");
        store.remove_domain(&rec.def.uuid).expect("rm");
    }

    #[test]
    fn long_names_get_short_stable_file_names() {
        let long = "x".repeat(255);
        let k = file_key(&long);
        assert!(k.len() < 255);
        assert_eq!(k, file_key(&long));
        assert_ne!(k, file_key(&"x".repeat(254)));
        let wide = "€".repeat(85);
        assert!(file_key(&wide).len() < 255);
    }

    #[test]
    fn leftover_temp_files_are_swept_when_the_real_file_is_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rec = record(def("t"));
        store.save_domain(&rec).expect("save");
        let snap = SnapshotDef {
            name: Some("s".into()),
            ..Default::default()
        };
        store.save_snapshot(&rec.def.uuid, &snap).expect("snap");
        let uuid = rec.def.uuid;
        let domains = dir.path().join("domains");
        let snaps = dir.path().join(format!("snapshots/{uuid}"));
        let planted = [
            domains.join(format!(".{uuid}.xml.tmp")),
            domains.join(".gone.xml.tmp"),
            snaps.join(".s.xml.tmp"),
        ];
        for p in &planted {
            fs::write(p, "<virtbus-domain><dom").expect("plant");
        }
        // Beside a damaged file, the temporary file may be the last good copy: kept.
        fs::write(domains.join("bad.xml"), "<broken").expect("bad");
        fs::write(domains.join(".bad.xml.tmp"), "maybe good").expect("bad tmp");
        let loaded = store.load();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].snapshots.len(), 1);
        for p in &planted {
            assert!(!p.exists(), "{} removed", p.display());
        }
        assert!(domains.join(".bad.xml.tmp").exists());
        store.load();
        assert!(
            domains.join(".bad.xml.tmp").exists(),
            "still, once it is set aside"
        );
    }

    #[test]
    fn over_the_write_limit_nothing_is_written_and_earlier_big_files_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut big = def("big");
        big.description = Some("x".repeat(MAX_XML_BYTES));
        let rec = record(big);
        match store.save_domain(&rec) {
            Err(StoreError::TooLarge { size, limit, .. }) => {
                assert!(size > limit);
                assert_eq!(limit, MAX_XML_BYTES);
            }
            other => panic!("{other:?}"),
        }
        assert!(xml_files(&dir.path().join("domains")).is_empty());
        // A file an earlier version wrote over the limit still loads.
        let path = dir.path().join(format!("domains/{}.xml", rec.def.uuid));
        fs::write(&path, format_record(&rec)).expect("plant");
        let loaded = store.load();
        assert_eq!(loaded.len(), 1);
        let snap = SnapshotDef {
            name: Some("s".into()),
            domain: Some(rec.def.clone()),
            ..Default::default()
        };
        assert!(check_snapshot_size(&snap, 0).is_err());
        assert!(store.save_snapshot(&rec.def.uuid, &snap).is_err());
    }
}
