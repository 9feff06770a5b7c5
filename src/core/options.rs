//! Typed options of each operation. Front ends build them from their own encodings (an
//! `a{sv}` dictionary, libvirt's flag words); the rules that relate options live here once.

use super::error::{Error, Result};

/// How a guest is asked to shut down or reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PowerMode {
    /// The driver's choice (ACPI for QEMU).
    #[default]
    Default,
    Acpi,
    Agent,
}

impl PowerMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(Self::Default),
            "acpi" => Some(Self::Acpi),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Leave the guest paused once started.
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DestroyOptions {
    /// Ask the process to exit but never kill it.
    pub graceful: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct UndefineOptions {
    /// Also remove snapshot metadata; without it a domain with snapshots cannot be undefined.
    pub snapshots_metadata: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct XmlOptions {
    /// The persistent definition even while the domain runs.
    pub inactive: bool,
    /// Include secrets such as graphics passwords.
    pub secure: bool,
}

/// Which domains a listing returns; each pair of opposites filters only when exactly one of
/// the two is set, as libvirt's list flags do.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub active: bool,
    pub inactive: bool,
    pub persistent: bool,
    pub transient: bool,
    pub driver: Option<String>,
}

impl ListFilter {
    pub fn matches(&self, active: bool, persistent: bool, driver: &str) -> bool {
        (self.active == self.inactive || self.active == active)
            && (self.persistent == self.transient || self.persistent == persistent)
            && self.driver.as_deref().is_none_or(|d| d == driver)
    }
}

/// libvirt's snapshot creation flags, by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotCreateOptions {
    pub disk_only: bool,
    pub quiesce: bool,
    pub halt: bool,
    pub atomic: bool,
    pub no_metadata: bool,
    pub redefine: bool,
    pub current: bool,
    pub live: bool,
    pub reuse_external: bool,
}

impl SnapshotCreateOptions {
    /// libvirt's rules for combinations that make no sense.
    pub fn validate(&self) -> Result<()> {
        let conflict = |a: &str, b: &str| {
            Err(Error::InvalidArgument(format!(
                "options '{a}' and '{b}' are mutually exclusive"
            )))
        };
        if self.current && !self.redefine {
            return Err(Error::InvalidArgument(
                "option 'current' requires option 'redefine'".into(),
            ));
        }
        if self.redefine && self.no_metadata {
            return conflict("redefine", "no-metadata");
        }
        if self.redefine && self.halt {
            return conflict("redefine", "halt");
        }
        if self.redefine && self.live {
            return conflict("redefine", "live");
        }
        if self.quiesce && !self.disk_only {
            return Err(Error::InvalidArgument(
                "option 'quiesce' requires option 'disk-only': a snapshot with memory is \
                 consistent without freezing the guest's filesystems"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RevertOptions {
    pub running: bool,
    pub paused: bool,
    pub force: bool,
}

impl RevertOptions {
    pub fn validate(&self) -> Result<()> {
        if self.running && self.paused {
            return Err(Error::InvalidArgument(
                "options 'running' and 'paused' are mutually exclusive".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotDeleteOptions {
    pub children: bool,
    pub children_only: bool,
    pub metadata_only: bool,
}

impl SnapshotDeleteOptions {
    pub fn validate(&self) -> Result<()> {
        if self.children && self.children_only {
            return Err(Error::InvalidArgument(
                "options 'children' and 'children-only' are mutually exclusive".into(),
            ));
        }
        Ok(())
    }
}

/// Which snapshots a listing returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotListOptions {
    pub roots: bool,
    pub leaves: bool,
    pub no_leaves: bool,
    pub topological: bool,
}

impl SnapshotListOptions {
    pub fn validate(&self) -> Result<()> {
        if self.leaves && self.no_leaves {
            return Err(Error::InvalidArgument(
                "options 'leaves' and 'no-leaves' are mutually exclusive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_create_rules() {
        let ok = |o: SnapshotCreateOptions| o.validate().is_ok();
        let d = SnapshotCreateOptions::default();
        assert!(ok(d));
        assert!(!ok(SnapshotCreateOptions { current: true, ..d }));
        assert!(ok(SnapshotCreateOptions {
            current: true,
            redefine: true,
            ..d
        }));
        assert!(!ok(SnapshotCreateOptions {
            redefine: true,
            no_metadata: true,
            ..d
        }));
        assert!(!ok(SnapshotCreateOptions {
            redefine: true,
            halt: true,
            ..d
        }));
        assert!(!ok(SnapshotCreateOptions { quiesce: true, ..d }));
        assert!(ok(SnapshotCreateOptions {
            quiesce: true,
            disk_only: true,
            ..d
        }));
    }

    #[test]
    fn list_filter_pairs() {
        let f = ListFilter::default();
        assert!(f.matches(true, true, "test") && f.matches(false, false, "qemu"));
        let f = ListFilter {
            active: true,
            ..Default::default()
        };
        assert!(f.matches(true, false, "x") && !f.matches(false, false, "x"));
        let f = ListFilter {
            active: true,
            inactive: true,
            transient: true,
            driver: Some("test".into()),
            ..Default::default()
        };
        assert!(f.matches(false, false, "test"));
        assert!(!f.matches(false, true, "test"));
        assert!(!f.matches(false, false, "qemu"));
    }
}
