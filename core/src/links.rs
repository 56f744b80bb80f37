//! Creating links: build the template through the provider, then commit the
//! link to the store before answering.

use crate::error::BuildError;
use crate::metrics;
use crate::plugin::{BuildRequest, Providers};
use crate::store::{Link, NewLink, Store, StoreError, validate_code};

/// A request to create a link.
#[derive(Debug, Clone, Default)]
pub struct CreateLink {
    /// Product URL or ASIN.
    pub input: String,
    /// Marketplace for a bare ASIN.
    pub marketplace: Option<String>,
    /// A provider to use instead of routing by host.
    pub provider: Option<String>,
    /// A custom code.
    pub code: Option<String>,
    /// The user's own name for the link.
    pub name: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Network parameters.
    pub params: Vec<(String, String)>,
}

/// Why a link could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The provider could not build a template.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The custom code is not valid.
    #[error("invalid code: {0}")]
    InvalidCode(String),
    /// The store failed (a taken code is `StoreError::Conflict`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds the template and stores the link. `source` labels the
/// `linkwright_links_created_total` metric (`cli`, `api`, `go`).
pub fn create(
    providers: &Providers,
    store: &dyn Store,
    req: CreateLink,
    source: &'static str,
) -> Result<Link, CreateError> {
    if let Some(code) = &req.code {
        validate_code(code).map_err(CreateError::InvalidCode)?;
    }
    let template = providers
        .build(&BuildRequest {
            input: &req.input,
            marketplace: req.marketplace.as_deref(),
            params: &req.params,
            provider: req.provider.as_deref(),
        })
        .inspect_err(|e| {
            if let Some(p) = &e.provider {
                metrics::plugin_error(p, e.code.as_str());
            }
        })?;
    let link = store.create_link(NewLink {
        code: req.code,
        input: req.input.trim().to_owned(),
        template,
        name: req.name,
        campaign: req.campaign,
        tags: req.tags,
        params: req.params,
        source_key: None,
        request_key: None,
    })?;
    metrics::link_created(&link.provider, source);
    Ok(link)
}
