//! The client's errors and the exit codes scripts rely on (documented in the README).

use std::process::ExitCode;

/// What went wrong, by what a script should do about it. Each kind has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else: the daemon failed, timed out, or could not be reached.
    Failed,
    /// The command line itself is wrong (clap's own errors use this code too).
    Usage,
    /// No such domain, snapshot or object.
    NotFound,
    /// The daemon refused the input: bad XML, bad option, a name already taken.
    Invalid,
    /// polkit (or the bus policy) said no.
    Denied,
    /// The operation does not fit the domain's state (e.g. start a running domain).
    State,
    /// The driver or the hypervisor cannot do it.
    NotSupported,
    /// Ctrl-C: the client stopped waiting (the daemon's operation goes on).
    Interrupted,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Invalid => 4,
            Kind::Denied => 5,
            Kind::State => 6,
            Kind::NotSupported => 7,
            Kind::Interrupted => 130,
        }
    }

    /// The kind of a D-Bus error, by its name.
    fn of_error_name(name: &str) -> Kind {
        let last = name.rsplit('.').next().unwrap_or(name);
        match last {
            "NotFound" | "UnknownObject" | "UnknownInterface" => Kind::NotFound,
            "InvalidArgument" | "InvalidArgs" | "AlreadyExists" => Kind::Invalid,
            "AccessDenied" | "InteractiveAuthorizationRequired" | "AuthFailed" => Kind::Denied,
            "InvalidState" => Kind::State,
            "NotSupported" | "UnknownMethod" => Kind::NotSupported,
            _ => Kind::Failed,
        }
    }
}

/// One error, printed as one line: the message and, when the daemon sent one, the short name
/// of its typed error.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// The D-Bus error's short name (`NotFound`), when the error came from the bus.
    pub name: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            name: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    /// Print the error and turn it into the exit code.
    pub fn report(&self) -> ExitCode {
        let line = self.message.replace('\n', " ");
        match &self.name {
            Some(name) => eprintln!("virtbusctl: {line} ({name})"),
            None => eprintln!("virtbusctl: {line}"),
        }
        ExitCode::from(self.kind.code())
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, msg, _) => {
                let kind = Kind::of_error_name(name.as_str());
                let short = name.rsplit('.').next().unwrap_or(name.as_str()).to_owned();
                Self {
                    kind,
                    message: msg.unwrap_or_else(|| short.clone()),
                    name: Some(short),
                }
            }
            zbus::Error::FDO(e) => (*e).into(),
            other => Self::failed(other.to_string()),
        }
    }
}

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Self {
        use zbus::DBusError;
        let name = e.name().to_string();
        let short = name.rsplit('.').next().unwrap_or(&name).to_owned();
        if short == "ServiceUnknown" || short == "NameHasNoOwner" {
            return Self::failed("virtbusd is not running on this bus (no owner of org.virtbus1)");
        }
        let message = e.description().unwrap_or(&short).to_owned();
        Self {
            kind: Kind::of_error_name(&name),
            message,
            name: Some(short),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::failed(e.to_string())
    }
}
