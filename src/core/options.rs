//! Typed options of each operation. Front ends build them from their own encodings (an
//! `a{sv}` dictionary, libvirt's flag words); the rules that relate options live here once,
//! and report which options broke them ([`OptionError`]) so each front end names them its way.

use super::{
    error::{Error, OptionError, Result, StateConflict},
    ops::Operation,
};
pub use crate::model::options::{PowerMode, SnapshotCreateOptions};
use crate::model::{
    DomainType,
    state::{DomainState, Status},
};

#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Leave the guest paused once started.
    pub paused: bool,
    /// Boot afresh, discarding a managed save image instead of restoring from it.
    pub force_boot: bool,
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
    /// Also remove checkpoint metadata; without it a shut-off domain with checkpoints
    /// cannot be undefined (libvirt's rule: a running one keeps them).
    pub checkpoints_metadata: bool,
    /// Also remove the managed save image; without it a domain with one cannot be undefined.
    pub managed_save: bool,
    /// Also remove the UEFI variable store; without it or `keep_nvram`, a domain with one
    /// cannot be undefined.
    pub nvram: bool,
    pub keep_nvram: bool,
    /// Keep the emulated TPM's state, which is removed by default.
    pub keep_tpm: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct XmlOptions {
    /// The persistent definition even while the domain runs.
    pub inactive: bool,
    /// Include secrets such as graphics passwords.
    pub secure: bool,
    /// As for migration: without what the destination makes up again (libvirt's
    /// `VIR_DOMAIN_XML_MIGRATABLE`).
    pub migratable: bool,
    /// With the guest CPU updated from the host's (libvirt's `VIR_DOMAIN_XML_UPDATE_CPU`).
    pub update_cpu: bool,
}

/// Which domains a listing returns. Options come in groups (active/inactive,
/// persistent/transient, the states, managed save, autostart, snapshots); within a group a
/// domain must match one of the options set, and a group with none set does not filter, as
/// libvirt's list flags do.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub active: bool,
    pub inactive: bool,
    pub persistent: bool,
    pub transient: bool,
    pub running: bool,
    pub paused: bool,
    pub shut_off: bool,
    /// Any state but running, paused and shut off.
    pub other: bool,
    pub managed_save: bool,
    pub no_managed_save: bool,
    pub autostart: bool,
    pub no_autostart: bool,
    pub has_snapshot: bool,
    pub no_snapshot: bool,
    pub driver: Option<String>,
    /// Only domains of these types; empty for all.
    pub domain_types: Vec<DomainType>,
}

/// What a listing filters on, read under a domain's lock without copying anything.
#[derive(Debug, Clone, Copy)]
pub struct ListFacts<'a> {
    pub status: Status,
    pub persistent: bool,
    pub autostart: bool,
    pub managed_save: bool,
    pub snapshot_count: usize,
    pub driver: &'a str,
    pub domain_type: DomainType,
}

impl ListFilter {
    /// Whether the filter looks at more than a domain's type and driver.
    pub fn reads_state(&self) -> bool {
        self.active
            || self.inactive
            || self.persistent
            || self.transient
            || self.running
            || self.paused
            || self.shut_off
            || self.other
            || self.managed_save
            || self.no_managed_save
            || self.autostart
            || self.no_autostart
            || self.has_snapshot
            || self.no_snapshot
    }

