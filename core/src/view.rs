//! How links and providers are shown: one JSON shape each, the same in the
//! admin API, the CLI's `--json` output and bulk results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use serde::Serialize;
use utoipa::ToSchema;

use crate::plugin::Providers;
use crate::store::Link;

/// Short URLs of codes: `<base>/<code>`. The base is
/// `server.public_base_url`, else the public listener's address (known once
/// it is bound, see [`ShortUrls::bound`]).
#[derive(Debug)]
pub struct ShortUrls {
    configured: Option<String>,
    fallback: String,
    bound: OnceLock<String>,
}

impl ShortUrls {
    /// Short URLs on `public_base_url`, or else on `http://<public_addr>`.
    pub fn new(public_base_url: Option<&str>, public_addr: SocketAddr) -> ShortUrls {
        ShortUrls {
            configured: public_base_url.map(str::to_owned),
            fallback: format!("http://{public_addr}"),
            bound: OnceLock::new(),
        }
    }

    /// The public listener is bound at `addr` (a port 0 in the config is
    /// now a real port).
    pub fn bound(&self, addr: SocketAddr) {
        let _ = self.bound.set(format!("http://{addr}"));
    }

    /// The short URL of a code.
    pub fn of(&self, code: &str) -> String {
        let base = self
            .configured
            .as_ref()
            .or(self.bound.get())
            .unwrap_or(&self.fallback);
        format!("{base}/{code}")
    }
}

/// A link as users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = LinkBody)]
pub struct LinkView {
    /// Short code.
    pub code: String,
    /// Short URL on the public host.
    pub short_url: String,
    /// Provider that built the template.
    pub provider: String,
    /// Marketplace, region or advertiser key.
    pub marketplace: Option<String>,
    /// The input as given.
    pub input: String,
    /// Canonical destination.
    pub destination: String,
    /// Tracked URL template; `{click_id}` marks the per-click sub-ID.
    pub template: String,
    /// Your name for the link.
    pub name: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Network parameters.
    pub params: BTreeMap<String, String>,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Disabled links answer 410.
    pub disabled: bool,
}

impl LinkView {
    /// The view of a stored link.
    pub fn new(link: &Link, short_urls: &ShortUrls) -> LinkView {
        LinkView {
            code: link.code.clone(),
            short_url: short_urls.of(&link.code),
            provider: link.provider.clone(),
            marketplace: link.marketplace.clone(),
            input: link.input.clone(),
            destination: link.destination.clone(),
            template: link.template().display(),
            name: link.name.clone(),
            campaign: link.campaign.clone(),
            tags: link.tags.clone(),
            params: link.params.iter().cloned().collect(),
            created_ms: link.created_ms,
            disabled: link.disabled,
        }
    }
}

/// A configured provider and its status.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ProviderBody)]
pub struct ProviderView {
    /// Provider name from the config.
    pub name: String,
    /// `ok`, `poisoned` or `refused`.
    pub status: &'static str,
    /// The plugin.
    pub plugin: String,
    /// The plugin file (loaded providers, and refused ones whose file was found).
    pub file: Option<String>,
    /// Plugin version (loaded providers).
    pub version: Option<String>,
    /// ABI version (loaded providers).
    pub abi: Option<String>,
    /// Why it was refused, or why it is poisoned (`panic`: its plugin
    /// panicked; `timeout`: a call overran the time budget).
    pub reason: Option<String>,
    /// What it serves (marketplaces, advertisers, networks), as the plugin describes it.
    pub serves: serde_json::Value,
}

impl ProviderView {
    /// Every configured provider, loaded or refused, in config order.
    pub fn all(providers: &Providers) -> Vec<ProviderView> {
        let mut all: Vec<(usize, ProviderView)> = providers
            .loaded()
            .iter()
            .map(|p| {
                let lib = p.library();
                (
                    p.index,
                    ProviderView {
                        name: p.name.clone(),
                        status: if p.is_poisoned() { "poisoned" } else { "ok" },
                        plugin: lib.name.clone(),
                        file: Some(lib.path.display().to_string()),
                        version: Some(lib.version.clone()),
                        abi: Some(format!("{}.{}", lib.abi_major, lib.abi_minor)),
                        reason: p.disabled().map(|d| d.as_str().to_owned()),
                        serves: p.describe().unwrap_or(serde_json::Value::Null),
                    },
                )
            })
            .collect();
        all.extend(providers.refused().iter().map(|r| {
            (
                r.index,
                ProviderView {
                    name: r.name.clone(),
                    status: "refused",
                    plugin: r.plugin.clone(),
                    file: r.file.as_ref().map(|f| f.display().to_string()),
                    version: None,
                    abi: None,
                    reason: Some(r.error.to_string()),
                    serves: serde_json::Value::Null,
                },
            )
        }));
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, p)| p).collect()
    }
}
