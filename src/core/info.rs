//! Snapshots of what clients see of a domain or a snapshot: the values behind its properties.
//!
//! The core computes one before and after each change and publishes the difference, so
//! property-change signals come from one place and always match what a read returns.

use uuid::Uuid;

use crate::model::{DomainType, state::Status};

/// The values of a domain's properties.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainInfo {
    pub uuid: Uuid,
    pub name: String,
    pub title: String,
    /// The hypervisor id while active.
    pub id: Option<u32>,
    pub driver: &'static str,
    pub domain_type: DomainType,
    pub status: Status,
    pub persistent: bool,
    pub autostart: bool,
    /// Whether a managed save image waits for the next start.
    pub managed_save: bool,
    pub vcpus: u32,
    pub memory_kib: u64,
    pub current_snapshot: Option<String>,
    pub snapshot_count: u32,
    /// Something the user must know about the guest (e.g. its filesystems may still be frozen).
    pub warning: String,
    /// The uid that defined the domain, when it was not root.
    pub owner: Option<u32>,
    /// The long operation running on the domain (a snapshot, a revert), or "" when none.
    pub job: &'static str,
    /// How far `job` has come, from 0.0 to 1.0.
    pub job_progress: f64,
}

/// One property of a domain, named as on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainProp {
    Name,
    Title,
    Id,
    State,
    StateReason,
    Active,
    Persistent,
    Autostart,
    ManagedSave,
    Vcpus,
    MemoryKib,
    CurrentSnapshot,
    SnapshotCount,
    Warning,
    Job,
    JobProgress,
}

impl DomainInfo {
    /// The properties whose values differ between `self` and `new`.
    pub fn changes(&self, new: &DomainInfo) -> Vec<DomainProp> {
        use DomainProp as P;
        let mut out = Vec::new();
        let mut check = |differs: bool, p: P| {
            if differs {
                out.push(p)
            }
        };
        check(self.name != new.name, P::Name);
        check(self.title != new.title, P::Title);
        check(self.id != new.id, P::Id);
        check(self.status.state != new.status.state, P::State);
        check(self.status.reason != new.status.reason, P::StateReason);
        check(self.status.is_active() != new.status.is_active(), P::Active);
        check(self.persistent != new.persistent, P::Persistent);
        check(self.autostart != new.autostart, P::Autostart);
        check(self.managed_save != new.managed_save, P::ManagedSave);
        check(self.vcpus != new.vcpus, P::Vcpus);
        check(self.memory_kib != new.memory_kib, P::MemoryKib);
        check(
            self.current_snapshot != new.current_snapshot,
            P::CurrentSnapshot,
        );
        check(self.snapshot_count != new.snapshot_count, P::SnapshotCount);
        check(self.warning != new.warning, P::Warning);
        check(self.job != new.job, P::Job);
        check(self.job_progress != new.job_progress, P::JobProgress);
        out
    }
}

pub use crate::model::SnapshotKind;

/// The values of a snapshot's properties.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    pub domain: Uuid,
    pub name: String,
    pub description: String,
    pub parent: Option<String>,
    pub creation_time: u64,
    /// The domain's state when the snapshot was taken, as libvirt's snapshot XML names it.
    pub state: String,
    pub is_current: bool,
    pub kind: SnapshotKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotProp {
    Description,
    Parent,
    CreationTime,
    State,
    IsCurrent,
    Kind,
}

impl SnapshotInfo {
    pub fn changes(&self, new: &SnapshotInfo) -> Vec<SnapshotProp> {
        use SnapshotProp as P;
        let mut out = Vec::new();
        let mut check = |differs: bool, p: P| {
            if differs {
                out.push(p)
            }
        };
        check(self.description != new.description, P::Description);
        check(self.parent != new.parent, P::Parent);
        check(self.creation_time != new.creation_time, P::CreationTime);
        check(self.state != new.state, P::State);
        check(self.is_current != new.is_current, P::IsCurrent);
        check(self.kind != new.kind, P::Kind);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::{DomainState, StateReason};

    fn info() -> DomainInfo {
        DomainInfo {
            uuid: Uuid::nil(),
            name: "a".into(),
            title: String::new(),
            id: None,
            driver: "test",
            domain_type: DomainType::Test,
            status: Status::shut_off(StateReason::Unknown),
            persistent: true,
            autostart: false,
            managed_save: false,
            vcpus: 1,
            memory_kib: 1024,
            current_snapshot: None,
            snapshot_count: 0,
            warning: String::new(),
            owner: None,
            job: "",
            job_progress: 0.0,
        }
    }

    #[test]
    fn start_changes_state_reason_active_and_id() {
        let before = info();
        let mut after = info();
        after.status = Status::new(DomainState::Running, StateReason::Booted);
        after.id = Some(1);
        assert_eq!(
            before.changes(&after),
            vec![
                DomainProp::Id,
                DomainProp::State,
                DomainProp::StateReason,
                DomainProp::Active
            ]
        );
        assert!(after.changes(&after.clone()).is_empty());
    }

    #[test]
    fn pause_keeps_active() {
        let mut before = info();
        before.status = Status::new(DomainState::Running, StateReason::Booted);
        let mut after = before.clone();
        after.status = Status::new(DomainState::Paused, StateReason::User);
        assert_eq!(
            before.changes(&after),
            vec![DomainProp::State, DomainProp::StateReason]
        );
    }
}
