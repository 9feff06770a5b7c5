//! Domain states, state reasons and lifecycle events, with libvirt's vocabulary.
//!
//! Strings are libvirt's names in lower case with dashes, so that users and tools that know
//! libvirt read them without a table. Numeric codes are libvirt's enum values, kept here so
//! that a front end speaking libvirt's numeric API needs no second table.

use std::fmt;

/// The state of a domain, as libvirt's `virDomainState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainState {
    NoState,
    Running,
    Blocked,
    Paused,
    Shutdown,
    ShutOff,
    Crashed,
    PmSuspended,
}

impl DomainState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoState => "no-state",
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::ShutOff => "shut-off",
            Self::Crashed => "crashed",
            Self::PmSuspended => "pmsuspended",
        }
    }

    /// libvirt's `virDomainState` value.
    pub fn code(self) -> i32 {
        match self {
            Self::NoState => 0,
            Self::Running => 1,
            Self::Blocked => 2,
            Self::Paused => 3,
            Self::Shutdown => 4,
            Self::ShutOff => 5,
            Self::Crashed => 6,
            Self::PmSuspended => 7,
        }
    }

    /// Whether a hypervisor process (or simulation) exists for the domain in this state.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::ShutOff | Self::Crashed | Self::NoState)
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a domain is in its state; one variant per libvirt reason name.
///
/// Several libvirt states share reason names (`unknown`, `crashed`, `from-snapshot`); the
/// numeric code depends on the state, so [`StateReason::code`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateReason {
    Unknown,
    // running
    Booted,
    Migrated,
    Restored,
    FromSnapshot,
    Unpaused,
    Wakeup,
    Crashed,
    // paused
    User,
    Save,
    Dump,
    IoError,
    Watchdog,
    ShuttingDown,
    Snapshot,
    StartingUp,
    // shut-off
    Shutdown,
    Destroyed,
    Saved,
    Failed,
    Daemon,
    // crashed
    Panicked,
}

impl StateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Booted => "booted",
            Self::Migrated => "migrated",
            Self::Restored => "restored",
            Self::FromSnapshot => "from-snapshot",
            Self::Unpaused => "unpaused",
            Self::Wakeup => "wakeup",
            Self::Crashed => "crashed",
            Self::User => "user",
            Self::Save => "save",
            Self::Dump => "dump",
            Self::IoError => "ioerror",
            Self::Watchdog => "watchdog",
            Self::ShuttingDown => "shutting-down",
            Self::Snapshot => "snapshot",
            Self::StartingUp => "starting-up",
            Self::Shutdown => "shutdown",
            Self::Destroyed => "destroyed",
            Self::Saved => "saved",
            Self::Failed => "failed",
            Self::Daemon => "daemon",
            Self::Panicked => "panicked",
        }
    }

    /// libvirt's numeric reason for this reason in `state` (0, "unknown", when libvirt has
    /// no such reason for that state).
    pub fn code(self, state: DomainState) -> i32 {
        use StateReason as R;
        match (state, self) {
            (DomainState::Running, r) => match r {
                R::Booted => 1,
                R::Migrated => 2,
                R::Restored => 3,
                R::FromSnapshot => 4,
                R::Unpaused => 5,
                R::Wakeup => 8,
                R::Crashed => 9,
                _ => 0,
            },
            (DomainState::Paused, r) => match r {
                R::User => 1,
                R::Migrated => 2,
                R::Save => 3,
                R::Dump => 4,
                R::IoError => 5,
                R::Watchdog => 6,
                R::FromSnapshot => 7,
                R::ShuttingDown => 8,
                R::Snapshot => 9,
                R::Crashed => 10,
                R::StartingUp => 11,
                _ => 0,
            },
            (DomainState::Shutdown, R::User) => 1,
            (DomainState::ShutOff, r) => match r {
                R::Shutdown => 1,
                R::Destroyed => 2,
                R::Crashed => 3,
                R::Migrated => 4,
                R::Saved => 5,
                R::Failed => 6,
                R::FromSnapshot => 7,
                R::Daemon => 8,
                _ => 0,
            },
            (DomainState::Crashed, R::Panicked) => 1,
            _ => 0,
        }
    }
}

impl fmt::Display for StateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state together with its reason: what the `State` and `StateReason` properties show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub state: DomainState,
    pub reason: StateReason,
}

impl Status {
    pub const fn new(state: DomainState, reason: StateReason) -> Self {
        Self { state, reason }
    }

    pub const fn shut_off(reason: StateReason) -> Self {
        Self::new(DomainState::ShutOff, reason)
    }

    pub fn is_active(&self) -> bool {
        self.state.is_active()
    }
}

/// A lifecycle event with its detail, libvirt's `virDomainEventType` and its detail enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Defined(DefinedDetail),
    Undefined(UndefinedDetail),
    Started(StartedDetail),
    Suspended(SuspendedDetail),
    Resumed(ResumedDetail),
    Stopped(StoppedDetail),
    Shutdown(ShutdownDetail),
    PmSuspended(PmSuspendedDetail),
    Crashed(CrashedDetail),
}