    pub fn matches(&self, info: &ListFacts<'_>) -> bool {
        /// A group filters when any of its options is set, and then one must hold.
        fn group(options: &[(bool, bool)]) -> bool {
            !options.iter().any(|(set, _)| *set) || options.iter().any(|(set, hit)| *set && *hit)
        }
        let state = info.status.state;
        let active = state.is_active();
        let standard = matches!(
            state,
            DomainState::Running | DomainState::Paused | DomainState::ShutOff
        );
        let snapshots = info.snapshot_count > 0;
        group(&[(self.active, active), (self.inactive, !active)])
            && group(&[
                (self.persistent, info.persistent),
                (self.transient, !info.persistent),
            ])
            && group(&[
                (self.running, state == DomainState::Running),
                (self.paused, state == DomainState::Paused),
                (self.shut_off, state == DomainState::ShutOff),
                (self.other, !standard),
            ])
            && group(&[
                (self.managed_save, info.managed_save),
                (self.no_managed_save, !info.managed_save),
            ])
            && group(&[
                (self.autostart, info.autostart),
                (self.no_autostart, !info.autostart),
            ])
            && group(&[
                (self.has_snapshot, snapshots),
                (self.no_snapshot, !snapshots),
            ])
            && self.driver.as_deref().is_none_or(|d| d == info.driver)
            && (self.domain_types.is_empty() || self.domain_types.contains(&info.domain_type))
    }
}

/// Which definition an operation reads or changes: the running one, the persistent one, or
/// both; neither set means the running one while active, else the persistent one (libvirt's
/// `AFFECT_CURRENT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Affect {
    pub live: bool,
    pub config: bool,
}

/// The definitions an operation applies to, once resolved against a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub live: bool,
    pub config: bool,
}

impl Targets {
    /// `edit` applied to the definitions this change targets: the running one (when there is
    /// one) and the persistent one; `None` for those it leaves alone.
    pub fn edit<T>(
        self,
        live: Option<&T>,
        config: &T,
        mut edit: impl FnMut(&T) -> crate::core::Result<T>,
    ) -> crate::core::Result<(Option<T>, Option<T>)> {
        let new_live = match live {
            Some(l) if self.live => Some(edit(l)?),
            _ => None,
        };
        let new_config = if self.config {
            Some(edit(config)?)
        } else {
            None
        };
        Ok((new_live, new_config))
    }
}

impl Affect {
    /// Resolve for a change, which may apply to both definitions.
    pub fn resolve(
        self,
        domain: &str,
        op: Operation,
        state: DomainState,
        persistent: bool,
    ) -> Result<Targets> {
        let active = state.is_active();
        let (live, config) = if !self.live && !self.config {
            (active, !active)
        } else {
            (self.live, self.config)
        };
        if live && !active {
            return Err(Error::WrongState(StateConflict {
                domain: domain.to_owned(),
                op,
                state,
                needs_active: true,
            }));
        }
        if config && !persistent {
            return Err(Error::InvalidState(format!(
                "cannot {} domain '{domain}': it is transient and has no persistent \
                 definition",
                op.verb()
            )));
        }
        Ok(Targets { live, config })
    }

    /// Resolve for a read, which reads one definition: `live` and `config` exclude each other.
    pub fn resolve_one(
        self,
        domain: &str,
        op: Operation,
        state: DomainState,
        persistent: bool,
    ) -> Result<Targets> {
        if self.live && self.config {
            return Err(OptionError::Exclusive("live", "config").into());
        }
        self.resolve(domain, op, state, persistent)
    }
}

