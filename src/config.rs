//! The configuration file, `virtbusd.toml`.
//!
//! One file is read: the first that exists of `--config FILE`, then the admin's copy
//! (`/etc/virtbus/virtbusd.toml` for the system instance, `$XDG_CONFIG_HOME/virtbus/virtbusd.toml`
//! for a session instance), then the defaults installed under the data dir. Files are never
//! merged, so what an admin reads in the one file is what runs; a key it leaves out takes its
//! built-in default, which the installed defaults file spells out.
//!
//! Every table denies unknown keys: a typo stops the daemon with the file and line rather than
//! being silently ignored.
//!
//! # How a driver adds its settings
//! A driver with settings defines its own struct in its module, with
//! `#[derive(Deserialize)] #[serde(deny_unknown_fields, default)]` and a `Default` impl, and
//! adds one field to [`Config`] named as its section, e.g. `pub qemu: QemuConfig` for a
//! `[qemu]` table. It lists its name in [`DriverKind`] and documents its keys, commented out
//! with their defaults, in `data/virtbusd.toml`. A unit test below checks that file equals the
//! built-in defaults.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::{Deserialize, Deserializer};

use crate::daemon::args::BusKind;

/// Where the admin's configuration lives; meson passes its `sysconfdir` when it is not `/etc`.
pub const SYSCONFDIR: &str = match option_env!("VIRTBUS_SYSCONFDIR") {
    Some(d) => d,
    None => "/etc",
};

/// Where the installed defaults live; meson passes its `datadir` when it is not `/usr/share`.
pub const DATADIR: &str = match option_env!("VIRTBUS_DATADIR") {
    Some(d) => d,
    None => "/usr/share",
};

const FILE_NAME: &str = "virtbusd.toml";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The drivers to load; domains of other types stay on disk, unloaded.
    pub drivers: Vec<DriverKind>,
    /// What to log, as `RUST_LOG` takes it (`info`, `virtbus=debug,zbus=warn`); `RUST_LOG`
    /// overrides it.
    pub log_level: LogFilter,
    /// Where definitions live; unset, the bus's default (see `virtbusd --help`).
    pub state_dir: Option<PathBuf>,
    /// Where runtime files live; unset, the bus's default.
    pub runtime_dir: Option<PathBuf>,
    /// Seconds a session instance stays with nothing running and no call before it exits
    /// (bus activation starts it again on the next call); 0 keeps it running. The system
    /// instance ignores it: systemd supervises it and machined tracks its guests.
    pub idle_timeout: u64,
    /// Also own `org.libvirt` and serve libvirt-dbus's API (`/org/libvirt/QEMU` over the
    /// qemu and kvm domains, `/org/libvirt/Test` as libvirt's `test:///default`).
    pub libvirt_compat: bool,
    /// Also answer libvirt's RPC protocol (virsh, virt-manager) on a Unix socket.
    pub libvirt_rpc: bool,
    /// That socket; unset, where libvirt.so looks for the bus's instance.
    pub libvirt_rpc_socket: Option<PathBuf>,
    /// The `[qemu]` table: settings of the QEMU driver.
    pub qemu: crate::drivers::qemu::QemuConfig,
    /// The `[storage]` table: where pools may be, and the default pool.
    pub storage: crate::storage::config::StorageConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            drivers: vec![DriverKind::Test, DriverKind::Qemu, DriverKind::Lxc],
            log_level: LogFilter::default(),
            state_dir: None,
            runtime_dir: None,
            idle_timeout: 120,
            libvirt_compat: false,
            libvirt_rpc: false,
            libvirt_rpc_socket: None,
            qemu: Default::default(),
            storage: Default::default(),
        }
    }
}

/// A driver that can be enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Test,
    /// QEMU/KVM domains (`type='qemu'` and `type='kvm'`), when QEMU is installed.
    Qemu,
    /// Containers (`type='lxc'`), when the daemon runs as root.
    Lxc,
}

/// A log filter, checked when the file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LogFilter {
    fn default() -> Self {
        Self("info".into())
    }
}

impl FromStr for LogFilter {
    type Err = String;

    /// Comma-separated directives, each a level or `target=level`. Stricter than `Targets`,
    /// which takes a lone word as a target name, so that `log_level = "loud"` is an error.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid log filter '{s}': {why}");
        for directive in s.split(',').map(str::trim) {
            let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
            if tracing_subscriber::filter::LevelFilter::from_str(level).is_err() {
                return Err(bad(&format!(
                    "'{level}' is not one of off, error, warn, info, debug, trace"
                )));
            }
        }
        tracing_subscriber::filter::Targets::from_str(s)
            .map(|_| Self(s.to_owned()))
            .map_err(|e| bad(&e.to_string()))
    }
}

