//! Authorization through polkit, against the real caller of each method.
//!
//! polkitd serializes its checks and costs about 1.5 ms each, so definite answers are cached
//! per (caller, action, details); a caller's entries go when its name leaves the bus, and all of
//! them on polkit's `Changed` signal or when polkitd restarts. Identical checks in flight are
//! made once. Calls to polkitd are bounded well below dbus-daemon's 128 pending replies per
//! connection. When polkitd is not on the bus, only root is allowed, and the log says why.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tokio::sync::{Semaphore, watch};
use zbus::{Connection, export::futures_core::Stream};
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

use super::authz::{Action, Authorizer, Caller, Denied, Details, Peer};
use crate::util::lock;

/// How long a cached decision is trusted.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most decisions kept; past it, expired ones go, then the oldest caller's.
const CACHE_MAX: usize = 16_384;
/// Most checks sent to polkitd at once.
const MAX_IN_FLIGHT: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Denied,
    /// Could be allowed after the user authenticates.
    Challenge,
}

type Decisions = HashMap<(Action, Details), (Verdict, Instant)>;
type FlightKey = (String, Action, Details, bool);

pub struct Polkit {
    authority: AuthorityProxy<'static>,
    dbus: zbus::fdo::DBusProxy<'static>,
    cache: Option<Mutex<Cache>>,
    in_flight: Mutex<HashMap<FlightKey, watch::Receiver<Option<Verdict>>>>,
    slots: Semaphore,
    uids: Mutex<HashMap<String, u32>>,
    polkit_missing_logged: AtomicBool,
}

#[derive(Default)]
struct Cache {
    by_caller: HashMap<String, Decisions>,
    len: usize,
}

impl Cache {
    fn get(&self, sender: &str, key: &(Action, Details)) -> Option<Verdict> {
        let (v, at) = self.by_caller.get(sender)?.get(key)?;
        (at.elapsed() < CACHE_TTL).then_some(*v)
    }

    fn put(&mut self, sender: &str, key: (Action, Details), v: Verdict) {
        if self.len >= CACHE_MAX {
            self.prune();
        }
        let entries = self.by_caller.entry(sender.to_owned()).or_default();
        if entries.insert(key, (v, Instant::now())).is_none() {
            self.len += 1;
        }
    }

    fn prune(&mut self) {
        for entries in self.by_caller.values_mut() {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        self.by_caller.retain(|_, e| !e.is_empty());
        self.len = self.by_caller.values().map(HashMap::len).sum();
        while self.len >= CACHE_MAX {
            let Some(oldest) = self
                .by_caller
                .iter()
                .filter_map(|(k, e)| {
                    e.values()
                        .map(|(_, at)| *at)
                        .min()
                        .map(|at| (at, k.clone()))
                })
                .min()
                .map(|(_, k)| k)
            else {
                break;
            };
            self.forget(&oldest);
        }
    }

    fn forget(&mut self, sender: &str) {
        if let Some(e) = self.by_caller.remove(sender) {
            self.len -= e.len();
        }
    }

    fn clear(&mut self) {
        self.by_caller.clear();
        self.len = 0;
    }
}

impl Polkit {
    /// An authorizer over the system bus connection `conn`; `cache` turns the decision cache
    /// on (off only to measure what it saves).
    pub async fn new(conn: &Connection, cache: bool) -> zbus::Result<Arc<Self>> {
        let authority = AuthorityProxy::new(conn).await?;
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let me = Arc::new(Self {
            authority,
            dbus,
            cache: cache.then(|| Mutex::new(Cache::default())),
            in_flight: Mutex::new(HashMap::new()),
            slots: Semaphore::new(MAX_IN_FLIGHT),
            uids: Mutex::new(HashMap::new()),
            polkit_missing_logged: AtomicBool::new(false),
        });
        me.clone().watch().await?;
        Ok(me)
    }

