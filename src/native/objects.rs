//! The standard interfaces of every object: Peer, Introspectable, Properties, and the
//! ObjectManager of the Manager object.

use std::{fmt::Write as _, sync::Arc};

use uuid::Uuid;
use zbus::{Message, ObjectPath, Variant};

use super::{
    Call, Ctx,
    authz::Details,
    dict::Dict,
    errors::{BusError, Reply},
    paths::{self, Target},
    props::{self, PropMap},
    router::OBJECT_MANAGER,
    schema::{
        DOMAIN_IFACE, HOST_INTERFACE_IFACE, MANAGER_IFACE, NETWORK_IFACE, NODE_DEVICE_IFACE,
        OBJECT_MANAGER_XML, POOL_IFACE, SNAPSHOT_IFACE, STANDARD_XML, VOLUME_IFACE,
    },
};
use crate::{
    core::{
        Domain, DomainInfo, Error,
        error::Missing,
        network_ops::{NetworkReply, NetworkRequest},
        ops::{self, Operation},
        storage_ops,
    },
    server::{exec::Exec, router::check_signature},
};

impl Ctx {
    /// The one execution path, over this front end's core.
    pub(super) fn exec(&self) -> Exec<'_> {
        Exec {
            core: &self.core,
            authz: &*self.authz,
            signalled: &self.signalled,
        }
    }

    /// Fail unless the caller may perform `op` with these details.
    pub(super) async fn authorize(
        &self,
        call: &Call,
        op: Operation,
        details: &Details,
    ) -> Reply<()> {
        Ok(self.exec().authorize(call, op, details).await?)
    }

    pub(super) async fn authorize_domain(
        &self,
        call: &Call,
        op: Operation,
        info: &DomainInfo,
    ) -> Reply<()> {
        self.authorize(call, op, &Details::domain(info)).await
    }

    /// Whether the caller may see a domain at all; lists leave out the others.
    pub(super) async fn may_read(&self, call: &Call, info: &DomainInfo) -> bool {
        self.authz.allows_everything()
            || self
                .authorize_domain(call, Operation::ReadDomain, info)
                .await
                .is_ok()
    }
}

/// The live domain behind a path.
pub(super) fn domain(ctx: &Ctx, uuid: &Uuid, path: &str) -> Reply<Arc<Domain>> {
    ctx.core.get(uuid).ok_or_else(|| {
        Error::NotFound(Missing::Domain, format!("no domain at path '{path}'")).into()
    })
}

pub(super) fn peer(call: &Call, member: &str) -> Reply<Message> {
    match member {
        "Ping" => call.reply_empty(),
        "GetMachineId" => {
            let id = crate::util::machine_id()
                .ok_or_else(|| Error::Failed("this host has no machine id".into()))?;
            call.reply(&id)
        }
        m => Err(BusError::unknown_method(super::router::PEER, m)),
    }
}

