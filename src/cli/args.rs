//! The command line, as clap reads it; also the source of the completions and the man page.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Manage virtual machines through virtbusd.
#[derive(Debug, Parser)]
#[command(name = "virtbusctl", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,

    /// Print machine-readable JSON (read commands; keys documented in the README)
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Talk to the system daemon (the default as root)
    #[arg(long, global = true, conflicts_with = "user")]
    pub system: bool,

    /// Talk to the user's own daemon on the session bus (the default for other users)
    #[arg(long, global = true)]
    pub user: bool,

    /// Talk to the daemon on a remote host over ssh, as busctl does
    #[arg(short = 'H', long = "host", value_name = "[USER@]HOST", global = true)]
    pub host: Option<String>,

    /// Connect to this D-Bus address instead (e.g. unix:path=/run/…)
    #[arg(long, value_name = "ADDRESS", global = true, conflicts_with = "host")]
    pub address: Option<String>,

    /// Never ask for a password, even on a terminal
    #[arg(long, global = true)]
    pub no_ask_password: bool,
}

/// A domain's name or UUID.
pub type DomainArg = String;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List domains (running and paused ones unless --all)
    List(ListArgs),
    /// Show a domain's properties, live statistics, addresses and warnings
    Status { domain: DomainArg },
    /// Define (or redefine) a persistent domain from an XML file ("-": standard input)
    Define { file: PathBuf },
    /// Start a transient domain from an XML file ("-": standard input)
    Create {
        file: PathBuf,
        /// Leave its CPUs paused
        #[arg(long)]
        paused: bool,
    },
    /// Edit a domain's persistent XML with $EDITOR and redefine it
    Edit { domain: DomainArg },
    /// Print a domain's XML
    Dumpxml {
        domain: DomainArg,
        /// The persistent definition rather than the running one
        #[arg(long)]
        inactive: bool,
        /// Include secrets (passwords)
        #[arg(long)]
        security_info: bool,
    },
    /// Remove a domain's persistent definition
    Undefine {
        domain: DomainArg,
        /// Also remove its managed-save image
        #[arg(long)]
        managed_save: bool,
        /// Also remove its snapshots' metadata
        #[arg(long)]
        snapshots_metadata: bool,
        /// Also remove its UEFI variable store
        #[arg(long)]
        nvram: bool,
    },
    /// Start (or restore) a domain
    Start {
        domain: DomainArg,
        /// Leave its CPUs paused
        #[arg(long)]
        paused: bool,
        /// Boot afresh, discarding a managed-save image
        #[arg(long)]
        force_boot: bool,
    },
    /// Ask the guest to shut down
    Shutdown {
        domain: DomainArg,
        /// Wait until it is off (Ctrl-C stops waiting; the guest goes on shutting down)
        #[arg(long)]
        wait: bool,
        /// How to ask: acpi or agent (VMs), initctl or signal (containers); default: the
        /// driver's choice
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
    },
    /// Ask the guest to reboot
    Reboot {
        domain: DomainArg,
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
    },
    /// Reset the domain's virtual hardware at once
    Reset { domain: DomainArg },
    /// Stop a domain at once (power off)
    Destroy {
        domain: DomainArg,
        /// Give the process a chance to exit cleanly (SIGTERM only)
        #[arg(long)]
        graceful: bool,
    },
    /// Pause a domain's CPUs
    Suspend { domain: DomainArg },
    /// Resume a paused domain
    Resume { domain: DomainArg },
    /// Turn starting at boot on or off
    Autostart { domain: DomainArg, state: OnOff },
    /// Save a running domain's state and stop it; `start` or `restore` brings it back
    Save {
        domain: DomainArg,
        /// Come back running
        #[arg(long, conflicts_with = "paused")]
        running: bool,
        /// Come back paused
        #[arg(long)]
        paused: bool,
        /// Instead of saving, discard the saved image
        #[arg(long, conflicts_with_all = ["running", "paused"])]
        remove: bool,
    },
    /// Start a domain from its managed-save image
    Restore {
        domain: DomainArg,
        #[arg(long)]
        paused: bool,
    },
    /// Attach a device (an XML file with one device element)
    AttachDevice(DeviceArgs),
    /// Detach a device (described by an XML file)
    DetachDevice(DeviceArgs),
    /// Manage snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Connect this terminal to a running domain's serial console (Ctrl-] leaves)
    Console {
        domain: DomainArg,
        /// The character device's alias (serial0, console0...; default: the first console)
        #[arg(long, value_name = "ALIAS")]
        device: Option<String>,
        /// Take the console over from another session
        #[arg(long)]
        force: bool,
    },
    /// Follow lifecycle and property events until Ctrl-C
    Events {
        /// Only this domain's events
        domain: Option<DomainArg>,
    },
    /// Print every active domain's statistics once
    Stats {
        /// Only these domains
        domains: Vec<DomainArg>,
    },
    /// A refreshing view of every domain's CPU, memory, disk and network rates
    Top {
        /// Seconds between refreshes
        #[arg(long, short = 'd', default_value_t = 2.0)]
        delay: f64,
        /// Stop after this many refreshes
        #[arg(long, short = 'n')]
        iterations: Option<u32>,
    },
    /// Manage virtual networks
    #[command(subcommand)]
    Net(NetCommand),
    /// Manage storage pools
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Manage storage volumes (named by their pool and their name)
    #[command(subcommand)]
    Vol(VolCommand),
    /// Print a shell completion script
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff)
    #[command(hide = true)]
    Manpage,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    Running,
    Paused,
    ShutOff,
    Other,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Inactive domains too
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Only domains in these states (implies --all)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub state: Vec<StateFilter>,
    /// Only domains that start at boot
    #[arg(long, conflicts_with = "no_autostart")]
    pub autostart: bool,
    /// Only domains that do not start at boot
    #[arg(long)]
    pub no_autostart: bool,
    /// Only domains with a managed-save image
    #[arg(long)]
    pub managed_save: bool,
    /// Only domains with snapshots
    #[arg(long)]
    pub with_snapshot: bool,
    /// Print names only, one a line
    #[arg(long)]
    pub name: bool,
}