    /// Forget what no longer holds: a caller's decisions when it leaves the bus, everything
    /// when polkit's rules or polkitd itself change.
    async fn watch(self: Arc<Self>) -> zbus::Result<()> {
        let mut owners = self.dbus.receive_name_owner_changed().await?;
        let mut changed = self.authority.receive_changed().await?;
        let weak = Arc::downgrade(&self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(sig) = next(&mut owners) => {
                        let Some(me) = weak.upgrade() else { break };
                        let Ok(args) = sig.args() else { continue };
                        let name = args.name().as_str();
                        if name == "org.freedesktop.PolicyKit1" {
                            me.clear("polkitd changed owner");
                        } else if name.starts_with(':') && args.new_owner().is_none() {
                            if let Some(c) = &me.cache {
                                lock(c).forget(name);
                            }
                            lock(&me.uids).remove(name);
                        }
                    }
                    Some(_) = next(&mut changed) => {
                        let Some(me) = weak.upgrade() else { break };
                        me.clear("polkit's actions or rules changed");
                    }
                    else => break,
                }
            }
        });
        Ok(())
    }

    fn clear(&self, why: &str) {
        if let Some(c) = &self.cache {
            lock(c).clear();
            tracing::debug!("authorization cache cleared: {why}");
        }
    }

    async fn uid(&self, caller: &Caller) -> Option<u32> {
        if let Peer::Process { uid, .. } = caller.peer {
            return Some(uid);
        }
        if let Some(u) = lock(&self.uids).get(&caller.sender) {
            return Some(*u);
        }
        let name = zbus::names::BusName::try_from(caller.sender.as_str()).ok()?;
        let uid = self.dbus.get_connection_unix_user(name).await.ok()?;
        lock(&self.uids).insert(caller.sender.clone(), uid);
        Some(uid)
    }

    /// Ask polkitd; `None` when it cannot be asked.
    async fn ask(&self, caller: &Caller, action: Action, details: &Details) -> Option<Verdict> {
        let _slot = self.slots.acquire().await.ok()?;
        let subject = match &caller.peer {
            Peer::Bus(msg) => Subject::new_for_message_header(&msg.header()),
            Peer::Process {
                pid,
                start_time,
                uid,
            } => Subject::new_for_pid(*pid, Some(*start_time), Some(*uid)),
        };
        let subject = match subject {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot name the caller to polkit: {e:?}");
                return Some(Verdict::Denied);
            }
        };
        let owner_name;
        let owner_uid;
        let mut map: HashMap<&str, &str> = HashMap::new();
        for (k, v) in [
            ("driver", &details.driver),
            ("domain_name", &details.domain_name),
            ("domain_uuid", &details.domain_uuid),
            ("snapshot_name", &details.snapshot_name),
            ("pool_name", &details.pool_name),
            ("volume_name", &details.volume_name),
            ("network_name", &details.network_name),
        ] {
            if let Some(v) = v {
                map.insert(k, v);
            }
        }
        if let Some(owner) = details.domain_owner {
            owner_uid = owner.map(|u| u.to_string()).unwrap_or_default();
            owner_name = owner.and_then(user_name).unwrap_or_default();
            map.insert("domain_owner", &owner_name);
            map.insert("domain_owner_uid", &owner_uid);
        }
        let vol_owner_name;
        let vol_owner_uid;
        if let Some(owner) = details.volume_owner {
            vol_owner_uid = owner.map(|u| u.to_string()).unwrap_or_default();
            vol_owner_name = owner.and_then(user_name).unwrap_or_default();
            map.insert("volume_owner", &vol_owner_name);
            map.insert("volume_owner_uid", &vol_owner_uid);
        }
        let flags = if caller.interactive {
            CheckAuthorizationFlags::ALLOW_USER_INTERACTION
        } else {
            CheckAuthorizationFlags::empty()
        };
        match self
            .authority
            .check_authorization(&subject, action.id(), &map, flags, "")
            .await
        {
            Ok(r) => {
                self.polkit_missing_logged.store(false, Ordering::Relaxed);
                Some(if r.is_authorized {
                    Verdict::Allowed
                } else if r.is_challenge {
                    Verdict::Challenge
                } else {
                    Verdict::Denied
                })
            }
            Err(e) => {
                if !self.polkit_missing_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "polkit cannot be asked ({e}); until it can, only root is authorized"
                    );
                }
                None
            }
        }
    }

    async fn decide(&self, caller: &Caller, action: Action, details: &Details) -> Verdict {
        let key = (action, details.clone());
        if let Some(c) = &self.cache
            && action.cacheable()
            && let Some(v) = lock(c).get(&caller.sender, &key)
        {
            return v;
        }
        let flight: FlightKey = (
            caller.sender.clone(),
            action,
            details.clone(),
            caller.interactive,
        );
        let joined = {
            let mut f = lock(&self.in_flight);
            match f.get(&flight) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    f.insert(flight.clone(), rx);
                    Ok(tx)
                }
            }
        };
        let tx = match joined {
            Ok(tx) => tx,
            Err(mut rx) => {
                return match rx.wait_for(Option::is_some).await {
                    Ok(v) => v.unwrap_or(Verdict::Denied),
                    Err(_) => Verdict::Denied,
                };
            }
        };
        let verdict = match self.ask(caller, action, details).await {
            Some(v) => {
                if v != Verdict::Challenge
                    && action.cacheable()
                    && let Some(c) = &self.cache
                {
                    lock(c).put(&caller.sender, key, v);
                }
                v
            }
            None if self.uid(caller).await == Some(0) => Verdict::Allowed,
            None => Verdict::Denied,
        };
        lock(&self.in_flight).remove(&flight);
        let _ = tx.send(Some(verdict));
        verdict
    }
}

