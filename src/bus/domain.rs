//! `org.virtbus1.Domain`: one domain's lifecycle, XML, statistics and snapshots.

use std::{collections::HashMap, sync::Arc};

use zbus::{Message, OwnedObjectPath, Variant};

use super::{
    Call, Ctx,
    authz::{Action, Details},
    errors::{BusError, Reply},
    options::{OptionMap, Options},
    paths,
};
use crate::{
    core::{
        Domain, Error,
        options::{
            DestroyOptions, PowerMode, SnapshotCreateOptions, SnapshotListOptions, StartOptions,
            UndefineOptions, XmlOptions,
        },
    },
    drivers::StatValue,
};

fn power_mode(o: &mut Options<'_>) -> Reply<PowerMode> {
    match o.string("mode")? {
        None => Ok(PowerMode::Default),
        Some(m) => PowerMode::parse(&m).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "option 'mode' must be one of default, acpi, agent; not '{m}'"
            ))
            .into()
        }),
    }
}

pub(super) async fn call(
    ctx: &Ctx,
    call: &Call,
    dom: &Arc<Domain>,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let info = dom.info();
    let core = &ctx.core;
    // Methods whose reply is empty: parse options, authorize, act.
    let simple = |action| {
        let info = &info;
        async move { ctx.authorize_domain(call, action, info).await }
    };
    match member {
        "Start" => {
            let mut o = Options::new("Start", body.deserialize()?);
            let opts = StartOptions {
                paused: o.bool("paused")?,
                force_boot: o.bool("force-boot")?,
            };
            o.finish()?;
            simple(Action::DomainStart).await?;
            core.start(dom, opts).await?;
        }
        "Shutdown" | "Reboot" => {
            let mut o = Options::new(
                if member == "Shutdown" {
                    "Shutdown"
                } else {
                    "Reboot"
                },
                body.deserialize()?,
            );
            let mode = power_mode(&mut o)?;
            o.finish()?;
            simple(Action::DomainInitControl).await?;
            if member == "Shutdown" {
                core.shutdown(dom, mode).await?;
            } else {
                core.reboot(dom, mode).await?;
            }
        }
        "Destroy" => {
            let mut o = Options::new("Destroy", body.deserialize()?);
            let opts = DestroyOptions {
                graceful: o.bool("graceful")?,
            };
            o.finish()?;
            simple(Action::DomainStop).await?;
            core.destroy(dom, opts).await?;
        }
        "Reset" => {
            Options::new("Reset", body.deserialize()?).finish()?;
            simple(Action::DomainReset).await?;
            core.reset(dom).await?;
        }
        "Suspend" => {
            Options::new("Suspend", body.deserialize()?).finish()?;
            simple(Action::DomainSuspend).await?;
            core.suspend(dom).await?;
        }
        "Resume" => {
            Options::new("Resume", body.deserialize()?).finish()?;
            simple(Action::DomainSuspend).await?;
            core.resume(dom).await?;
        }
        "Undefine" => {
            let mut o = Options::new("Undefine", body.deserialize()?);
            let opts = UndefineOptions {
                snapshots_metadata: o.bool("snapshots-metadata")?,
                managed_save: o.bool("managed-save")?,
            };
            o.finish()?;
            simple(Action::DomainDelete).await?;
            core.undefine(dom, opts).await?;
        }
        "FSFreeze" | "FSThaw" => {
            let method = if member == "FSFreeze" {
                "FSFreeze"
            } else {
                "FSThaw"
            };
            let mut o = Options::new(method, body.deserialize()?);
            let mountpoints = o.strings("mountpoints")?;
            o.finish()?;
            simple(Action::DomainFsFreeze).await?;
            let n = if member == "FSFreeze" {
                core.fs_freeze(dom, &mountpoints).await?
            } else {
                core.fs_thaw(dom, &mountpoints).await?
            };
            ctx.signals_sent().await;
            return call.reply(&n);
        }
        "GetXML" => {
            let mut o = Options::new("GetXML", body.deserialize()?);
            let opts = XmlOptions {
                inactive: o.bool("inactive")?,
                secure: o.bool("secure")?,
            };
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            if opts.secure {
                ctx.authorize_domain(call, Action::DomainReadSecure, &info)
                    .await?;
            }
            return call.reply(&core.domain_xml(dom, opts)?);
        }
        "GetStats" => {
            Options::new("GetStats", body.deserialize()?).finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            let stats: HashMap<String, Variant<'static>> = core
                .stats(dom)
                .await?
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        StatValue::U64(n) => Variant::U64(n),
                        StatValue::I64(n) => Variant::I64(n),
                        StatValue::Str(s) => Variant::from(s),
                    };
                    (k, v)
                })
                .collect();
            return call.reply(&stats);
        }
        "CreateSnapshot" => {
            let (xml, opts): (String, OptionMap) = body.deserialize()?;
            let mut o = Options::new("CreateSnapshot", opts);
            let opts = SnapshotCreateOptions {
                disk_only: o.bool("disk-only")?,
                quiesce: o.bool("quiesce")?,
                halt: o.bool("halt")?,
                atomic: o.bool("atomic")?,
                no_metadata: o.bool("no-metadata")?,
                redefine: o.bool("redefine")?,
                current: o.bool("current")?,
                live: o.bool("live")?,
                reuse_external: o.bool("reuse-external")?,
            };
            o.finish()?;
            opts.validate()?;
            ctx.authorize_domain(call, Action::DomainSnapshot, &info)
                .await?;
            if opts.quiesce {
                ctx.authorize_domain(call, Action::DomainFsFreeze, &info)
                    .await?;
            }
            let name = core.snapshot_create(dom, &xml, opts).await?;
            ctx.signals_sent().await;
            let path = match name {
                Some(n) => paths::owned(paths::snapshot(&dom.uuid(), &n)),
                None => paths::root(),
            };
            return call.reply(&path);
        }
        "ListSnapshots" => {
            let mut o = Options::new("ListSnapshots", body.deserialize()?);
            let opts = SnapshotListOptions {
                roots: o.bool("roots")?,
                leaves: o.bool("leaves")?,
                no_leaves: o.bool("no-leaves")?,
                topological: o.bool("topological")?,
            };
            o.finish()?;
            ctx.authorize_domain(call, Action::DomainRead, &info)
                .await?;
            let uuid = dom.uuid();
            let out: Vec<OwnedObjectPath> = core
                .snapshot_list(dom, opts)?
                .iter()
                .map(|n| paths::owned(paths::snapshot(&uuid, n)))
                .collect();
            return call.reply(&out);
        }
        "LookupSnapshot" => {
            let name: String = body.deserialize()?;
            ctx.authorize(call, Action::DomainRead, &Details::snapshot(&info, &name))
                .await?;
            core.snapshot_info(dom, &name)?;
            return call.reply(&paths::owned(paths::snapshot(&dom.uuid(), &name)));
        }
        m => return Err(BusError::unknown_method(super::schema::DOMAIN_IFACE, m)),
    }
    ctx.signals_sent().await;
    call.reply_empty()
}
