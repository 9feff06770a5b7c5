//! Registration of running system guests with systemd-machined, so that `machinectl`,
//! `systemd-cgls` and `ps -o machine` show them, as libvirt's guests are shown.
//!
//! `CreateMachine`, not `RegisterMachine`: machined then moves the guest's process into a
//! scope of its own under `machine.slice`, so its resources are accounted apart from the
//! daemon's and no restart or stop of `virtbusd.service` can touch it. `RegisterMachine` would
//! record the daemon's own unit as the machine's, and `TerminateMachine` would then stop the
//! daemon. Only guests whose driver reports a process are registered (see
//! [`crate::drivers::Driver::leader_pid`]); the test driver has none.
//!
//! Failures never reach callers: a guest runs the same whether machined knows it or not.
//! When machined is absent the first attempt logs it once and later ones stay quiet.

use std::collections::HashMap;

use tokio::task::JoinHandle;
use uuid::Uuid;
use zbus::{Connection, DBusError as _, Variant};

use crate::{
    core::{Core, Event},
    model::{DomainType, state::Lifecycle},
};

/// The service name machined records for our machines.
pub const SERVICE: &str = "virtbus";

/// machined allows names of up to 64 characters that are valid host names.
const NAME_MAX: usize = 64;

#[zbus::proxy(
    interface = "org.freedesktop.machine1.Manager",
    default_service = "org.freedesktop.machine1",
    default_path = "/org/freedesktop/machine1"
)]
trait Machine1 {
    #[allow(clippy::too_many_arguments)]
    fn create_machine(
        &self,
        name: &str,
        id: &[u8],
        service: &str,
        class: &str,
        leader: u32,
        root_directory: &str,
        scope_properties: &[(&str, Variant<'_>)],
    ) -> zbus::Result<zbus::OwnedObjectPath>;

    fn terminate_machine(&self, name: &str) -> zbus::Result<()>;
}

/// Follow the core's events for as long as the connection lives.
pub fn spawn(conn: &Connection, core: Core) -> JoinHandle<()> {
    let events = core.events().subscribe();
    let conn = conn.clone();
    tokio::spawn(async move {
        let proxy = match Machine1Proxy::new(&conn).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot talk to systemd-machined: {e}; guests are not registered");
                return;
            }
        };
        let mut reg = Registrar {
            proxy,
            core,
            machines: HashMap::new(),
            absent_logged: false,
        };
        reg.run(events).await;
    })
}

struct Registrar {
    proxy: Machine1Proxy<'static>,
    core: Core,
    /// Machine names of the guests registered, by domain.
    machines: HashMap<Uuid, String>,
    absent_logged: bool,
}

impl Registrar {
    async fn run(&mut self, mut events: tokio::sync::mpsc::UnboundedReceiver<(u64, Event)>) {
        // Guests already running (a restarted daemon): machined may know them already.
        for dom in self.core.domains() {
            self.register(dom.uuid()).await;
        }
        while let Some((_, event)) = events.recv().await {
            match event {
                Event::Lifecycle {
                    uuid,
                    event: Lifecycle::Started(_),
                } => self.register(uuid).await,
                Event::Lifecycle {
                    uuid,
                    event: Lifecycle::Stopped(_),
                }
                | Event::DomainRemoved { uuid } => self.unregister(uuid).await,
                _ => {}
            }
        }
    }

    async fn register(&mut self, uuid: Uuid) {
        let Some(dom) = self.core.get(&uuid) else {
            return;
        };
        let Some(leader) = dom.leader_pid() else {
            return;
        };
        let info = dom.info();
        let name = machine_name(info.driver, &info.name, &uuid);
        let container = dom.domain_type() == DomainType::Lxc;
        let class = if container { "container" } else { "vm" };
        let after = Variant::from(vec!["virtbusd.service"]);
        let mut props: Vec<(&str, Variant<'_>)> = vec![("After", after)];
        if container {
            // A container manages the cgroups below its own.
            props.push(("Delegate", Variant::from(true)));
        }
        let created = self
            .proxy
            .create_machine(&name, uuid.as_bytes(), SERVICE, class, leader, "", &props)
            .await;
        match created {
            Ok(_) => tracing::info!("registered '{}' with systemd-machined as {name}", info.name),
            Err(e)
                if error_name(&e).as_deref() == Some("org.freedesktop.machine1.MachineExists") =>
            {
                tracing::debug!("systemd-machined already knows {name}");
            }
            Err(e) => {
                self.failed("register", &name, &e);
                return;
            }
        }
        self.machines.insert(uuid, name);
    }

    async fn unregister(&mut self, uuid: Uuid) {
        let Some(name) = self.machines.remove(&uuid) else {
            return;
        };
        match self.proxy.terminate_machine(&name).await {
            Ok(()) => tracing::info!("unregistered {name} from systemd-machined"),
            // Its scope emptied when the guest exited, and machined dropped it.
            Err(e)
                if error_name(&e).as_deref() == Some("org.freedesktop.machine1.NoSuchMachine") =>
            {
                tracing::debug!("systemd-machined had already dropped {name}");
            }
            Err(e) => self.failed("unregister", &name, &e),
        }
    }

    fn failed(&mut self, what: &str, name: &str, e: &zbus::Error) {
        let absent = matches!(
            error_name(e).as_deref(),
            Some(
                "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner"
            )
        );
        if !absent {
            tracing::warn!("cannot {what} {name} with systemd-machined: {e}");
        } else if !self.absent_logged {
            self.absent_logged = true;
            tracing::info!("systemd-machined is not on the bus; guests are not registered");
        }
    }
}

fn error_name(e: &zbus::Error) -> Option<String> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        zbus::Error::FDO(e) => Some(e.name().to_string()),
        _ => None,
    }
}

/// A machine name machined accepts (a host name of at most 64 characters), unique for the
/// domain: `DRIVER-NAME`, or `DRIVER-NAME-UUIDPREFIX` when NAME had to be changed, since two
/// domain names can change into the same text.
pub fn machine_name(driver: &str, name: &str, uuid: &Uuid) -> String {
    let mut clean = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (clean.is_empty() || clean.ends_with('-'))) {
            clean.push(c);
        }
    }
    let clean = clean.trim_end_matches('-');
    let prefix = format!("{driver}-");
    if clean == name && prefix.len() + clean.len() <= NAME_MAX {
        return format!("{prefix}{clean}");
    }
    let tag = &uuid.simple().to_string()[..8];
    let room = NAME_MAX - prefix.len() - 1 - tag.len();
    let body = clean.get(..room.min(clean.len())).unwrap_or("");
    let body = body.trim_end_matches('-');
    if body.is_empty() {
        format!("{prefix}{tag}")
    } else {
        format!("{prefix}{body}-{tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        let u = Uuid::parse_str("0123abcd-0000-0000-0000-000000000000").expect("uuid");
        assert_eq!(machine_name("qemu", "web1", &u), "qemu-web1");
        assert_eq!(machine_name("qemu", "my vm_2", &u), "qemu-my-vm-2-0123abcd");
        assert_eq!(machine_name("qemu", "--", &u), "qemu-0123abcd");
        assert_eq!(machine_name("lxc", "é", &u), "lxc-0123abcd");
        let long = "a".repeat(100);
        let n = machine_name("qemu", &long, &u);
        assert_eq!(n.len(), NAME_MAX);
        assert!(n.ends_with("-0123abcd"), "{n}");
        let fits = "b".repeat(NAME_MAX - 5);
        assert_eq!(machine_name("qemu", &fits, &u), format!("qemu-{fits}"));
    }
}