impl<'de> Deserialize<'de> for LogFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{}", path.display(), Located(*line, *column, message))]
    Parse {
        path: PathBuf,
        /// 1-based, 0 when the parser gave no position.
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// `LINE:COLUMN: message`, or just the message when the position is unknown.
struct Located<'a>(usize, usize, &'a String);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Located(0, _, m) => write!(f, " {m}"),
            Located(l, c, m) => write!(f, "{l}:{c}: {m}"),
        }
    }
}

/// The configuration in use and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `None` when no file exists and the built-in defaults apply.
    pub path: Option<PathBuf>,
}

/// The files looked for, in order, when no `--config` is given.
pub fn candidates(bus: BusKind) -> Vec<PathBuf> {
    let admin = match bus {
        BusKind::System => Some(Path::new(SYSCONFDIR).join("virtbus")),
        BusKind::Session => std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("virtbus")),
    };
    admin
        .into_iter()
        .chain([Path::new(DATADIR).join("virtbus")])
        .map(|d| d.join(FILE_NAME))
        .collect()
}

/// Read the configuration: `explicit` must exist; otherwise the first of [`candidates`].
pub fn load(explicit: Option<&Path>, bus: BusKind) -> Result<Loaded, ConfigError> {
    if let Some(path) = explicit {
        return Ok(Loaded {
            config: read(path)?,
            path: Some(path.to_owned()),
        });
    }
    for path in candidates(bus) {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return Ok(Loaded {
                    config: parse(&text, &path)?,
                    path: Some(path),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ConfigError::Read { path, source }),
        }
    }
    Ok(Loaded {
        config: Config::default(),
        path: None,
    })
}

fn read(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parse and check one file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_column(text, s.start))
            .unwrap_or((0, 0));
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })?;
    if config.drivers.is_empty() {
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            message: "'drivers' enables no driver".into(),
        });
    }
    Ok(config)
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/etc/virtbus/virtbusd.toml"))
    }

    #[test]
    fn shipped_defaults_equal_built_in_ones() {
        let text = include_str!("../data/virtbusd.toml");
        assert_eq!(p(text).expect("shipped file parses"), Config::default());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(p("").expect("empty"), Config::default());
    }

    #[test]
    fn values() {
        let c = p(
            "drivers = [\"test\"]\nlog_level = \"virtbus=debug,zbus=warn\"\n\
                   state_dir = \"/s\"\nruntime_dir = \"/r\"\nidle_timeout = 0\n\
                   libvirt_compat = true\n",
        )
        .expect("valid");
        assert_eq!(c.log_level.as_str(), "virtbus=debug,zbus=warn");
        assert_eq!(c.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(c.runtime_dir, Some(PathBuf::from("/r")));
        assert_eq!(c.idle_timeout, 0);
        assert!(c.libvirt_compat);
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let e = p("log_level = \"info\"\n\n  idle_timout = 5\n").expect_err("typo");
        let msg = e.to_string();
        assert!(
            msg.starts_with("/etc/virtbus/virtbusd.toml:3:3: unknown field `idle_timout`"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_table_and_bad_values_are_errors() {
        let e = p("[qemu]\nbinary = \"x\"\n").expect_err("no qemu section yet");
        assert!(e.to_string().contains(":1:"), "{e}");
        let e = p("drivers = [\"xen\"]").expect_err("unknown driver");
        assert!(e.to_string().contains("unknown variant `xen`"), "{e}");
        let e = p("idle_timeout = -1").expect_err("negative");
        assert!(e.to_string().contains(":1:16:"), "{e}");
        let e = p("log_level = \"loud\"").expect_err("level");
        assert!(e.to_string().contains("invalid log filter"), "{e}");
        let e = p("drivers = []").expect_err("none");
        assert!(e.to_string().contains("no driver"), "{e}");
        let e = p("drivers = [").expect_err("syntax");
        assert!(e.to_string().contains(":1:"), "{e}");
    }

    #[test]
    fn line_columns_count_characters() {
        assert_eq!(line_column("ab\ncé d", 7), (2, 4));
        assert_eq!(line_column("x", 0), (1, 1));
    }

    #[test]
    fn candidates_end_with_the_installed_defaults() {
        let c = candidates(BusKind::System);
        assert_eq!(c[0], Path::new(SYSCONFDIR).join("virtbus/virtbusd.toml"));
        assert_eq!(c[1], Path::new(DATADIR).join("virtbus/virtbusd.toml"));
    }
}
