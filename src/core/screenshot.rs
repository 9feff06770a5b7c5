//! An image of a running guest's screen, taken by its driver.

use std::sync::Arc;

use super::{Core, Domain, Error, Result, ops::Operation};
use crate::drivers::Screenshot;

impl Core {
    /// Screen `screen` of the guest's display: the guest needs a video device, and the
    /// screen must be one of its first video device's heads (as libvirt checks).
    pub async fn screenshot(&self, dom: &Arc<Domain>, screen: u32) -> Result<Screenshot> {
        let (live, _) = Self::require(dom, Operation::Screenshot)?;
        let Some(video) = live.devices.videos.first() else {
            return Err(Error::InvalidState(format!(
                "domain '{}' has no screens to take a screenshot from",
                live.name
            )));
        };
        let heads = video.model.as_ref().and_then(|m| m.heads).unwrap_or(1);
        if screen >= heads {
            return Err(Error::InvalidArgument(format!(
                "domain '{}' has no screen with index {screen}",
                live.name
            )));
        }
        Ok(dom.driver.screenshot(&self.ctx(dom), screen).await?)
    }
}
