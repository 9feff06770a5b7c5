//! Where logs go: the journal, with priorities and fields, when systemd connected stderr to it;
//! otherwise stderr as text.
//!
//! The test is systemd's documented one: `JOURNAL_STREAM` names the device and inode of the
//! stream it connected, and it must be the one on stderr. `INVOCATION_ID` alone is not enough:
//! it is also set when a unit sends stderr to a file or a terminal.

use std::{io::IsTerminal, os::unix::fs::MetadataExt, str::FromStr};

use tracing_subscriber::{
    Layer, filter::Targets, layer::SubscriberExt, registry, util::SubscriberInitExt,
};

use tracing_journald::{Priority, PriorityMappings};

use crate::config::LogFilter;

/// Where logging went, to report once logging works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Journal,
    Stderr,
    /// Stderr, because the journal was asked for but could not be reached.
    StderrNoJournal(String),
}

/// Set up logging with `RUST_LOG` if it is set and valid, else `configured`.
pub fn init(configured: &LogFilter) -> Sink {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| Targets::from_str(&v).ok());
    let filter = from_env.unwrap_or_else(|| {
        Targets::from_str(configured.as_str()).unwrap_or_else(|_| Targets::new())
    });
    let sink = if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(journal) => {
                // The crate maps INFO to "notice"; journalctl -p and the daemon's own
                // messages mean INFO as "informational", as syslog does.
                let journal = journal.with_priority_mappings(PriorityMappings {
                    info: Priority::Informational,
                    debug: Priority::Debug,
                    ..PriorityMappings::new()
                });
                let _ = registry().with(journal.with_filter(filter)).try_init();
                return Sink::Journal;
            }
            Err(e) => Sink::StderrNoJournal(e.to_string()),
        }
    } else {
        Sink::Stderr
    };
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = registry().with(text.with_filter(filter)).try_init();
    sink
}

/// Whether fd 2 is the stream `JOURNAL_STREAM` names.
fn stderr_is_journal() -> bool {
    let Some(want) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_stream(&v))
    else {
        return false;
    };
    use std::os::fd::AsFd;
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| (m.dev(), m.ino()) == want)
}

/// `DEVICE:INODE`, both decimal.
fn parse_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_values() {
        assert_eq!(parse_stream("8:1234"), Some((8, 1234)));
        assert_eq!(parse_stream("8"), None);
        assert_eq!(parse_stream("a:1"), None);
    }
}
