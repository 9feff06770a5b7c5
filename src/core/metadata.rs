//! A domain's title, description and applications' metadata elements, read and changed as
//! libvirt's `virDomainGetMetadata`/`virDomainSetMetadata` do.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Event, Result, error::Missing, events::lock, ops::Operation,
    options::Affect,
};
use crate::model::DomainDef;

/// Which piece of metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataKind {
    Description,
    Title,
    /// An application's element, by its namespace URI.
    Element(String),
}

impl MetadataKind {
    /// libvirt's `virDomainMetadataType` value.
    pub fn code(&self) -> i32 {
        match self {
            Self::Description => 0,
            Self::Title => 1,
            Self::Element(_) => 2,
        }
    }

    /// The name the native API uses.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::Title => "title",
            Self::Element(_) => "element",
        }
    }

    /// The namespace URI of an element; empty for the others.
    pub fn uri(&self) -> &str {
        match self {
            Self::Element(u) => u,
            _ => "",
        }
    }
}

impl Core {
    /// Read a piece of metadata from the running or persistent definition.
    pub fn metadata(&self, dom: &Domain, kind: &MetadataKind, affect: Affect) -> Result<String> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        let def = d.def_for_read(affect, Operation::GetMetadata)?;
        let value = match kind {
            MetadataKind::Description => def.description.clone(),
            MetadataKind::Title => def.title.clone(),
            MetadataKind::Element(uri) => def.metadata_element_plain(uri)?,
        };
        value.ok_or_else(|| {
            Error::NotFound(
                Missing::Metadata,
                match kind {
                    MetadataKind::Element(uri) => format!(
                        "domain '{}' has no metadata element in namespace '{uri}'",
                        d.def.name
                    ),
                    k => format!("domain '{}' has no {}", d.def.name, k.name()),
                },
            )
        })
    }

    /// Set (or, with `None` or an empty value, remove) a piece of metadata. An element needs
    /// `key`, the prefix its names get in the stored XML.
    pub async fn set_metadata(
        &self,
        dom: &Arc<Domain>,
        kind: MetadataKind,
        value: Option<&str>,
        key: Option<&str>,
        affect: Affect,
    ) -> Result<()> {
        let value = value.filter(|v| !v.is_empty());
        if let (MetadataKind::Title, Some(v)) = (&kind, value)
            && v.contains('\n')
        {
            return Err(Error::InvalidArgument(
                "a title cannot contain newlines".into(),
            ));
        }
        let key = match (&kind, value, key.filter(|k| !k.is_empty())) {
            (MetadataKind::Element(_), Some(_), None) => {
                return Err(Error::InvalidArgument(
                    "a metadata element needs a key: the namespace prefix its names get".into(),
                ));
            }
            (MetadataKind::Element(_), _, k) => k.unwrap_or_default(),
            (_, _, Some(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "a key is only used with metadata elements, not with the {}",
                    kind.name()
                )));
            }
            (_, _, None) => "",
        };
        let _job = dom.begin_job("set metadata").await?;
        let (targets, live, config) = {
            let d = lock(&dom.data);
            let t = affect.resolve(
                &d.def.name,
                Operation::SetMetadata,
                d.status.state,
                d.persistent,
            )?;
            (t, d.live.clone(), d.def.clone())
        };
        let edit = |def: &Arc<DomainDef>| -> Result<Arc<DomainDef>> {
            let mut def = (**def).clone();
            match &kind {
                MetadataKind::Description => def.description = value.map(str::to_owned),
                MetadataKind::Title => def.title = value.map(str::to_owned),
                MetadataKind::Element(uri) => def.set_metadata_namespaced(uri, key, value)?,
            }
            def.validate()?;
            Ok(Arc::new(def))
        };
        let (new_live, new_config) = targets.edit(live.as_ref(), &config, edit)?;
        if let Some(def) = &new_config {
            let mut rec = lock(&dom.data).record();
            rec.def = (**def).clone();
            self.save(rec).await?;
        }
        let uuid = dom.uuid;
        self.update(dom, |d| {
            if let Some(l) = new_live {
                d.live = Some(l);
            }
            if let Some(c) = new_config {
                d.def = c;
            }
            ((), vec![Event::MetadataChanged { uuid, kind }])
        });
        Ok(())
    }
}
