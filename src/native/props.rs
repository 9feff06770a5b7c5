//! Property values on the bus, built from the core's info snapshots. One function per object
//! kind answers `Get`, `GetAll`, `GetManagedObjects`, `InterfacesAdded` and
//! `PropertiesChanged`, so they always agree.

use zbus::{ObjectPath, Variant};

use super::{dict::Dict, paths};
use crate::core::{DomainInfo, DomainProp, SnapshotInfo, SnapshotProp};

/// Properties by name, borrowing from the info they were read from.
pub type PropMap<'a> = Dict<&'static str, Variant<'a>>;

fn path_or_root(path: Option<String>) -> Variant<'static> {
    Variant::ObjectPath(match path {
        Some(p) => ObjectPath::from_string_unchecked(p),
        None => ObjectPath::from_static_str_unchecked("/"),
    })
}

/// Every domain property, in the order of the interface XML.
pub const DOMAIN_PROPS: &[&str] = &[
    "Name",
    "UUID",
    "Title",
    "Id",
    "Driver",
    "State",
    "StateReason",
    "Active",
    "Persistent",
    "Autostart",
    "HasManagedSave",
    "VCPUs",
    "MemoryKiB",
    "CurrentSnapshot",
    "SnapshotCount",
    "Warning",
    "Job",
    "JobProgress",
];

pub fn domain_prop<'a>(info: &'a DomainInfo, name: &str) -> Option<Variant<'a>> {
    Some(match name {
        "Name" => Variant::from(info.name.as_str()),
        "UUID" => Variant::from(info.uuid.to_string()),
        "Title" => Variant::from(info.title.as_str()),
        "Id" => Variant::I32(info.id.map(|i| i as i32).unwrap_or(-1)),
        "Driver" => Variant::from(info.driver),
        "State" => Variant::from(info.status.state.as_str()),
        "StateReason" => Variant::from(info.status.reason.as_str()),
        "Active" => Variant::Bool(info.status.is_active()),
        "Persistent" => Variant::Bool(info.persistent),
        "Autostart" => Variant::Bool(info.autostart),
        "HasManagedSave" => Variant::Bool(info.managed_save),
        "VCPUs" => Variant::U32(info.vcpus),
        "MemoryKiB" => Variant::U64(info.memory_kib),
        "CurrentSnapshot" => path_or_root(
            info.current_snapshot
                .as_ref()
                .map(|n| paths::snapshot(&info.uuid, n)),
        ),
        "SnapshotCount" => Variant::U32(info.snapshot_count),
        "Warning" => Variant::from(info.warning.as_str()),
        "Job" => Variant::from(info.job),
        "JobProgress" => Variant::F64(info.job_progress),
        _ => return None,
    })
}

pub fn domain_props(info: &DomainInfo) -> PropMap<'_> {
    DOMAIN_PROPS
        .iter()
        .filter_map(|n| domain_prop(info, n).map(|v| (*n, v)))
        .collect()
}

pub fn domain_prop_name(p: DomainProp) -> &'static str {
    match p {
        DomainProp::Name => "Name",
        DomainProp::Title => "Title",
        DomainProp::Id => "Id",
        DomainProp::State => "State",
        DomainProp::StateReason => "StateReason",
        DomainProp::Active => "Active",
        DomainProp::Persistent => "Persistent",
        DomainProp::Autostart => "Autostart",
        DomainProp::ManagedSave => "HasManagedSave",
        DomainProp::Vcpus => "VCPUs",
        DomainProp::MemoryKib => "MemoryKiB",
        DomainProp::CurrentSnapshot => "CurrentSnapshot",
        DomainProp::SnapshotCount => "SnapshotCount",
        DomainProp::Warning => "Warning",
        DomainProp::Job => "Job",
        DomainProp::JobProgress => "JobProgress",
    }
}

pub const SNAPSHOT_PROPS: &[&str] = &[
    "Name",
    "Description",
    "Domain",
    "Parent",
    "CreationTime",
    "State",
    "IsCurrent",
    "Kind",
];

