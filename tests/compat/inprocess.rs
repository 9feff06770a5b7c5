//! `/org/libvirt/QEMU` in process: the facade over a core whose qemu and kvm domains a test
//! driver runs (the QEMU driver is another branch's), so that the QEMU connect's paths,
//! filters and wording are exercised by the same clients.

use std::sync::Arc;

use virtbus::{
    compat::{self, ConnectSpec, flags::Flavor},
    core::{Core, store::Store},
    drivers::test::TestDriver,
    model::DomainType,
    server::{activity::Activity, authz::SessionOwner},
};

use crate::{
    harness::{LIBVIRT, python},
    support::Bus,
};

async fn qemu_facade(bus: &Bus) -> (zbus::Connection, compat::Server) {
    let driver = Arc::new(TestDriver::new());
    let core = Core::new(
        vec![
            (DomainType::Kvm, driver.clone()),
            (DomainType::Qemu, driver),
        ],
        Store::memory(),
    );
    let conn = bus.connect().await;
    let server = compat::serve(
        &conn,
        vec![ConnectSpec {
            path: "/org/libvirt/QEMU",
            flavor: Flavor::Qemu,
            core,
            types: vec![DomainType::Qemu, DomainType::Kvm],
        }],
        Arc::new(SessionOwner),
        Arc::new(Activity::default()),
    )
    .await
    .expect("serve");
    conn.request_name(LIBVIRT).await.expect("name");
    (conn, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_load_sequence_on_qemu() {
    let bus = Bus::start();
    let _facade = qemu_facade(&bus).await;
    let address = bus.address.clone();
    tokio::task::spawn_blocking(move || {
        python(
            "test_cockpit.py",
            &[
                ("BUS_ADDRESS", &address),
                ("CONNECT", "/org/libvirt/QEMU"),
                ("DOMAIN_TYPE", "kvm"),
            ],
        )
    })
    .await
    .expect("client");
}

/// The same page through Cockpit's own bridge (`cockpit-bridge`), which carries its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_bridge_carries_the_machines_page() {
    let bus = Bus::start();
    let _facade = qemu_facade(&bus).await;
    let address = bus.address.clone();
    tokio::task::spawn_blocking(move || {
        python("test_cockpit_bridge.py", &[("BUS_ADDRESS", &address)])
    })
    .await
    .expect("client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_connect_speaks_as_libvirts_qemu_driver() {
    let bus = Bus::start();
    let _facade = qemu_facade(&bus).await;
    let address = bus.address.clone();
    tokio::task::spawn_blocking(move || python("test_qemu.py", &[("BUS_ADDRESS", &address)]))
        .await
        .expect("client");
}