#[derive(Debug, Args)]
pub struct DeviceArgs {
    pub domain: DomainArg,
    /// The device's XML ("-": standard input)
    pub file: PathBuf,
    /// Change the running domain (the default while it runs)
    #[arg(long)]
    pub live: bool,
    /// Change the persistent definition
    #[arg(long)]
    pub config: bool,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot
    Create {
        domain: DomainArg,
        /// The snapshot's name (default: the time)
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Disks only, no memory state
        #[arg(long)]
        disk_only: bool,
        /// A snapshot XML file instead of a name and description
        #[arg(long, conflicts_with_all = ["name", "description"])]
        xml: Option<PathBuf>,
    },
    /// List a domain's snapshots as a tree
    List { domain: DomainArg },
    /// Show one snapshot
    Show {
        domain: DomainArg,
        snapshot: String,
        /// Print its XML
        #[arg(long)]
        xml: bool,
    },
    /// Revert a domain to a snapshot
    Revert {
        domain: DomainArg,
        snapshot: String,
        #[arg(long, conflicts_with = "paused")]
        running: bool,
        #[arg(long)]
        paused: bool,
        /// Revert even when it is risky
        #[arg(long)]
        force: bool,
    },
    /// Delete a snapshot
    Delete {
        domain: DomainArg,
        snapshot: String,
        /// With its descendants
        #[arg(long)]
        children: bool,
        /// Its descendants only
        #[arg(long, conflicts_with = "children")]
        children_only: bool,
    },
}

