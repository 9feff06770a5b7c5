//! Options that the core and the drivers share: how a guest is powered off and how a snapshot
//! is taken, with libvirt's rules for combining them, and the error naming a broken rule.

/// A rule about options broken, naming the options as the native API does (front ends with
/// other names map them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("options '{0}' and '{1}' are mutually exclusive")]
    Exclusive(&'static str, &'static str),
    /// The first option needs the second.
    #[error("option '{0}' requires option '{1}'{2}")]
    Requires(&'static str, &'static str, &'static str),
}

/// How a guest is asked to shut down or reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PowerMode {
    /// The driver's choice (QEMU: the guest agent when the domain has one, ACPI when it has
    /// none or the agent fails).
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
    pub fn validate(&self) -> Result<(), OptionError> {
        if self.current && !self.redefine {
            return Err(OptionError::Requires("current", "redefine", ""));
        }
        if self.redefine && self.no_metadata {
            return Err(OptionError::Exclusive("redefine", "no-metadata"));
        }
        if self.redefine && self.halt {
            return Err(OptionError::Exclusive("redefine", "halt"));
        }
        if self.redefine && self.live {
            return Err(OptionError::Exclusive("redefine", "live"));
        }
        if self.quiesce && !self.disk_only {
            return Err(OptionError::Requires(
                "quiesce",
                "disk-only",
                ": a snapshot with memory is consistent without freezing the guest's \
                 filesystems",
            ));
        }
        Ok(())
    }
}
