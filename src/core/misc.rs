//! virsh's smaller domain commands as core operations: keys sent to the guest's keyboard,
//! lifecycle actions changed, renaming, guest power management (suspend through the agent,
//! wakeup), the dirty page rate, and launch security (which no domain here runs).

use std::sync::Arc;

use super::{
    Core, Domain, Error, Event, Result,
    events::lock,
    keys,
    ops::{DomainOp, Operation, domain_op},
    options::Affect,
};
use crate::{
    drivers::{
        StatValue, Stats,
        misc::{DirtyRate, SuspendTarget},
    },
    model::{
        DomainDef, LifecycleAction, NameKind,
        state::{DefinedDetail, DomainState, Lifecycle, UndefinedDetail},
        validate_name,
    },
};

/// Which of the guest's own events a lifecycle action answers (libvirt's
/// `virDomainLifecycle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    Poweroff,
    Reboot,
    Crash,
}

impl LifecycleEvent {
    pub fn name(self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Crash => "crash",
        }
    }

    /// Whether `action` may answer this event (core dumps only follow a crash).
    pub fn allows(self, action: LifecycleAction) -> bool {
        self == Self::Crash
            || !matches!(
                action,
                LifecycleAction::CoredumpDestroy | LifecycleAction::CoredumpRestart
            )
    }

    fn set(self, def: &mut DomainDef, action: LifecycleAction) {
        let slot = match self {
            Self::Poweroff => &mut def.on_poweroff,
            Self::Reboot => &mut def.on_reboot,
            Self::Crash => &mut def.on_crash,
        };
        *slot = Some(action);
    }
}

/// The measurements of the dirty page rate kept as statistics, as libvirt names them.
pub fn dirty_rate_stats(r: &DirtyRate) -> Stats {
    let mut out = vec![
        (
            "dirtyrate.calc_status".to_owned(),
            StatValue::I64(i64::from(r.status)),
        ),
        (
            "dirtyrate.calc_start_time".to_owned(),
            StatValue::I64(r.start_time),
        ),
        ("dirtyrate.calc_period".to_owned(), StatValue::I64(r.period)),
        (
            "dirtyrate.calc_mode".to_owned(),
            StatValue::Str(r.mode.clone()),
        ),
    ];
    if let Some(rate) = r.mib_per_sec {
        out.push((
            "dirtyrate.megabytes_per_second".to_owned(),
            StatValue::I64(rate),
        ));
    }
    out
}

impl Core {
    /// Press `codes` (of libvirt code set `codeset`) together on the guest's keyboard.
    pub async fn send_key(
        &self,
        dom: &Arc<Domain>,
        codeset: u32,
        codes: &[u32],
        hold_ms: u32,
    ) -> Result<()> {
        let qnums = qemu_keys(codeset, codes)?;
        let _job = dom.begin_job("send key").await?;
        Self::require(dom, Operation::SendKey)?;
        dom.driver.send_key(&self.ctx(dom), &qnums, hold_ms).await?;
        Ok(())
    }

    /// Change what answers the guest's power-off, reboot or crash, in the definitions
    /// `affect` names; a running guest's reboot follows the change at once.
    pub async fn set_lifecycle_action(
        &self,
        dom: &Arc<Domain>,
        event: LifecycleEvent,
        action: LifecycleAction,
        affect: Affect,
    ) -> Result<()> {
        if !event.allows(action) {
            return Err(Error::InvalidArgument(format!(
                "Lifecycle event '{}' doesn't support '{action}' action",
                event.name()
            )));
        }
        let _job = dom.begin_job("set lifecycle action").await?;
        let (targets, live, config) = {
            let d = lock(&dom.data);
            let t = affect.resolve(
                &d.def.name,
                Operation::SetLifecycleAction,
                d.status.state,
                d.persistent,
            )?;
            (t, d.live.clone(), d.def.clone())
        };
        let edit = |def: &Arc<DomainDef>| -> Result<Arc<DomainDef>> {
            let mut def = (**def).clone();
            event.set(&mut def, action);
            dom.driver.lifecycle_check(&def)?;
            Ok(Arc::new(def))
        };
        let (new_live, new_config) = targets.edit(live.as_ref(), &config, edit)?;
        if let Some(l) = &new_live {
            dom.driver.set_reboot_action(&self.ctx(dom), l).await?;
        }
        if let Some(def) = &new_config {
            let mut rec = lock(&dom.data).record();
            rec.def = (**def).clone();
            self.save(rec).await?;
        }
        self.update(dom, |d| {
            if let Some(l) = new_live {
                d.live = Some(l);
            }
            if let Some(c) = new_config {
                d.def = c;
            }
            ((), Vec::new())
        });
        Ok(())
    }

