//! What a running guest's hypervisor tells of it beyond its state: graphics clients, its
//! real-time clock, its balloon, removable drives' trays, and its monitor's raw events. The
//! values are libvirt's (`virDomainEventGraphicsPhase`, `…AddressType`, `…TrayChangeReason`),
//! so every front end words them alike.

/// `virDomainEventGraphicsPhase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphicsPhase {
    Connect = 0,
    Initialize = 1,
    Disconnect = 2,
}

/// `virDomainEventGraphicsAddressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    Ipv4 = 0,
    Ipv6 = 1,
    Unix = 2,
}

impl AddressFamily {
    /// QEMU's name (`ipv4`, `ipv6`, `unix`); libvirt takes an unknown one for IPv4.
    pub fn from_qemu(s: &str) -> Self {
        match s {
            "ipv6" => Self::Ipv6,
            "unix" => Self::Unix,
            _ => Self::Ipv4,
        }
    }
}

/// One end of a graphics connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsAddress {
    pub family: AddressFamily,
    pub node: String,
    pub service: String,
}

/// A graphics client connected, finished its handshake, or left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsEvent {
    pub phase: GraphicsPhase,
    pub local: GraphicsAddress,
    pub remote: GraphicsAddress,
    /// The authentication scheme (`none`, `vnc`, `sasl`…), empty when not told.
    pub auth_scheme: String,
    /// The client's identities: (`x509dname` | `saslUsername`, name).
    pub subject: Vec<(String, String)>,
}

/// A QMP event as QEMU sent it (libvirt's QEMU monitor event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorEvent {
    pub name: String,
    /// QEMU's timestamp; -1 seconds when it sent none.
    pub seconds: i64,
    pub micros: u32,
    /// The event's `data`, printed compactly in QEMU's member order; `None` without data.
    pub details: Option<String>,
}
