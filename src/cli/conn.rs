//! Reaching the daemon: the system or the session bus, another address, or a remote host's
//! bus through `ssh HOST systemd-stdio-bridge` (as `busctl -H` and `machinectl -H` do).

use std::{
    io::IsTerminal,
    os::{fd::OwnedFd, unix::net::UnixStream},
    process::{Child, Command, Stdio},
};

use super::{
    api::Bus,
    args::ConnArgs,
    error::{Error, Result},
};

/// Where the daemon is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    System,
    User,
    Address(String),
    /// `[USER@]HOST`, on its system bus or (with `--user`) the user's session bus.
    Remote {
        host: String,
        user_bus: bool,
    },
}

impl Target {
    pub fn from_args(a: &ConnArgs) -> Self {
        if let Some(address) = &a.address {
            return Self::Address(address.clone());
        }
        if let Some(host) = &a.host {
            return Self::Remote {
                host: host.clone(),
                user_bus: a.user,
            };
        }
        if a.system {
            Self::System
        } else if a.user {
            Self::User
        } else if nix::unistd::geteuid().is_root() {
            Self::System
        } else {
            Self::User
        }
    }

    /// Whether polkit decides on this bus and a local agent can answer for us: the local
    /// system bus, for a caller who is not root (root is always allowed).
    pub fn polkit_prompts(&self) -> bool {
        *self == Self::System && !nix::unistd::geteuid().is_root()
    }
}

/// An open connection and what keeps it alive (the ssh process of a remote one).
pub struct Connection {
    pub bus: Bus,
    ssh: Option<Child>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(mut ssh) = self.ssh.take() {
            let _ = ssh.kill();
            let _ = ssh.wait();
        }
    }
}

pub async fn connect(args: &ConnArgs) -> Result<Connection> {
    let target = Target::from_args(args);
    let (builder, ssh) = match &target {
        Target::System => (zbus::connection::Builder::system(), None),
        Target::User => (zbus::connection::Builder::session(), None),
        Target::Address(a) => (zbus::connection::Builder::address(a.as_str()), None),
        Target::Remote { host, user_bus } => {
            let (stream, child) = ssh_bridge(host, *user_bus)?;
            (zbus::connection::Builder::unix_stream(stream), Some(child))
        }
    };
    let conn = builder
        .build()
        .await
        .map_err(|e| Error::failed(format!("cannot connect to the {}: {e}", describe(&target))))?;
    // Never prompt without a terminal to answer on, nor when asked not to.
    let interactive =
        !args.no_ask_password && std::io::stdin().is_terminal() && target.polkit_prompts();
    Ok(Connection {
        bus: Bus { conn, interactive },
        ssh,
    })
}

fn describe(t: &Target) -> String {
    match t {
        Target::System => "system bus".into(),
        Target::User => "session bus".into(),
        Target::Address(a) => format!("bus at {a}"),
        Target::Remote { host, .. } => format!("bus of {host} (over ssh)"),
    }
}

/// Run `ssh -xT HOST systemd-stdio-bridge` with its standard input and output on one end of
/// a socket pair; the other end is the connection's socket.
fn ssh_bridge(host: &str, user_bus: bool) -> Result<(UnixStream, Child)> {
    let (ours, theirs) = UnixStream::pair()?;
    let theirs_out: OwnedFd = theirs.try_clone()?.into();
    let theirs_in: OwnedFd = theirs.into();
    let (user, host) = match host.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, host),
    };
    let mut cmd = Command::new("ssh");
    cmd.arg("-xT");
    if let Some(u) = user {
        cmd.arg("-l").arg(u);
    }
    cmd.arg("--").arg(host).arg("systemd-stdio-bridge");
    if user_bus {
        cmd.arg("--user");
    }
    let child = cmd
        .stdin(Stdio::from(theirs_in))
        .stdout(Stdio::from(theirs_out))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::failed(format!("cannot run ssh: {e}")))?;
    ours.set_nonblocking(true)?;
    Ok((ours, child))
}