/// Two options that cannot both be set, by their names.
fn exclusive(a: (bool, &'static str), b: (bool, &'static str)) -> Result<(), OptionError> {
    if a.0 && b.0 {
        return Err(OptionError::Exclusive(a.1, b.1));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RevertOptions {
    pub running: bool,
    pub paused: bool,
    pub force: bool,
}

impl RevertOptions {
    pub fn validate(&self) -> Result<(), OptionError> {
        exclusive((self.running, "running"), (self.paused, "paused"))
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotDeleteOptions {
    pub children: bool,
    pub children_only: bool,
    pub metadata_only: bool,
}

impl SnapshotDeleteOptions {
    pub fn validate(&self) -> Result<(), OptionError> {
        exclusive(
            (self.children, "children"),
            (self.children_only, "children-only"),
        )
    }
}

/// Which snapshots a listing returns. As with [`ListFilter`], the filters come in groups
/// (leaves; metadata; the domain's state when taken; where the state is kept) and a group
/// with none set does not filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotListOptions {
    pub roots: bool,
    pub leaves: bool,
    pub no_leaves: bool,
    /// Every snapshot has metadata, so `metadata` keeps all and `no_metadata` none.
    pub metadata: bool,
    pub no_metadata: bool,
    /// Taken of a shut-off domain.
    pub inactive: bool,
    /// Taken of a running or paused domain, with its memory.
    pub active: bool,
    pub disk_only: bool,
    /// Kept inside the disk images.
    pub internal: bool,
    /// Kept in files of their own.
    pub external: bool,
    pub topological: bool,
}

impl SnapshotListOptions {
    pub fn validate(&self) -> Result<(), OptionError> {
        exclusive((self.leaves, "leaves"), (self.no_leaves, "no-leaves"))
    }
}

/// How a managed save leaves the guest for its next start.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManagedSaveOptions {
    /// Start it running, whatever its state when saved.
    pub running: bool,
    /// Start it paused, whatever its state when saved.
    pub paused: bool,
}

impl ManagedSaveOptions {
    pub fn validate(&self) -> Result<(), OptionError> {
        exclusive((self.running, "running"), (self.paused, "paused"))
    }
}

/// Reading or changing a domain's vCPU count.
#[derive(Debug, Clone, Copy, Default)]
pub struct VcpuOptions {
    pub affect: Affect,
    /// The maximum rather than the current count.
    pub maximum: bool,
}

impl VcpuOptions {
    /// A change of the maximum applies to the persistent definition only.
    pub fn validate_set(&self) -> Result<(), OptionError> {
        if self.maximum && !self.affect.config {
            return Err(OptionError::Requires("maximum", "config", ""));
        }
        if self.maximum && self.affect.live {
            return Err(OptionError::Exclusive("maximum", "live"));
        }
        Ok(())
    }
}

/// Changing a domain's memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryOptions {
    pub affect: Affect,
    /// The maximum (`<memory>`) rather than the current balloon size (`<currentMemory>`).
    pub maximum: bool,
}

impl MemoryOptions {
    /// A guest's maximum memory is fixed while it runs: a change of it applies to the
    /// persistent definition only.
    pub fn validate(&self) -> Result<(), OptionError> {
        if self.maximum && self.affect.live {
            return Err(OptionError::Exclusive("maximum", "live"));
        }
        Ok(())
    }
}

/// Attaching, detaching or updating a device.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceOptions {
    pub affect: Affect,
    /// Update: change the device even if the guest holds it (eject a locked tray).
    pub force: bool,
}

/// Groups of statistics, as libvirt's `VIR_DOMAIN_STATS_*`: each selects the statistics whose
/// names start with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsGroup {
    State,
    CpuTotal,
    Balloon,
    Vcpu,
    Interface,
    Block,
    Perf,
    Iothread,
    Memory,
    DirtyRate,
    Vm,
}

impl StatsGroup {
    pub const ALL: [StatsGroup; 11] = [
        Self::State,
        Self::CpuTotal,
        Self::Balloon,
        Self::Vcpu,
        Self::Interface,
        Self::Block,
        Self::Perf,
        Self::Iothread,
        Self::Memory,
        Self::DirtyRate,
        Self::Vm,
    ];

    /// The name the native API uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::CpuTotal => "cpu-total",
            Self::Balloon => "balloon",
            Self::Vcpu => "vcpu",
            Self::Interface => "interface",
            Self::Block => "block",
            Self::Perf => "perf",
            Self::Iothread => "iothread",
            Self::Memory => "memory",
            Self::DirtyRate => "dirtyrate",
            Self::Vm => "vm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }

    /// The prefix of the statistics in this group.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::State => "state.",
            Self::CpuTotal => "cpu.",
            Self::Balloon => "balloon.",
            Self::Vcpu => "vcpu.",
            Self::Interface => "net.",
            Self::Block => "block.",
            Self::Perf => "perf.",
            Self::Iothread => "iothread.",
            Self::Memory => "memory.",
            Self::DirtyRate => "dirtyrate.",
            Self::Vm => "vm.",
        }
    }
}