/// The groups `--help` lists the commands in, in order.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("Domains", &["list", "status", "events", "stats", "top"]),
    (
        "Lifecycle",
        &[
            "start",
            "shutdown",
            "reboot",
            "reset",
            "destroy",
            "suspend",
            "resume",
            "save",
            "restore",
            "autostart",
        ],
    ),
    (
        "Definitions",
        &[
            "define",
            "create",
            "edit",
            "dumpxml",
            "undefine",
            "attach-device",
            "detach-device",
        ],
    ),
    ("Snapshots", &["snapshot"]),
    ("Networks and storage", &["net", "pool", "vol"]),
];

/// The clap command with its subcommands listed in [`GROUPS`].
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut listing = String::new();
    for (group, names) in GROUPS {
        listing.push_str(&format!("{group}:\n"));
        for name in *names {
            if let Some(sub) = cmd.find_subcommand(name) {
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                listing.push_str(&format!("  {name:<15} {about}\n"));
            }
        }
        listing.push('\n');
    }
    let template = format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{listing}\
         Options:\n{{options}}{{after-help}}"
    );
    cmd.help_template(template)
        .disable_help_subcommand(false)
        .subcommand_help_heading("Commands")
}

/// A virtual network's name.
pub type NetArg = String;
/// A storage pool's name.
pub type PoolArg = String;

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// List virtual networks (active ones unless --all)
    List {
        /// Inactive networks too
        #[arg(long, short = 'a')]
        all: bool,
        /// Print names only, one a line
        #[arg(long)]
        name: bool,
    },
    /// Show a network's properties
    Info { network: NetArg },
    /// Define (or redefine) a persistent network from an XML file ("-": standard input)
    Define { file: PathBuf },
    /// Start a transient network from an XML file ("-": standard input)
    Create { file: PathBuf },
    /// Start a network: its bridge, firewall rules and DHCP server
    Start { network: NetArg },
    /// Stop a network (a transient one is gone afterwards)
    Stop { network: NetArg },
    /// Remove a network's persistent definition
    Undefine { network: NetArg },
    /// Turn starting at boot on or off
    Autostart { network: NetArg, state: OnOff },
    /// Print a network's XML
    Dumpxml {
        network: NetArg,
        /// The persistent definition rather than the running one
        #[arg(long)]
        inactive: bool,
    },
    /// Edit a network's persistent XML with $EDITOR and redefine it
    Edit { network: NetArg },
    /// List the DHCP leases of an active network
    DhcpLeases {
        network: NetArg,
        /// Only this MAC address's
        #[arg(long)]
        mac: Option<String>,
    },
    /// Change one part of a network's definition (as `virsh net-update`)
    Update {
        network: NetArg,
        /// add-last (or add), add-first, delete, modify
        command: UpdateCommand,
        /// ip-dhcp-host or dns-host
        section: String,
        /// The element (e.g. "<host mac='…' ip='…'/>") or a file holding it
        xml: String,
        /// Change the running network
        #[arg(long)]
        live: bool,
        /// Change the persistent definition
        #[arg(long)]
        config: bool,
        /// Which <ip> element (for ip-dhcp-host; default: the first IPv4 one with DHCP)
        #[arg(long, value_name = "N")]
        ip_index: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UpdateCommand {
    #[value(alias = "add")]
    AddLast,
    AddFirst,
    Delete,
    Modify,
}

impl UpdateCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateCommand::AddLast => "add-last",
            UpdateCommand::AddFirst => "add-first",
            UpdateCommand::Delete => "delete",
            UpdateCommand::Modify => "modify",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// List storage pools (active ones unless --all)
    List {
        /// Inactive pools too
        #[arg(long, short = 'a')]
        all: bool,
        /// Print names only, one a line
        #[arg(long)]
        name: bool,
    },
    /// Show a pool's properties and sizes
    Info { pool: PoolArg },
    /// Define (or redefine) a persistent pool from an XML file ("-": standard input)
    Define { file: PathBuf },
    /// Start a transient pool from an XML file ("-": standard input)
    Create {
        file: PathBuf,
        /// Build it first
        #[arg(long)]
        build: bool,
    },
    /// Build a pool's storage (e.g. make its directory)
    Build { pool: PoolArg },
    /// Start a pool
    Start { pool: PoolArg },
    /// Stop a pool (its volumes stay where they are)
    Stop { pool: PoolArg },
    /// Rescan a pool's volumes
    Refresh { pool: PoolArg },
    /// Delete a pool's storage (e.g. remove its empty directory)
    Delete { pool: PoolArg },
    /// Remove a pool's persistent definition
    Undefine { pool: PoolArg },
    /// Turn starting at boot on or off
    Autostart { pool: PoolArg, state: OnOff },
    /// Print a pool's XML
    Dumpxml {
        pool: PoolArg,
        /// The persistent definition rather than the running one
        #[arg(long)]
        inactive: bool,
    },
}