pub(super) async fn introspect(ctx: &Ctx, call: &Call, target: &Target) -> Reply<Message> {
    check_signature(call, "")?;
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    let mut children: Vec<String> = Vec::new();
    let iface = |xml: &mut String, text: &str| {
        let _ = writeln!(xml, "  {text}");
    };
    match target {
        Target::Ancestor(child) => children.push((*child).to_owned()),
        Target::Manager => {
            xml.push_str(STANDARD_XML);
            xml.push_str(OBJECT_MANAGER_XML);
            iface(&mut xml, &ctx.schema.manager.xml);
            children.push("domain".into());
            children.push("host".into());
            children.push("pool".into());
            if ctx.core.networks().is_ok() {
                children.push("network".into());
            }
        }
        Target::HostDir => children.extend(["device".to_owned(), "interface".to_owned()]),
        Target::InterfaceDir | Target::DeviceDir => {
            let (ifaces, devs) = super::hostdev::readable_objects(ctx, call).await;
            if *target == Target::InterfaceDir {
                children.extend(ifaces.iter().map(|i| crate::util::escape::escape(&i.name)));
            } else {
                children.extend(devs.iter().map(|d| crate::util::escape::escape(&d.name)));
            }
            children.sort();
        }
        Target::HostInterface(name) => {
            super::hostdev::interface(ctx, call, name).await?;
            xml.push_str(STANDARD_XML);
            iface(&mut xml, &ctx.schema.host_interface.xml);
        }
        Target::NodeDevice(name) => {
            super::hostdev::device(ctx, call, name).await?;
            xml.push_str(STANDARD_XML);
            iface(&mut xml, &ctx.schema.node_device.xml);
        }
        Target::PoolDir => {
            let pools = ctx
                .exec()
                .run_storage(&call.caller, storage_ops::ListPools {})
                .await?;
            for p in pools {
                children.push(crate::util::escape::escape(&p.name));
            }
        }
        Target::Pool(name) => {
            let req = storage_ops::GetPool { pool: name.clone() };
            let info = ctx.exec().run_storage(&call.caller, req).await?;
            xml.push_str(STANDARD_XML);
            iface(&mut xml, &ctx.schema.pool.xml);
            if info.active {
                children.push("volume".into());
            }
        }
        Target::VolumeDir(pool) => {
            let req = storage_ops::ListVolumes { pool: pool.clone() };
            for v in ctx.exec().run_storage(&call.caller, req).await? {
                children.push(crate::util::escape::escape(&v.name));
            }
        }
        Target::Volume(pool, name) => {
            let req = storage_ops::GetVolume {
                pool: pool.clone(),
                volume: name.clone(),
            };
            ctx.exec().run_storage(&call.caller, req).await?;
            xml.push_str(STANDARD_XML);
            iface(&mut xml, &ctx.schema.volume.xml);
        }
        Target::NetworkDir => {
            if let Ok(NetworkReply::List(list)) = ctx.network(call, NetworkRequest::List).await {
                children.extend(list.iter().map(|n| crate::util::escape::escape(&n.name)));
            }
        }
        Target::Network(name) => {
            ctx.network(call, NetworkRequest::Info { name: name.clone() })
                .await?;
            xml.push_str(STANDARD_XML);
            iface(&mut xml, &ctx.schema.network.xml);
        }
        Target::DomainDir => {
            for dom in ctx.core.domains() {
                if ctx.may_read(call, &dom.info()).await {
                    children.push(crate::util::escape::escape(&dom.uuid().to_string()));
                }
            }
            children.sort();
        }
        Target::Domain(uuid) => {
            let dom = domain(ctx, uuid, &paths::domain(uuid))?;
            let info = dom.info();
            ctx.authorize_domain(call, Operation::ReadDomain, &info)
                .await?;
            xml.push_str(STANDARD_XML);
            iface(&mut xml, &ctx.schema.domain.xml);
            if info.snapshot_count > 0 {
                children.push("snapshot".into());
            }
        }
        Target::SnapshotDir(uuid) => {
            let dom = domain(ctx, uuid, &paths::domain(uuid))?;
            ctx.authorize_domain(call, Operation::ReadDomain, &dom.info())
                .await?;
            let names = ctx.core.snapshot_list(&dom, Default::default())?;
            children.extend(names.iter().map(|n| crate::util::escape::escape(n)));
        }
        Target::Snapshot(uuid, name) => {
            let dom = domain(ctx, uuid, &paths::domain(uuid))?;
            ctx.authorize_domain(call, Operation::ReadDomain, &dom.info())
                .await?;
            ctx.core.snapshot_info(&dom, name)?;
            xml.push_str(STANDARD_XML);
            iface(&mut xml, &ctx.schema.snapshot.xml);
        }
        Target::Invalid | Target::Foreign => {}
    }
    for c in children {
        let _ = writeln!(xml, "  <node name=\"{c}\"/>");
    }
    xml.push_str("</node>\n");
    call.reply(&xml)
}

/// What the properties of one object's interface are read from.
pub(super) enum Source {
    Manager {
        hostname: String,
        drivers: Vec<&'static str>,
    },
    Domain(crate::core::DomainInfo),
    Snapshot(crate::core::SnapshotInfo),
    HostInterface(crate::host::interfaces::HostInterface),
    NodeDevice(crate::host::nodedev::NodeDevice),
    Pool(crate::storage::PoolInfo),
    Volume(crate::storage::VolInfo),
    Network(crate::network::NetworkInfo),
    /// The ObjectManager interface, which has no properties.
    Empty,
}