/// Where the addresses of a guest's interfaces come from (libvirt's
/// `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressSource {
    /// DHCP leases of the virtual networks the daemon runs.
    Lease,
    /// The guest agent.
    #[default]
    Agent,
    /// The host's ARP table.
    Arp,
}

impl AddressSource {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lease" => Some(Self::Lease),
            "agent" => Some(Self::Agent),
            "arp" => Some(Self::Arp),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::StateReason;

    const X: Operation = Operation::SetMetadata;

    #[test]
    fn snapshot_create_rules() {
        let ok = |o: SnapshotCreateOptions| o.validate().is_ok();
        let d = SnapshotCreateOptions::default();
        assert!(ok(d));
        assert_eq!(
            SnapshotCreateOptions { current: true, ..d }.validate(),
            Err(OptionError::Requires("current", "redefine", ""))
        );
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

    fn info(state: DomainState, persistent: bool) -> ListFacts<'static> {
        ListFacts {
            driver: "test",
            domain_type: DomainType::Test,
            status: Status::new(state, StateReason::Unknown),
            persistent,
            autostart: false,
            managed_save: false,
            snapshot_count: 0,
        }
    }

    #[test]
    fn list_filter_groups() {
        let running = info(DomainState::Running, true);
        let off = info(DomainState::ShutOff, false);
        let crashed = info(DomainState::Crashed, true);
        assert!(ListFilter::default().matches(&running) && ListFilter::default().matches(&off));
        let f = ListFilter {
            active: true,
            ..Default::default()
        };
        assert!(f.matches(&running) && !f.matches(&off));
        let f = ListFilter {
            active: true,
            inactive: true,
            transient: true,
            driver: Some("test".into()),
            ..Default::default()
        };
        assert!(f.matches(&off) && !f.matches(&running));
        let f = ListFilter {
            paused: true,
            other: true,
            ..Default::default()
        };
        assert!(f.matches(&crashed) && !f.matches(&running) && !f.matches(&off));
        let f = ListFilter {
            domain_types: vec![DomainType::Qemu, DomainType::Kvm],
            ..Default::default()
        };
        assert!(!f.matches(&running));
        let f = ListFilter {
            no_snapshot: true,
            no_managed_save: true,
            no_autostart: true,
            ..Default::default()
        };
        assert!(f.matches(&running));
    }

    #[test]
    fn affect_rules() {
        let a = Affect::default();
        let run = DomainState::Running;
        let off = DomainState::ShutOff;
        assert_eq!(
            a.resolve("d", X, run, true).ok(),
            Some(Targets {
                live: true,
                config: false
            })
        );
        assert_eq!(
            a.resolve("d", X, off, true).ok(),
            Some(Targets {
                live: false,
                config: true
            })
        );
        let live = Affect {
            live: true,
            config: false,
        };
        assert!(matches!(
            live.resolve("d", X, off, true),
            Err(Error::WrongState(_))
        ));
        let config = Affect {
            live: false,
            config: true,
        };
        assert!(matches!(
            config.resolve("d", X, run, false),
            Err(Error::InvalidState(_))
        ));
        let both = Affect {
            live: true,
            config: true,
        };
        assert!(both.resolve("d", X, run, true).is_ok());
        assert_eq!(
            both.resolve_one("d", X, run, true),
            Err(Error::Options(OptionError::Exclusive("live", "config")))
        );
    }

    #[test]
    fn vcpu_rules() {
        let o = VcpuOptions {
            maximum: true,
            ..Default::default()
        };
        assert_eq!(
            o.validate_set(),
            Err(OptionError::Requires("maximum", "config", ""))
        );
        let o = VcpuOptions {
            maximum: true,
            affect: Affect {
                live: true,
                config: true,
            },
        };
        assert_eq!(
            o.validate_set(),
            Err(OptionError::Exclusive("maximum", "live"))
        );
    }

    #[test]
    fn stats_groups_round_trip() {
        for g in StatsGroup::ALL {
            assert_eq!(StatsGroup::parse(g.name()), Some(g));
        }
        assert_eq!(StatsGroup::parse("bogus"), None);
    }
}
