//! Side by side with Debian's libvirt-dbus over libvirt's test driver: the same
//! introspection, and the same answers to the same calls.

use crate::harness::{Facade, Reference, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_equals_libvirt_dbus() {
    let f = Facade::start().await;
    let r = Reference::start().await;
    python(
        "test_introspect.py",
        &[
            ("BUS_ADDRESS", &f.bus.address),
            ("REFERENCE_ADDRESS", &r.bus.address),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_agree_with_libvirt_dbus() {
    let f = Facade::start().await;
    let r = Reference::start().await;
    python(
        "test_compare.py",
        &[
            ("BUS_ADDRESS", &f.bus.address),
            ("REFERENCE_ADDRESS", &r.bus.address),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_interfaces_and_node_devices_agree_with_libvirt_dbus() {
    let f = Facade::start().await;
    let r = Reference::start().await;
    python(
        "test_hostdev.py",
        &[
            ("BUS_ADDRESS", &f.bus.address),
            ("REFERENCE_ADDRESS", &r.bus.address),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_agree_with_libvirt_dbus() {
    let f = Facade::start().await;
    let r = Reference::start().await;
    python(
        "test_network.py",
        &[
            ("BUS_ADDRESS", &f.bus.address),
            ("REFERENCE_ADDRESS", &r.bus.address),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_pools_and_volumes_agree_with_libvirt_dbus() {
    let f = Facade::start().await;
    let r = Reference::start().await;
    python(
        "test_storage.py",
        &[
            ("BUS_ADDRESS", &f.bus.address),
            ("REFERENCE_ADDRESS", &r.bus.address),
        ],
    );
}