#[async_trait]
impl Authorizer for Polkit {
    async fn check(
        &self,
        caller: &Caller,
        action: Action,
        details: &Details,
    ) -> Result<(), Denied> {
        let what = match (
            &details.domain_name,
            &details.pool_name,
            &details.volume_name,
            &details.network_name,
        ) {
            (Some(n), ..) => format!("{} on domain '{n}'", action.id()),
            (None, Some(p), Some(v), _) => {
                format!("{} on volume '{v}' of storage pool '{p}'", action.id())
            }
            (None, Some(p), None, _) => format!("{} on storage pool '{p}'", action.id()),
            (None, None, _, Some(n)) => format!("{} on network '{n}'", action.id()),
            (None, None, ..) => action.id().to_owned(),
        };
        match self.decide(caller, action, details).await {
            Verdict::Allowed => Ok(()),
            Verdict::Challenge if !caller.interactive => Err(Denied::InteractionRequired(what)),
            Verdict::Challenge | Verdict::Denied => Err(Denied::NotAuthorized(what)),
        }
    }

    async fn owner_uid(&self, caller: &Caller) -> Option<u32> {
        self.uid(caller).await.filter(|u| *u != 0)
    }

    fn forget(&self, sender: &str) {
        if let Some(c) = &self.cache {
            lock(c).forget(sender);
        }
    }
}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> (Action, Details) {
        (
            Action::DomainRead,
            Details {
                domain_name: Some(n.into()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn cache_keys_by_caller_action_and_details() {
        let mut c = Cache::default();
        c.put(":1.1", key("a"), Verdict::Allowed);
        c.put(":1.1", key("b"), Verdict::Denied);
        c.put(":1.2", key("a"), Verdict::Denied);
        assert_eq!(c.get(":1.1", &key("a")), Some(Verdict::Allowed));
        assert_eq!(c.get(":1.1", &key("b")), Some(Verdict::Denied));
        assert_eq!(c.get(":1.2", &key("a")), Some(Verdict::Denied));
        assert_eq!(c.get(":1.3", &key("a")), None);
        let other_action = (Action::DomainStart, key("a").1);
        assert_eq!(c.get(":1.1", &other_action), None);
        assert_eq!(c.len, 3);
        c.forget(":1.1");
        assert_eq!(c.get(":1.1", &key("a")), None);
        assert_eq!(c.len, 1);
        c.clear();
        assert_eq!(c.get(":1.2", &key("a")), None);
        assert_eq!(c.len, 0);
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = Cache::default();
        for i in 0..CACHE_MAX + 10 {
            c.put(
                &format!(":1.{}", i % 100),
                key(&i.to_string()),
                Verdict::Allowed,
            );
        }
        assert!(c.len < CACHE_MAX + 10, "{}", c.len);
        assert_eq!(c.len, c.by_caller.values().map(HashMap::len).sum::<usize>());
    }
}
