//! `org.virtbus1.Network`: one virtual network's methods. Every call is a
//! [`NetworkRequest`] through the one execution path, which authorizes it.

use std::collections::HashMap;

use zbus::{Message, Variant};

use super::{
    Call, Ctx,
    errors::{BusError, Reply},
    options::{OptionMap, Options},
};
use crate::core::{
    Error,
    network_ops::{NetworkReply, NetworkRequest},
};
use crate::network::dnsmasq::Lease;

impl Ctx {
    /// Runs a network request for the caller of `call`; a change replies only once its
    /// signals are out.
    pub(super) async fn network(&self, call: &Call, req: NetworkRequest) -> Reply<NetworkReply> {
        let changes = req.operation() != crate::core::ops::Operation::ReadNetwork;
        let out = self.exec().run_network(&call.caller, req).await?;
        if changes {
            self.network_signals_sent().await;
        }
        Ok(out)
    }
}

fn lease_dict(l: &Lease) -> HashMap<&'static str, Variant<'static>> {
    let mut m: HashMap<&'static str, Variant<'static>> = HashMap::new();
    m.insert("interface", Variant::from(l.iface.clone()));
    m.insert("expiry-time", Variant::I64(l.expiry));
    m.insert(
        "type",
        Variant::from(if l.ip.is_ipv4() { "ipv4" } else { "ipv6" }),
    );
    m.insert("address", Variant::from(l.ip.to_string()));
    m.insert("prefix", Variant::U32(u32::from(l.prefix)));
    if let Some(mac) = l.mac {
        m.insert("mac", Variant::from(mac.to_string()));
    }
    for (k, v) in [
        ("iaid", &l.iaid),
        ("hostname", &l.hostname),
        ("client-id", &l.client_id),
    ] {
        if let Some(v) = v {
            m.insert(k, Variant::from(v.clone()));
        }
    }
    m
}

pub(super) async fn call(ctx: &Ctx, call: &Call, name: &str, member: &str) -> Reply<Message> {
    let name = name.to_owned();
    let body = call.msg.body();
    let unexpected = || Error::Failed("unexpected reply from the network driver".into());
    match member {
        "Start" => {
            ctx.network(call, NetworkRequest::Start { name }).await?;
            call.reply_empty()
        }
        "Stop" => {
            ctx.network(call, NetworkRequest::Stop { name }).await?;
            call.reply_empty()
        }
        "Undefine" => {
            ctx.network(call, NetworkRequest::Undefine { name }).await?;
            call.reply_empty()
        }
        "GetXML" => {
            let opts: OptionMap = body.deserialize()?;
            let mut o = Options::new("GetXML", opts);
            let inactive = o.bool("inactive")?;
            o.finish()?;
            match ctx
                .network(call, NetworkRequest::GetXml { name, inactive })
                .await?
            {
                NetworkReply::Xml(x) => call.reply(&x),
                _ => Err(unexpected().into()),
            }
        }
        "Update" => {
            let (command, section, xml, opts): (String, String, String, OptionMap) =
                body.deserialize()?;
            let mut o = Options::new("Update", opts);
            let live = o.bool("live")?;
            let config = o.bool("config")?;
            let ip_index = o.u32("ip-index")?.map(|i| i as usize);
            o.finish()?;
            let command = command
                .parse()
                .map_err(|e: String| Error::InvalidArgument(format!("command '{command}': {e}")))?;
            let section = section
                .parse()
                .map_err(|e: String| Error::InvalidArgument(format!("section '{section}': {e}")))?;
            ctx.network(
                call,
                NetworkRequest::Update {
                    name,
                    command,
                    section,
                    xml,
                    live,
                    config,
                    ip_index,
                },
            )
            .await?;
            call.reply_empty()
        }
        "GetDHCPLeases" => {
            let opts: OptionMap = body.deserialize()?;
            let mut o = Options::new("GetDHCPLeases", opts);
            let mac = o.string("mac")?;
            o.finish()?;
            match ctx
                .network(call, NetworkRequest::Leases { name, mac })
                .await?
            {
                NetworkReply::Leases(l) => {
                    let out: Vec<_> = l.iter().map(lease_dict).collect();
                    call.reply(&out)
                }
                _ => Err(unexpected().into()),
            }
        }
        m => Err(BusError::unknown_method(super::schema::NETWORK_IFACE, m)),
    }
}
