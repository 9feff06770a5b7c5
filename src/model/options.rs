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
    /// A container's `/dev/initctl` (sysvinit's runlevel request).
    Initctl,
    /// A signal to a container's init.
    Signal,
    /// Xen's paravirtual control (no driver here has it).
    Paravirt,
}

impl PowerMode {
    /// Every mode, by name, in the order the errors list them.
    pub const NAMES: &'static [&'static str] =
        &["default", "acpi", "agent", "initctl", "signal", "paravirt"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(Self::Default),
            "acpi" => Some(Self::Acpi),
            "agent" => Some(Self::Agent),
            "initctl" => Some(Self::Initctl),
            "signal" => Some(Self::Signal),
            "paravirt" => Some(Self::Paravirt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Acpi => "acpi",
            Self::Agent => "agent",
            Self::Initctl => "initctl",
            Self::Signal => "signal",
            Self::Paravirt => "paravirt",
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