impl Source {
    pub(super) fn prop(&self, name: &str) -> Option<Variant<'_>> {
        match self {
            Self::Manager { hostname, drivers } => Some(match name {
                "Version" => Variant::from(env!("CARGO_PKG_VERSION")),
                "Hostname" => Variant::from(hostname.as_str()),
                "Drivers" => Variant::from(drivers.clone()),
                _ => return None,
            }),
            Self::Domain(i) => props::domain_prop(i, name),
            Self::Snapshot(i) => props::snapshot_prop(i, name),
            Self::HostInterface(i) => super::hostdev::interface_prop(i, name),
            Self::NodeDevice(d) => super::hostdev::device_prop(d, name),
            Self::Pool(i) => super::storage::pool_prop(i, name),
            Self::Volume(i) => super::storage::volume_prop(i, name),
            Self::Network(i) => props::network_prop(i, name),
            Self::Empty => None,
        }
    }

    pub(super) fn props(&self) -> PropMap<'_> {
        let names = match self {
            Self::Manager { .. } => props::MANAGER_PROPS,
            Self::Domain(_) => props::DOMAIN_PROPS,
            Self::Snapshot(_) => props::SNAPSHOT_PROPS,
            Self::HostInterface(_) => super::hostdev::INTERFACE_PROPS,
            Self::NodeDevice(_) => super::hostdev::DEVICE_PROPS,
            Self::Pool(_) => super::storage::POOL_PROPS,
            Self::Volume(_) => super::storage::VOLUME_PROPS,
            Self::Network(_) => props::NETWORK_PROPS,
            Self::Empty => &[],
        };
        names
            .iter()
            .filter_map(|n| self.prop(n).map(|v| (*n, v)))
            .collect()
    }
}

/// The source of one interface's properties, with the action reading them needs.
async fn read_props(ctx: &Ctx, call: &Call, target: &Target, iface: &str) -> Reply<Source> {
    match (target, iface) {
        (Target::Manager, MANAGER_IFACE) => {
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            Ok(ctx.manager_source())
        }
        (Target::Domain(uuid), DOMAIN_IFACE) => {
            let dom = domain(ctx, uuid, &paths::domain(uuid))?;
            let info = dom.info();
            ctx.authorize_domain(call, Operation::ReadDomain, &info)
                .await?;
            Ok(Source::Domain(info))
        }
        (Target::Snapshot(uuid, name), SNAPSHOT_IFACE) => {
            let dom = domain(ctx, uuid, &paths::domain(uuid))?;
            ctx.authorize_domain(call, Operation::ReadDomain, &dom.info())
                .await?;
            Ok(Source::Snapshot(ctx.core.snapshot_info(&dom, name)?))
        }
        (Target::HostInterface(name), HOST_INTERFACE_IFACE) => Ok(Source::HostInterface(
            super::hostdev::interface(ctx, call, name).await?,
        )),
        (Target::NodeDevice(name), NODE_DEVICE_IFACE) => Ok(Source::NodeDevice(
            super::hostdev::device(ctx, call, name).await?,
        )),
        (Target::Pool(name), POOL_IFACE) => {
            let req = storage_ops::GetPool { pool: name.clone() };
            Ok(Source::Pool(
                ctx.exec().run_storage(&call.caller, req).await?,
            ))
        }
        (Target::Volume(pool, name), VOLUME_IFACE) => {
            let req = storage_ops::GetVolume {
                pool: pool.clone(),
                volume: name.clone(),
            };
            Ok(Source::Volume(
                ctx.exec().run_storage(&call.caller, req).await?,
            ))
        }
        (Target::Network(name), NETWORK_IFACE) => {
            match ctx
                .network(call, NetworkRequest::Info { name: name.clone() })
                .await?
            {
                NetworkReply::Info(i) => Ok(Source::Network(i)),
                _ => Err(Error::Failed("unexpected reply from the network driver".into()).into()),
            }
        }
        (Target::Manager, OBJECT_MANAGER) => Ok(Source::Empty),
        _ => Err(BusError::Standard(
            "UnknownInterface",
            format!("this object has no interface '{iface}'"),
        )),
    }
}