pub fn snapshot_prop<'a>(info: &'a SnapshotInfo, name: &str) -> Option<Variant<'a>> {
    Some(match name {
        "Name" => Variant::from(info.name.as_str()),
        "Description" => Variant::from(info.description.as_str()),
        "Domain" => path_or_root(Some(paths::domain(&info.domain))),
        "Parent" => path_or_root(
            info.parent
                .as_ref()
                .map(|p| paths::snapshot(&info.domain, p)),
        ),
        "CreationTime" => Variant::U64(info.creation_time),
        "State" => Variant::from(info.state.as_str()),
        "IsCurrent" => Variant::Bool(info.is_current),
        "Kind" => Variant::from(info.kind.as_str()),
        _ => return None,
    })
}

pub fn snapshot_props(info: &SnapshotInfo) -> PropMap<'_> {
    SNAPSHOT_PROPS
        .iter()
        .filter_map(|n| snapshot_prop(info, n).map(|v| (*n, v)))
        .collect()
}

pub fn snapshot_prop_name(p: SnapshotProp) -> &'static str {
    match p {
        SnapshotProp::Description => "Description",
        SnapshotProp::Parent => "Parent",
        SnapshotProp::CreationTime => "CreationTime",
        SnapshotProp::State => "State",
        SnapshotProp::IsCurrent => "IsCurrent",
        SnapshotProp::Kind => "Kind",
    }
}

pub const MANAGER_PROPS: &[&str] = &["Version", "Hostname", "Drivers"];

/// Every network property, in the order of the interface XML.
pub const NETWORK_PROPS: &[&str] = &[
    "Name",
    "UUID",
    "Active",
    "Persistent",
    "Autostart",
    "Bridge",
];

pub fn network_prop<'a>(info: &'a crate::network::NetworkInfo, name: &str) -> Option<Variant<'a>> {
    Some(match name {
        "Name" => Variant::from(info.name.as_str()),
        "UUID" => Variant::from(info.uuid.to_string()),
        "Active" => Variant::Bool(info.active),
        "Persistent" => Variant::Bool(info.persistent),
        "Autostart" => Variant::Bool(info.autostart),
        "Bridge" => Variant::from(info.bridge.as_str()),
        _ => return None,
    })
}

pub fn network_props(info: &crate::network::NetworkInfo) -> PropMap<'_> {
    NETWORK_PROPS
        .iter()
        .filter_map(|n| network_prop(info, n).map(|v| (*n, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::schema::Schema;

    /// The property lists here and in the shipped XML name the same properties with the
    /// same types.
    #[test]
    fn props_match_the_interface_xml() {
        let schema = Schema::load().expect("schema");
        let info = DomainInfo {
            uuid: uuid::Uuid::nil(),
            name: "n".into(),
            title: String::new(),
            id: Some(3),
            driver: "test",
            domain_type: crate::model::DomainType::Test,
            status: crate::model::state::Status::shut_off(
                crate::model::state::StateReason::Unknown,
            ),
            persistent: true,
            autostart: false,
            managed_save: false,
            vcpus: 1,
            memory_kib: 1,
            current_snapshot: Some("s".into()),
            snapshot_count: 1,
            warning: String::new(),
            owner: None,
            job: "",
            job_progress: 0.0,
        };
        let names: Vec<&str> = schema
            .domain
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, DOMAIN_PROPS);
        for (name, p) in &schema.domain.properties {
            let v = domain_prop(&info, name).expect(name);
            assert_eq!(v.value_signature().to_string(), p.sig, "{name}");
        }
        let snap = SnapshotInfo {
            domain: uuid::Uuid::nil(),
            name: "s".into(),
            description: String::new(),
            parent: None,
            creation_time: 1,
            state: "running".into(),
            is_current: true,
            kind: crate::core::SnapshotKind::Internal,
        };
        let names: Vec<&str> = schema
            .snapshot
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, SNAPSHOT_PROPS);
        for (name, p) in &schema.snapshot.properties {
            let v = snapshot_prop(&snap, name).expect(name);
            assert_eq!(v.value_signature().to_string(), p.sig, "{name}");
        }
        let names: Vec<&str> = schema
            .manager
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, MANAGER_PROPS);
    }
}
