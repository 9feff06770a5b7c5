//! Attaching, detaching and changing devices: in the persistent definition (any driver), and
//! in a running guest where its driver can hot-plug.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Event, Result, events::lock, ops::Operation, options::DeviceOptions,
};
use crate::model::{DomainDef, devices::Device};

/// What an edit does to a device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Attach,
    Detach,
    Update,
}

impl Edit {
    fn operation(self) -> Operation {
        match self {
            Self::Attach => Operation::AttachDevice,
            Self::Detach => Operation::DetachDevice,
            Self::Update => Operation::UpdateDevice,
        }
    }
}

impl Core {
    /// Add the device `xml` describes to the running guest, the persistent definition, or
    /// both.
    pub async fn attach_device(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        opts: DeviceOptions,
    ) -> Result<()> {
        self.edit_device(dom, xml, opts, Edit::Attach).await
    }

    /// Remove the device `xml` means (a disk by target, an interface by MAC address, any
    /// other device by its whole description).
    pub async fn detach_device(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        opts: DeviceOptions,
    ) -> Result<()> {
        self.edit_device(dom, xml, opts, Edit::Detach).await
    }

    /// Replace a disk or interface with the one `xml` describes (new media, link state).
    pub async fn update_device(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        opts: DeviceOptions,
    ) -> Result<()> {
        self.edit_device(dom, xml, opts, Edit::Update).await
    }

    async fn edit_device(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        opts: DeviceOptions,
        edit: Edit,
    ) -> Result<()> {
        let dev = Device::from_xml(xml)?;
        let _job = dom.begin_job("edit devices").await?;
        let (t, live, config) = {
            let d = lock(&dom.data);
            let t =
                opts.affect
                    .resolve(&d.def.name, edit.operation(), d.status.state, d.persistent)?;
            (t, d.live.clone(), d.def.clone())
        };
        // The device as `def` has it (for detach), and `def` with the edit applied.
        let apply = |def: &DomainDef, dev: &Device| -> Result<(Device, Arc<DomainDef>)> {
            let mut def = def.clone();
            let bad = |why: String| {
                Error::InvalidArgument(format!(
                    "cannot {} domain '{}': {why}",
                    edit.operation().verb(),
                    def.name
                ))
            };
            let touched = match edit {
                Edit::Attach => def.devices.attach(dev).map(|()| dev.clone()),
                Edit::Detach => def.devices.detach(dev),
                Edit::Update => def.devices.update(dev).map(|()| dev.clone()),
            }
            .map_err(bad)?;
            def.validate()?;
            Ok((touched, Arc::new(def)))
        };
        let mut new_live = match (&live, t.live) {
            (Some(l), true) => Some(apply(l, &dev)?),
            _ => None,
        };
        // The persistent definition with the edit gets its driver's defaults again, so a
        // new device has its address (and the rest libvirt fills in) as a define gives it.
        let new_config = if t.config {
            let mut def = (*apply(&config, &dev)?.1).clone();
            dom.driver.post_parse(&mut def).await?;
            def.validate()?;
            Some(Arc::new(def))
        } else {
            None
        };
        let mut events = Vec::new();
        if let (Some((touched, _)), Some(l)) = (new_live.clone(), &live) {
            let ctx = self.ctx(dom);
            let touched = match edit {
                // the device as the guest got it: its alias and address filled in
                Edit::Attach => match dom
                    .driver
                    .attach_device(
                        &ctx,
                        &self
                            .resolved_interface(self.resolved_device(touched.clone())?)
                            .await?,
                    )
                    .await?
                {
                    Some(attached) => {
                        let (t, def) = apply(l, &attached)?;
                        new_live = Some((t.clone(), def));
                        t
                    }
                    None => touched,
                },
                Edit::Detach => {
                    dom.driver.detach_device(&ctx, &touched).await?;
                    touched
                }
                Edit::Update => {
                    dom.driver.update_device(&ctx, &touched, opts.force).await?;
                    touched
                }
            };
            let (uuid, device) = (dom.uuid, touched.name());
            match edit {
                Edit::Attach => events.push(Event::DeviceAdded { uuid, device }),
                Edit::Detach => events.push(Event::DeviceRemoved { uuid, device }),
                Edit::Update => {}
            }
        }
        if let Some(c) = &new_config {
            let mut rec = lock(&dom.data).record();
            rec.def = (**c).clone();
            self.save(rec).await?;
        }
        self.update(dom, |d| {
            if let Some((_, l)) = new_live {
                d.live = Some(l);
            }
            if let Some(c) = new_config {
                d.def = c;
            }
            ((), events)
        });
        Ok(())
    }
}
