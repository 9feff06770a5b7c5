//! Command-line options of `virtbusd`.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    System,
    Session,
}

impl BusKind {
    /// How messages name the bus.
    pub fn name(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Session => "session",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `None`: the system bus for root, the session bus for anyone else.
    pub bus: Option<BusKind>,
    pub state_dir: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    /// The configuration file; `None`: the usual places (see [`crate::config`]).
    pub config: Option<PathBuf>,
    /// Idle timeout in seconds, overriding the configuration's.
    pub timeout: Option<u64>,
    /// Ask polkit on every call (to measure what the decision cache saves).
    pub no_authz_cache: bool,
    /// Serve the libvirt-dbus compatible API too, whatever the configuration says.
    pub libvirt_compat: bool,
    /// Answer libvirt's RPC protocol too, whatever the configuration says.
    pub libvirt_rpc: bool,
    /// Its socket, overriding the configuration's (and turning it on).
    pub libvirt_rpc_socket: Option<PathBuf>,
    pub help: bool,
    pub version: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("{0}")]
    Parse(#[from] lexopt::Error),
    #[error("--system and --session exclude each other")]
    BothBuses,
    #[error("--timeout takes a number of seconds, not '{0}'")]
    Timeout(String),
}

pub const USAGE: &str = "\
Usage: virtbusd [OPTIONS]

Serve virtual machines over D-Bus as org.virtbus1.

Options:
  --system              Serve on the system bus (default for root)
  --session             Serve on the session bus (default for other users)
  --state-dir DIR       Where definitions live (system: /var/lib/virtbus,
                        session: $XDG_DATA_HOME/virtbus)
  --runtime-dir DIR     Where runtime files live (system: /run/virtbus,
                        session: $XDG_RUNTIME_DIR/virtbus)
  --config FILE         Read this configuration file instead of
                        /etc/virtbus/virtbusd.toml (system) or
                        $XDG_CONFIG_HOME/virtbus/virtbusd.toml (session),
                        which fall back to the installed defaults
  --timeout SECS        Session instance: exit after SECS with nothing running
                        and no call (0: never; default from the configuration)
  --no-authz-cache      Ask polkit on every call, caching no decision
                        (for measurements)
  --libvirt-compat      Also own org.libvirt and serve libvirt-dbus's API
  --libvirt-rpc         Also answer libvirt's RPC protocol (virsh, virt-manager)
                        on a Unix socket (system: /run/libvirt/libvirt-sock,
                        session: $XDG_RUNTIME_DIR/libvirt/libvirt-sock)
  --libvirt-rpc-socket PATH
                        Answer it on PATH (implies --libvirt-rpc)
  -h, --help            Show this help
  -V, --version         Show the version
";

impl Args {
    /// Parse a whole command line, program name first.
    pub fn parse_from<I>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator,
        I::Item: Into<std::ffi::OsString>,
    {
        use lexopt::prelude::*;
        let mut out = Args {
            bus: None,
            state_dir: None,
            runtime_dir: None,
            config: None,
            timeout: None,
            no_authz_cache: false,
            libvirt_compat: false,
            libvirt_rpc: false,
            libvirt_rpc_socket: None,
            help: false,
            version: false,
        };
        let mut p = lexopt::Parser::from_iter(args);
        while let Some(arg) = p.next()? {
            match arg {
                Long("system") | Long("session") => {
                    let kind = if arg == Long("system") {
                        BusKind::System
                    } else {
                        BusKind::Session
                    };
                    if out.bus.is_some_and(|b| b != kind) {
                        return Err(ArgsError::BothBuses);
                    }
                    out.bus = Some(kind);
                }
                Long("state-dir") => out.state_dir = Some(p.value()?.into()),
                Long("runtime-dir") => out.runtime_dir = Some(p.value()?.into()),
                Long("config") => out.config = Some(p.value()?.into()),
                Long("timeout") => {
                    let v = p.value()?;
                    let secs = v.to_str().and_then(|s| s.parse().ok());
                    out.timeout =
                        Some(secs.ok_or_else(|| ArgsError::Timeout(v.to_string_lossy().into()))?);
                }
                Long("no-authz-cache") => out.no_authz_cache = true,
                Long("libvirt-compat") => out.libvirt_compat = true,
                Long("libvirt-rpc") => out.libvirt_rpc = true,
                Long("libvirt-rpc-socket") => {
                    out.libvirt_rpc = true;
                    out.libvirt_rpc_socket = Some(p.value()?.into());
                }
                Short('h') | Long("help") => out.help = true,
                Short('V') | Long("version") => out.version = true,
                _ => return Err(arg.unexpected().into()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, ArgsError> {
        Args::parse_from(std::iter::once("virtbusd").chain(v.iter().copied()))
    }

    #[test]
    fn options() {
        let a = parse(&["--session", "--state-dir", "/s", "--runtime-dir=/r"]).expect("ok");
        assert_eq!(a.bus, Some(BusKind::Session));
        assert_eq!(a.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(a.runtime_dir, Some(PathBuf::from("/r")));
        assert!(matches!(
            parse(&["--system", "--session"]),
            Err(ArgsError::BothBuses)
        ));
        assert!(parse(&["--libvirt-compat"]).expect("ok").libvirt_compat);
        let a = parse(&["--libvirt-rpc-socket", "/s/sock"]).expect("ok");
        assert!(a.libvirt_rpc);
        assert_eq!(a.libvirt_rpc_socket, Some(PathBuf::from("/s/sock")));
        let a = parse(&["--config", "/c.toml", "--timeout=0"]).expect("ok");
        assert_eq!(a.config, Some(PathBuf::from("/c.toml")));
        assert_eq!(a.timeout, Some(0));
        assert!(matches!(
            parse(&["--timeout", "soon"]),
            Err(ArgsError::Timeout(_))
        ));
        let e = parse(&["--bogus"]).expect_err("unknown");
        assert!(e.to_string().contains("--bogus"), "{e}");
    }
}