/// The interface an object of this kind implements, for `GetAll("")`.
fn own_interface(target: &Target) -> Option<&'static str> {
    match target {
        Target::Manager => Some(MANAGER_IFACE),
        Target::Domain(_) => Some(DOMAIN_IFACE),
        Target::Snapshot(..) => Some(SNAPSHOT_IFACE),
        Target::HostInterface(_) => Some(HOST_INTERFACE_IFACE),
        Target::NodeDevice(_) => Some(NODE_DEVICE_IFACE),
        Target::Pool(_) => Some(POOL_IFACE),
        Target::Volume(..) => Some(VOLUME_IFACE),
        Target::Network(_) => Some(NETWORK_IFACE),
        _ => None,
    }
}

pub(super) async fn properties(
    ctx: &Ctx,
    call: &Call,
    target: &Target,
    member: &str,
) -> Reply<Message> {
    let msg = &call.msg;
    match member {
        "Get" => {
            check_signature(call, "ss")?;
            let (iface, name): (String, String) = msg.body().deserialize()?;
            let source = read_props(ctx, call, target, &iface).await?;
            let value = source.prop(&name).ok_or_else(|| {
                BusError::Standard(
                    "UnknownProperty",
                    format!("interface '{iface}' has no property '{name}'"),
                )
            })?;
            call.reply(&value)
        }
        "GetAll" => {
            check_signature(call, "s")?;
            let iface: String = msg.body().deserialize()?;
            let iface = match iface.as_str() {
                "" => own_interface(target).unwrap_or_default().to_owned(),
                _ => iface,
            };
            let source = read_props(ctx, call, target, &iface).await?;
            call.reply(&source.props())
        }
        "Set" => {
            check_signature(call, "ssv")?;
            let body = msg.body();
            let (iface, name, value): (String, String, Variant<'_>) = body.deserialize()?;
            set_property(ctx, call, target, &iface, &name, value).await
        }
        m => Err(BusError::unknown_method(super::router::PROPERTIES, m)),
    }
}

async fn set_property(
    ctx: &Ctx,
    call: &Call,
    target: &Target,
    iface: &str,
    name: &str,
    value: Variant<'_>,
) -> Reply<Message> {
    let schema_iface = match (target, iface) {
        (Target::Manager, MANAGER_IFACE) => &ctx.schema.manager,
        (Target::Domain(_), DOMAIN_IFACE) => &ctx.schema.domain,
        (Target::Snapshot(..), SNAPSHOT_IFACE) => &ctx.schema.snapshot,
        (Target::HostInterface(_), HOST_INTERFACE_IFACE) => &ctx.schema.host_interface,
        (Target::NodeDevice(_), NODE_DEVICE_IFACE) => &ctx.schema.node_device,
        (Target::Pool(_), POOL_IFACE) => &ctx.schema.pool,
        (Target::Volume(..), VOLUME_IFACE) => &ctx.schema.volume,
        (Target::Network(_), NETWORK_IFACE) => &ctx.schema.network,
        _ => {
            return Err(BusError::Standard(
                "UnknownInterface",
                format!("this object has no interface '{iface}'"),
            ));
        }
    };
    let prop = schema_iface.property(name).ok_or_else(|| {
        BusError::Standard(
            "UnknownProperty",
            format!("interface '{iface}' has no property '{name}'"),
        )
    })?;
    if !prop.writable {
        return Err(BusError::Standard(
            "PropertyReadOnly",
            format!("property '{name}' of '{iface}' is read-only"),
        ));
    }
    // A value in a further variant (`v(v(b))`) is refused like any other wrong type, as
    // options are: the property's own type is expected inside the one variant.
    match (target, name, value) {
        (Target::Domain(uuid), "Autostart", Variant::Bool(on)) => {
            let dom = domain(ctx, uuid, &paths::domain(uuid))?;
            ctx.exec()
                .run(call, &dom, ops::SetAutostart { autostart: on })
                .await?;
            call.reply_empty()
        }
        (Target::Pool(pool), "Autostart", Variant::Bool(on)) => {
            let req = crate::core::storage_ops::SetPoolAutostart {
                pool: pool.clone(),
                autostart: on,
            };
            ctx.exec().run_storage(&call.caller, req).await?;
            call.reply_empty()
        }
        (Target::Network(n), "Autostart", Variant::Bool(on)) => {
            ctx.network(
                call,
                NetworkRequest::SetAutostart {
                    name: n.clone(),
                    autostart: on,
                },
            )
            .await?;
            call.reply_empty()
        }
        (_, _, v) => Err(BusError::invalid_args(format!(
            "property '{name}' has type '{}', not '{}'",
            prop.sig,
            v.value_signature()
        ))),
    }
}

pub(super) async fn managed_objects(ctx: &Ctx, call: &Call) -> Reply<Message> {
    // Read everything first, then serialize borrowing from it.
    let mut domains = Vec::new();
    let mut snapshots = Vec::new();
    for dom in ctx.core.domains() {
        let info = dom.info();
        if !ctx.may_read(call, &info).await {
            continue;
        }
        if info.snapshot_count > 0 {
            for name in ctx
                .core
                .snapshot_list(&dom, Default::default())
                .unwrap_or_default()
            {
                if let Ok(s) = ctx.core.snapshot_info(&dom, &name) {
                    snapshots.push((paths::snapshot(&info.uuid, &name), s));
                }
            }
        }
        domains.push((paths::domain(&info.uuid), info));
    }
    let (ifaces, devs) = super::hostdev::readable_objects(ctx, call).await;
    let host_paths: Vec<String> = ifaces
        .iter()
        .map(|i| paths::host_interface(&i.name))
        .chain(devs.iter().map(|d| paths::node_device(&d.name)))
        .collect();
    // networks the caller may read (all or none: reading networks is one permission)
    let networks = match ctx.network(call, NetworkRequest::List).await {
        Ok(NetworkReply::List(l)) => l,
        _ => Vec::new(),
    };
    let network_paths: Vec<String> = networks.iter().map(|n| paths::network(&n.name)).collect();
    let mut out: Dict<ObjectPath<'_>, Dict<&str, PropMap<'_>>> = Dict::new();
    for (path, info) in network_paths.iter().zip(&networks) {
        out.push(
            ObjectPath::from_str_unchecked(path),
            Dict(vec![(NETWORK_IFACE, props::network_props(info))]),
        );
    }
    for (path, info) in &domains {
        out.push(
            ObjectPath::from_str_unchecked(path),
            Dict(vec![(DOMAIN_IFACE, props::domain_props(info))]),
        );
    }
    for (path, info) in &snapshots {
        out.push(
            ObjectPath::from_str_unchecked(path),
            Dict(vec![(SNAPSHOT_IFACE, props::snapshot_props(info))]),
        );
    }
    let (iface_paths, dev_paths) = host_paths.split_at(ifaces.len());
    for (path, i) in iface_paths.iter().zip(&ifaces) {
        out.push(
            ObjectPath::from_str_unchecked(path),
            Dict(vec![(
                HOST_INTERFACE_IFACE,
                super::hostdev::interface_props(i),
            )]),
        );
    }
    for (path, d) in dev_paths.iter().zip(&devs) {
        out.push(
            ObjectPath::from_str_unchecked(path),
            Dict(vec![(NODE_DEVICE_IFACE, super::hostdev::device_props(d))]),
        );
    }
    let (pools, volumes) = super::storage::visible(ctx, call).await;
    for (path, info) in &pools {
        out.push(
            ObjectPath::from_str_unchecked(path),
            Dict(vec![(POOL_IFACE, super::storage::pool_props(info))]),
        );
    }
    for (path, info) in &volumes {
        out.push(
            ObjectPath::from_str_unchecked(path),
            Dict(vec![(VOLUME_IFACE, super::storage::volume_props(info))]),
        );
    }
    call.reply(&out)
}

impl Ctx {
    pub(super) fn manager_source(&self) -> Source {
        Source::Manager {
            hostname: super::hostname::read(),
            drivers: self.core.driver_names(),
        }
    }
}