macro_rules! detail_enum {
    ($name:ident { $($variant:ident = $code:literal : $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn code(self) -> i32 {
                match self { $(Self::$variant => $code),+ }
            }
        }
    };
}

detail_enum!(DefinedDetail { Added = 0: "added", Updated = 1: "updated", Renamed = 2: "renamed", FromSnapshot = 3: "from-snapshot" });
detail_enum!(UndefinedDetail { Removed = 0: "removed", Renamed = 1: "renamed" });
detail_enum!(StartedDetail { Booted = 0: "booted", Migrated = 1: "migrated", Restored = 2: "restored", FromSnapshot = 3: "from-snapshot", Wakeup = 4: "wakeup" });
detail_enum!(SuspendedDetail { Paused = 0: "paused", Migrated = 1: "migrated", IoError = 2: "ioerror", Watchdog = 3: "watchdog", Restored = 4: "restored", FromSnapshot = 5: "from-snapshot", ApiError = 6: "api-error" });
detail_enum!(ResumedDetail { Unpaused = 0: "unpaused", Migrated = 1: "migrated", FromSnapshot = 2: "from-snapshot" });
detail_enum!(StoppedDetail { Shutdown = 0: "shutdown", Destroyed = 1: "destroyed", Crashed = 2: "crashed", Migrated = 3: "migrated", Saved = 4: "saved", Failed = 5: "failed", FromSnapshot = 6: "from-snapshot" });
detail_enum!(ShutdownDetail { Finished = 0: "finished", Guest = 1: "guest", Host = 2: "host" });
detail_enum!(PmSuspendedDetail { Memory = 0: "memory", Disk = 1: "disk" });
detail_enum!(CrashedDetail { Panicked = 0: "panicked", Crashloaded = 1: "crashloaded" });
// What a guest's watchdog did when it fired: libvirt's `virDomainEventWatchdogAction`.
detail_enum!(WatchdogEventAction { None = 0: "none", Pause = 1: "pause", Reset = 2: "reset", Poweroff = 3: "poweroff", Shutdown = 4: "shutdown", Debug = 5: "debug", InjectNmi = 6: "inject-nmi" });

impl WatchdogEventAction {
    /// QEMU's name for the action (its `WATCHDOG` event's `action`).
    pub fn from_qemu(action: &str) -> Option<Self> {
        Some(match action {
            "none" => Self::None,
            "pause" => Self::Pause,
            "reset" => Self::Reset,
            "poweroff" => Self::Poweroff,
            "shutdown" => Self::Shutdown,
            "debug" => Self::Debug,
            "inject-nmi" => Self::InjectNmi,
            _ => return Option::None,
        })
    }
}

impl Lifecycle {
    /// The event name, as `DomainEvent` carries it.
    pub fn event_str(self) -> &'static str {
        match self {
            Self::Defined(_) => "defined",
            Self::Undefined(_) => "undefined",
            Self::Started(_) => "started",
            Self::Suspended(_) => "suspended",
            Self::Resumed(_) => "resumed",
            Self::Stopped(_) => "stopped",
            Self::Shutdown(_) => "shutdown",
            Self::PmSuspended(_) => "pmsuspended",
            Self::Crashed(_) => "crashed",
        }
    }

    pub fn detail_str(self) -> &'static str {
        match self {
            Self::Defined(d) => d.as_str(),
            Self::Undefined(d) => d.as_str(),
            Self::Started(d) => d.as_str(),
            Self::Suspended(d) => d.as_str(),
            Self::Resumed(d) => d.as_str(),
            Self::Stopped(d) => d.as_str(),
            Self::Shutdown(d) => d.as_str(),
            Self::PmSuspended(d) => d.as_str(),
            Self::Crashed(d) => d.as_str(),
        }
    }

    /// libvirt's `virDomainEventType` value.
    pub fn event_code(self) -> i32 {
        match self {
            Self::Defined(_) => 0,
            Self::Undefined(_) => 1,
            Self::Started(_) => 2,
            Self::Suspended(_) => 3,
            Self::Resumed(_) => 4,
            Self::Stopped(_) => 5,
            Self::Shutdown(_) => 6,
            Self::PmSuspended(_) => 7,
            Self::Crashed(_) => 8,
        }
    }

    pub fn detail_code(self) -> i32 {
        match self {
            Self::Defined(d) => d.code(),
            Self::Undefined(d) => d.code(),
            Self::Started(d) => d.code(),
            Self::Suspended(d) => d.code(),
            Self::Resumed(d) => d.code(),
            Self::Stopped(d) => d.code(),
            Self::Shutdown(d) => d.code(),
            Self::PmSuspended(d) => d.code(),
            Self::Crashed(d) => d.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_libvirts() {
        assert_eq!(DomainState::ShutOff.as_str(), "shut-off");
        assert_eq!(DomainState::PmSuspended.as_str(), "pmsuspended");
        assert_eq!(StateReason::FromSnapshot.as_str(), "from-snapshot");
        let ev = Lifecycle::Stopped(StoppedDetail::FromSnapshot);
        assert_eq!(
            (ev.event_str(), ev.detail_str()),
            ("stopped", "from-snapshot")
        );
        assert_eq!((ev.event_code(), ev.detail_code()), (5, 6));
    }

    #[test]
    fn reason_codes_depend_on_state() {
        assert_eq!(StateReason::FromSnapshot.code(DomainState::Running), 4);
        assert_eq!(StateReason::FromSnapshot.code(DomainState::Paused), 7);
        assert_eq!(StateReason::FromSnapshot.code(DomainState::ShutOff), 7);
        assert_eq!(StateReason::Crashed.code(DomainState::ShutOff), 3);
        assert_eq!(StateReason::Booted.code(DomainState::ShutOff), 0);
    }

    #[test]
    fn activity() {
        assert!(DomainState::Paused.is_active());
        assert!(DomainState::PmSuspended.is_active());
        assert!(!DomainState::ShutOff.is_active());
        assert!(!DomainState::Crashed.is_active());
    }
}