/// A size in bytes, or with one of libvirt's units: 512M, 10G, 1.5GiB, 100KB.
#[derive(Debug, Clone, Copy)]
pub struct Size(pub u64);

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        super::size::parse(s).map(Size)
    }
}

#[derive(Debug, Args)]
pub struct VolArgs {
    /// The pool's name
    pub pool: PoolArg,
    /// The volume's name
    pub volume: String,
}

#[derive(Debug, Subcommand)]
pub enum VolCommand {
    /// List a pool's volumes
    List {
        pool: PoolArg,
        /// Print names only, one a line
        #[arg(long)]
        name: bool,
    },
    /// Show a volume's properties
    Info(VolArgs),
    /// Create a volume
    Create {
        pool: PoolArg,
        /// The new volume's name
        volume: String,
        /// Its capacity (512M, 10G, 1.5GiB; plain numbers are bytes)
        size: Size,
        /// Its format (raw, qcow2, …; default: the pool's)
        #[arg(long)]
        format: Option<String>,
        /// A backing file the new volume records its changes over (its path)
        #[arg(long, value_name = "PATH")]
        backing: Option<String>,
        /// The backing file's format
        #[arg(long, value_name = "FORMAT", requires = "backing")]
        backing_format: Option<String>,
        /// Preallocation: off, metadata, falloc, full
        #[arg(long, value_name = "MODE")]
        preallocation: Option<String>,
    },
    /// Create a volume as a copy of another in the same pool
    Clone {
        pool: PoolArg,
        /// The volume to copy
        source: String,
        /// The new volume's name
        volume: String,
        /// The copy's format (default: the source's)
        #[arg(long)]
        format: Option<String>,
    },
    /// Delete a volume and its data
    Delete(VolArgs),
    /// Overwrite a volume's data with zeros
    Wipe(VolArgs),
    /// Change a volume's capacity
    Resize {
        #[command(flatten)]
        vol: VolArgs,
        /// The new capacity, or the change with --delta
        size: Size,
        /// Add SIZE to the capacity
        #[arg(long)]
        delta: bool,
        /// Allow making it smaller (data beyond the new end is lost)
        #[arg(long)]
        shrink: bool,
        /// Allocate the new space now
        #[arg(long)]
        allocate: bool,
    },
    /// Print a volume's XML
    Dumpxml(VolArgs),
    /// Write a file's bytes into a volume
    Upload {
        #[command(flatten)]
        vol: VolArgs,
        /// The file to read ("-": standard input)
        file: PathBuf,
        /// Where in the volume to start (bytes, or with a unit)
        #[arg(long, default_value = "0")]
        offset: Size,
        /// How many bytes at most (0: all)
        #[arg(long, default_value = "0")]
        length: Size,
    },
    /// Copy a volume's bytes into a file
    Download {
        #[command(flatten)]
        vol: VolArgs,
        /// The file to write ("-": standard output)
        file: PathBuf,
        /// Where in the volume to start (bytes, or with a unit)
        #[arg(long, default_value = "0")]
        offset: Size,
        /// How many bytes at most (0: to the volume's end)
        #[arg(long, default_value = "0")]
        length: Size,
    },
}
