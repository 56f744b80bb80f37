//! How links and providers are shown: one JSON shape each, the same in the
//! admin API, the CLI's `--json` output and bulk results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use serde::Serialize;
use utoipa::ToSchema;

use crate::plugin::Providers;
use crate::store::Link;
use crate::targeting::{self, Device, TargetRule, Targeting, Why};

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
    /// Targeting: the rules, localization, and every destination built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targeting: Option<TargetingView>,
}

/// A link's targeting as users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TargetingView {
    /// The rules, as given.
    pub rules: Vec<TargetRule>,
    /// Amazon localization is on.
    pub localize: bool,
    /// For a localized link: `confirmed` (the catalog said where the
    /// product is sold) or `assumed` (no catalog credentials, or it could
    /// not be reached: the same ASIN everywhere, checked again later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<&'static str>,
    /// Every destination besides the link's own; `target` numbers them as
    /// click rows and reports do (0 is the link's own).
    pub destinations: Vec<TargetView>,
}

/// One destination of a link's targeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TargetView {
    /// Its number (1-based; 0 is the link's own destination).
    pub target: u8,
    /// The provider that built it.
    pub provider: String,
    /// The marketplace it serves, if any.
    pub marketplace: Option<String>,
    /// Canonical destination.
    pub destination: String,
    /// Tracked URL template; `{click_id}` marks the per-click sub-ID.
    pub template: String,
    /// Why it exists: `rule`, `exact`, `assumed` or `search`.
    pub why: Why,
}

impl TargetingView {
    fn new(t: &Targeting) -> TargetingView {
        TargetingView {
            rules: t.rules.clone(),
            localize: t.localize,
            availability: t.availability(),
            destinations: t
                .targets
                .iter()
                .enumerate()
                .map(|(i, b)| TargetView {
                    target: (i + 1) as u8,
                    provider: b.provider.clone(),
                    marketplace: b.marketplace.clone(),
                    destination: b.destination.clone(),
                    template: format!("{}{}{}", b.prefix, crate::template::SLOT, b.suffix),
                    why: b.why,
                })
                .collect(),
        }
    }
}

/// Where a shopper from one country lands, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CountryLanding {
    /// The country (ISO 3166-1 alpha-2).
    pub country: String,
    /// The target (0: the link's own destination).
    pub target: u8,
    /// Marketplace served, if any.
    pub marketplace: Option<String>,
    /// Where the shopper lands.
    pub destination: String,
    /// `rule`, `exact`, `assumed`, `search`, `own` or `split` (an A/B
    /// split decides per click).
    pub why: Why,
}

/// A device rule: which devices go where, before any country rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeviceLanding {
    /// The device class.
    pub device: Device,
    /// The target.
    pub target: u8,
    /// Where it lands.
    pub destination: String,
}

/// The preview of a link's targeting (`GET /api/v1/links/{code}/targets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TargetsPreview {
    /// The link's code.
    pub code: String,
    /// For a localized link, whether availability was `confirmed` or `assumed`.
    pub availability: Option<&'static str>,
    /// Device rules, which come first: a visitor on such a device lands
    /// there whatever their country.
    pub devices: Vec<DeviceLanding>,
    /// Every country, in code order.
    pub countries: Vec<CountryLanding>,
}

impl TargetsPreview {
    /// The preview of a link.
    pub fn new(link: &Link) -> TargetsPreview {
        let t = link.targeting.clone().unwrap_or_default();
        let router = t.router();
        let landing = |target: u8| -> (Option<String>, String) {
            match t.targets.get(usize::from(target).wrapping_sub(1)) {
                Some(b) => (b.marketplace.clone(), b.destination.clone()),
                None => (link.marketplace.clone(), link.destination.clone()),
            }
        };
        let devices = Device::ALL
            .into_iter()
            .filter_map(|d| {
                let (target, why) = t.explain_with(&router, Some(d), *b"ZZ");
                (why == Why::Rule).then(|| DeviceLanding {
                    device: d,
                    target,
                    destination: landing(target).1,
                })
            })
            .collect();
        let countries = targeting::countries()
            .map(|c| {
                let b = c.as_bytes();
                let (target, why) = t.explain_with(&router, None, [b[0], b[1]]);
                let (marketplace, destination) = landing(target);
                CountryLanding {
                    country: c.to_owned(),
                    target,
                    marketplace,
                    destination,
                    why,
                }
            })
            .collect();
        TargetsPreview {
            code: link.code.clone(),
            availability: t.availability(),
            devices,
            countries,
        }
    }
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
            targeting: link.targeting.as_ref().map(TargetingView::new),
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