    /// Give a shut-off persistent domain another name.
    pub async fn rename(&self, dom: &Arc<Domain>, new_name: &str) -> Result<()> {
        let _job = dom.begin_job("rename").await?;
        let old = {
            let d = lock(&dom.data);
            let refuse = |m: &str| Err(Error::InvalidState(m.to_owned()));
            if d.status.is_active() {
                return refuse("cannot rename active domain");
            }
            if !d.persistent {
                return refuse("cannot rename a transient domain");
            }
            if d.managed_save.is_some() {
                return refuse("domain with a managed saved state can't be renamed");
            }
            if d.status.state != DomainState::ShutOff {
                return refuse("domain has to be shutoff before renaming");
            }
            d.def.name.clone()
        };
        if old == new_name {
            return Err(Error::InvalidState("Can't rename domain to itself".into()));
        }
        validate_name(NameKind::Domain, new_name)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let _defining = self.inner.define_lock.lock().await;
        if self.lookup(new_name).is_ok_and(|d| d.name() == new_name) {
            return Err(Error::InvalidState(format!(
                "domain with name '{new_name}' already exists"
            )));
        }
        let mut rec = lock(&dom.data).record();
        rec.def.name = new_name.to_owned();
        let def = Arc::new(rec.def.clone());
        self.save(rec).await?;
        self.rename_registered(dom, &old, new_name);
        let uuid = dom.uuid;
        self.update(dom, |d| {
            d.def = def;
            (
                (),
                vec![
                    Event::Lifecycle {
                        uuid,
                        event: Lifecycle::Undefined(UndefinedDetail::Renamed),
                    },
                    Event::Lifecycle {
                        uuid,
                        event: Lifecycle::Defined(DefinedDetail::Renamed),
                    },
                ],
            )
        });
        Ok(())
    }

    /// File the domain under its new name.
    fn rename_registered(&self, dom: &Arc<Domain>, old: &str, new: &str) {
        let mut reg = self.registry_write();
        reg.by_name.remove(old);
        reg.by_name.insert(new.to_owned(), super::Named::new(dom));
    }

    /// Ask the running guest to suspend itself to `target`.
    pub async fn pm_suspend(&self, dom: &Arc<Domain>, target: SuspendTarget) -> Result<()> {
        let _job = dom.begin_job("pm suspend").await?;
        let (live, _) = Self::require(dom, Operation::PmSuspend)?;
        dom.driver.pm_suspend(&self.ctx(dom), &live, target).await?;
        Ok(())
    }

    /// Wake a guest suspended to RAM.
    pub async fn pm_wakeup(&self, dom: &Arc<Domain>) -> Result<()> {
        let _job = dom.begin_job("pm wakeup").await?;
        Self::require(dom, Operation::PmWakeup)?;
        dom.driver.pm_wakeup(&self.ctx(dom)).await?;
        Ok(())
    }

    /// Start measuring the guest's dirty page rate for `secs` seconds (1 to 60), by `mode`.
    pub async fn dirty_rate_calc(&self, dom: &Arc<Domain>, secs: i32, mode: &str) -> Result<()> {
        let Some(secs) = u32::try_from(secs).ok().filter(|s| (1..=60).contains(s)) else {
            return Err(Error::InvalidArgument(format!(
                "seconds={secs} is invalid, please choose value within [1, 60]."
            )));
        };
        let _job = dom.begin_job("dirty rate").await?;
        Self::require(dom, Operation::DirtyRateCalc)?;
        dom.driver
            .dirty_rate_calc(&self.ctx(dom), secs, mode)
            .await?;
        Ok(())
    }

    /// The dirty page rate statistics of an active guest whose driver measures them
    /// (nothing otherwise).
    pub(crate) async fn dirty_rate_stats(&self, dom: &Arc<Domain>) -> Stats {
        if !lock(&dom.data).status.is_active() {
            return Vec::new();
        }
        match dom.driver.dirty_rate(&self.ctx(dom)).await {
            Ok(r) => dirty_rate_stats(&r),
            Err(e) => {
                tracing::debug!("no dirty rate of domain '{}': {e}", dom.name());
                Vec::new()
            }
        }
    }

    /// Whether the domain runs with launch security (AMD SEV); virtbus starts no such
    /// guest, so there is never anything to report.
    pub fn launch_security(&self, dom: &Domain) -> Result<bool> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        Ok(d.current_def().launch_security.is_some())
    }
}

/// `codes` of libvirt code set `codeset` as QEMU numbers, refused naming the code set or
/// the first key that names nothing.
fn qemu_keys(codeset: u32, codes: &[u32]) -> Result<Vec<u32>> {
    let set = keys::codeset(codeset).map_err(|e| match e {
        keys::KeyError::Unsupported(_) => Error::NotSupported(e.to_string()),
        _ => Error::InvalidArgument(e.to_string()),
    })?;
    codes
        .iter()
        .map(|c| {
            keys::to_qnum(set, *c).map_err(|_| {
                Error::Failed(format!(
                    "cannot translate keycode {c} of {} codeset to qnum keycode",
                    set.name()
                ))
            })
        })
        .collect()
}

domain_op!(
    /// Press keys (of a libvirt code set) together on the guest's keyboard, held
    /// `hold_ms` milliseconds.
    SendKey { codeset: u32, codes: Vec<u32>, hold_ms: u32 } => (), SendKey,
    |r, core, dom| core.send_key(dom, r.codeset, &r.codes, r.hold_ms).await
);
domain_op!(
    /// Change what answers the guest's power-off, reboot or crash.
    SetLifecycleAction { event: LifecycleEvent, action: LifecycleAction, affect: Affect } => (),
    SetLifecycleAction,
    |r, core, dom| core.set_lifecycle_action(dom, r.event, r.action, r.affect).await
);
domain_op!(
    /// Give a shut-off domain another name.
    Rename { name: String } => (), Rename, |r, core, dom| core.rename(dom, &r.name).await
);
domain_op!(
    /// Ask the guest to suspend itself.
    PmSuspend { target: SuspendTarget } => (), PmSuspend,
    |r, core, dom| core.pm_suspend(dom, r.target).await
);
domain_op!(
    /// Wake a guest suspended to RAM.
    PmWakeup {} => (), PmWakeup, |_r, core, dom| core.pm_wakeup(dom).await
);
domain_op!(
    /// Measure the guest's dirty page rate for `secs` seconds.
    DirtyRateCalc { secs: i32, mode: &'static str } => (), DirtyRateCalc,
    |r, core, dom| core.dirty_rate_calc(dom, r.secs, r.mode).await
);
domain_op!(
    /// Whether the domain runs with launch security.
    LaunchSecurity {} => bool, LaunchSecurity, |_r, core, dom| core.launch_security(dom)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_dumps_answer_crashes_only() {
        assert!(LifecycleEvent::Crash.allows(LifecycleAction::CoredumpRestart));
        assert!(!LifecycleEvent::Reboot.allows(LifecycleAction::CoredumpDestroy));
        assert!(LifecycleEvent::Poweroff.allows(LifecycleAction::Preserve));
    }

    #[test]
    fn keys_are_refused_by_code_set_and_value() {
        assert_eq!(qemu_keys(0, &[30, 103]).ok(), Some(vec![0x1e, 0xc8]));
        assert!(
            matches!(qemu_keys(3, &[30]), Err(Error::NotSupported(m)) if m.contains("'atset2'"))
        );
        assert!(
            matches!(qemu_keys(0, &[30, 999]), Err(Error::Failed(m)) if m.contains("keycode 999 of linux"))
        );
    }
}
