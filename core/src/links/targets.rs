//! A link's targeting, built when the link is made or changed: each rule's
//! destination built through the providers like the link's own (so every
//! target is a tracked template with a sub-ID slot), and Amazon
//! localization, a generated rule set: one target per marketplace that has
//! a store ID, for the countries that marketplace serves.
//!
//! Localization asks the catalog (the Amazon Creators API, behind
//! [`Catalog`]) whether the ASIN is sold in each of those marketplaces,
//! never during a redirect: at creation, with a bounded number of lookups
//! at once (the client keeps to the API's rate), and again in the
//! background every `localize.refresh_hours`. Answers are kept in the
//! store. Without credentials, or when the catalog cannot be reached, the
//! product is assumed sold everywhere (said on the link, and retried by the
//! background refresh). Where it is not sold, the shopper gets a search in
//! their store for the product's title, or the link's own store
//! (`localize.fallback`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use linkwright_model::amazon::{Region, asin_of_destination, marketplace_index};
use tracing::{info, warn};

use super::{Builder, LinkService};
use crate::clock::now_ms;
use crate::config::{Fallback, LocalizeConfig};
use crate::creators::{Catalog, CatalogError, CreatorsClient, CreatorsConfig, ItemInfo};
use crate::error::{BuildError, ErrorCode};
use crate::store::{Availability, Link, LinkUpdate, StoreError};
use crate::targeting::{
    BuiltTarget, Localized, OWN, TargetRule, Targeting, Why, check_rules, countries,
};
use crate::template::Template;

/// Catalog lookups in flight at once while a link is made.
const LOOKUPS_AT_ONCE: usize = 4;

/// Localization's settings and catalog.
#[derive(Debug, Default)]
pub struct Localizer {
    /// `[localize]` and the providers that localize.
    pub config: LocalizeConfig,
    /// The catalog; `None` without credentials (availability assumed).
    pub catalog: Option<Arc<dyn Catalog>>,
}

/// One catalog per region (each Creators API credential serves one), as
/// one [`Catalog`]: a marketplace's lookup goes to its region's.
#[derive(Debug, Default)]
pub struct RegionalCatalog {
    by_region: BTreeMap<Region, Arc<dyn Catalog>>,
}

impl RegionalCatalog {
    /// A Creators API client per configured credential.
    pub fn from_config(configs: &[CreatorsConfig]) -> Result<RegionalCatalog, String> {
        let mut by_region = BTreeMap::new();
        for c in configs {
            let region = Region::of_credential_version(&c.version)
                .ok_or_else(|| format!("unknown credential version {}", c.version))?;
            let client: Arc<dyn Catalog> = Arc::new(CreatorsClient::new(c)?);
            by_region.insert(region, client);
        }
        Ok(RegionalCatalog { by_region })
    }

    /// Whether any region has a catalog.
    pub fn is_empty(&self) -> bool {
        self.by_region.is_empty()
    }
}

impl Catalog for RegionalCatalog {
    fn lookup<'a>(
        &'a self,
        marketplace: &'a str,
        asins: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<ItemInfo>, CatalogError>> + Send + 'a>> {
        let catalog = Region::of_marketplace(marketplace).and_then(|r| self.by_region.get(&r));
        match catalog {
            Some(c) => c.lookup(marketplace, asins),
            None => Box::pin(async move {
                Err(CatalogError::Rejected(format!(
                    "no Creators API credential for the region of {marketplace}"
                )))
            }),
        }
    }
}

/// What the catalog says about the ASIN in one marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sold {
    /// Sold there (confirmed).
    Yes,
    /// Not sold there.
    No,
    /// Unknown: no catalog, or it refused (a configuration matter, not
    /// retried before the next refresh).
    Assumed,
    /// Unknown: the catalog could not be reached; asked again soon.
    Unreachable,
}

impl LinkService {
    /// The targeting for a link whose own template is `own`: `rules` (the
    /// link's, checked and built) and, if on (`localize`, else the
    /// provider's setting), Amazon localization, asking the catalog if
    /// `ask` (not for `/go`, where a visitor waits: availability is assumed
    /// there until the background refresh asks). `None` when there is
    /// nothing to route.
    pub(super) async fn targeting(
        &self,
        rules: &[TargetRule],
        localize: Option<bool>,
        own: &Template,
        ask: bool,
    ) -> Result<Option<Targeting>, BuildError> {
        let checked = check_rules(rules)?;
        let mut targeting = Targeting {
            rules: rules.to_vec(),
            ..Default::default()
        };
        for (i, rule) in checked.iter().enumerate() {
            let target = match &rule.destination {
                None => OWN,
                Some((input, marketplace)) => {
                    let template = self
                        .builder
                        .build(input, marketplace.as_deref(), &[], None, true)
                        .await
                        .map_err(|e| BuildError {
                            message: format!("targets[{i}]: {}", e.message),
                            field: Some("targets"),
                            ..e
                        })?;
                    push(&mut targeting, &template, Why::Rule)?
                }
            };
            targeting.rule_targets.push(target);
        }
        let wanted = localize.unwrap_or_else(|| {
            self.localizer
                .config
                .providers
                .contains(own.provider.as_str())
        });
        if wanted {
            match localizable(own) {
                Some(asin) => {
                    targeting.localize = true;
                    self.localize(&mut targeting, own, asin, ask).await;
                }
                // Asked for on this link: say why not. (A provider-wide
                // setting skips links it cannot apply to.)
                None if localize == Some(true) => {
                    return Err(BuildError::new(
                        ErrorCode::InvalidInput,
                        "only an Amazon product link (a /dp/<ASIN> destination) can be localized",
                    )
                    .field("localize"));
                }
                None => {}
            }
        }
        Ok((!targeting.is_empty() || targeting.localize).then_some(targeting))
    }

    /// Adds the localized targets for `asin` to `targeting`.
    async fn localize(&self, targeting: &mut Targeting, own: &Template, asin: &str, ask: bool) {
        let config = &self.localizer.config;
        let own_marketplace = own.marketplace.as_deref().unwrap_or_default();
        let configured = configured_marketplaces(&self.builder, &own.provider);
        // Country → the marketplace it goes to (not the link's own).
        let mut by_country: BTreeMap<&str, String> = BTreeMap::new();
        for country in countries() {
            let Some(m) = config
                .marketplaces(country)
                .into_iter()
                .find(|m| configured.contains(*m))
            else {
                continue;
            };
            if m != own_marketplace {
                by_country.insert(country, m.to_owned());
            }
        }
        let wanted: BTreeSet<String> = by_country.values().cloned().collect();
        let mut asked: Vec<String> = wanted.iter().cloned().collect();
        // The link's own store too: it knows the title a search needs.
        asked.push(own_marketplace.to_owned());
        let (sold, titles) = if ask {
            self.availability(asin, &asked).await
        } else {
            Default::default()
        };
        targeting.availability_assumed = wanted.iter().any(|m| {
            sold.get(m)
                .is_none_or(|s| matches!(s, Sold::Assumed | Sold::Unreachable))
        });
        targeting.retry_availability = ask
            && self.localizer.catalog.is_some()
            && wanted
                .iter()
                .any(|m| sold.get(m).is_none_or(|s| *s == Sold::Unreachable));
        targeting.checked_ms = now_ms();
        let title = titles
            .get(own_marketplace)
            .or_else(|| titles.values().next())
            .cloned();
        let mut target_of: HashMap<String, u8> = HashMap::new();
        for m in &wanted {
            let (params, why) = match sold.get(m).unwrap_or(&Sold::Assumed) {
                Sold::Yes => (Vec::new(), Why::Exact),
                Sold::Assumed | Sold::Unreachable => (Vec::new(), Why::Assumed),
                Sold::No => match (config.fallback, &title) {
                    (Fallback::Search, Some(title)) => (
                        vec![("search".to_owned(), search_text(title).to_owned())],
                        Why::Search,
                    ),
                    // Not sold, and nothing to search for: own store.
                    _ => continue,
                },
            };
            let built = self
                .builder
                .build(asin, Some(m), &params, Some(&own.provider), false)
                .await;
            match built
                .map_err(|e| e.message)
                .and_then(|t| push(targeting, &t, why).map_err(|e| e.message))
            {
                Ok(target) => {
                    target_of.insert(m.clone(), target);
                }
                Err(e) => warn!(marketplace = %m, error = %e, "localized target not built"),
            }
        }
        targeting.localized = by_country
            .into_iter()
            .filter_map(|(country, m)| {
                Some(Localized {
                    country: country.to_owned(),
                    target: *target_of.get(&m)?,
                })
            })
            .collect();
    }

    /// Whether the ASIN is sold in each marketplace, and its titles: the
    /// store's answers younger than the refresh interval, the catalog's
    /// for the rest (kept in the store). Unknown answers are `Assumed`.
    async fn availability(
        &self,
        asin: &str,
        marketplaces: &[String],
    ) -> (HashMap<String, Sold>, HashMap<String, String>) {
        let mut sold = HashMap::new();
        let mut titles = HashMap::new();
        let Some(catalog) = self.localizer.catalog.clone() else {
            return (sold, titles);
        };
        let fresh_after = now_ms() - self.localizer.config.refresh.as_millis() as i64;
        let key = asin.to_owned();
        let stored = self
            .store(move |s| s.availability(&key))
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "stored availability not read");
                Vec::new()
            });
        for a in stored.into_iter().filter(|a| a.checked_ms >= fresh_after) {
            if let Some(t) = a.title {
                titles.insert(a.marketplace.clone(), t);
            }
            sold.insert(
                a.marketplace,
                if a.available { Sold::Yes } else { Sold::No },
            );
        }
        let missing: Vec<String> = marketplaces
            .iter()
            .filter(|m| !sold.contains_key(*m))
            .cloned()
            .collect();
        let mut answers = Vec::new();
        for chunk in missing.chunks(LOOKUPS_AT_ONCE) {
            let mut lookups = tokio::task::JoinSet::new();
            for m in chunk {
                let (catalog, m, asins) = (Arc::clone(&catalog), m.clone(), vec![asin.to_owned()]);
                lookups.spawn(async move {
                    let found = catalog.lookup(&m, &asins).await;
                    (m, found)
                });
            }
            while let Some(done) = lookups.join_next().await {
                let Ok((m, found)) = done else { continue };
                match found {
                    Ok(items) => {
                        let item = items
                            .into_iter()
                            .find(|i| i.asin.eq_ignore_ascii_case(asin));
                        let available = item.as_ref().is_some_and(|i| i.available);
                        let title = item.and_then(|i| i.title);
                        if let Some(t) = &title {
                            titles.insert(m.clone(), t.clone());
                        }
                        sold.insert(m.clone(), if available { Sold::Yes } else { Sold::No });
                        answers.push(Availability {
                            asin: asin.to_owned(),
                            marketplace: m,
                            available,
                            title,
                            checked_ms: now_ms(),
                        });
                    }
                    Err(e) => {
                        let answer = match &e {
                            CatalogError::Rejected(_) => {
                                warn!(marketplace = %m, error = %e, "catalog refused the lookup; assuming the product is sold there");
                                Sold::Assumed
                            }
                            CatalogError::Unavailable(_) => {
                                info!(marketplace = %m, error = %e, "catalog unavailable; assuming the product is sold there, retrying later");
                                Sold::Unreachable
                            }
                        };
                        sold.insert(m, answer);
                    }
                }
            }
        }
        if !answers.is_empty()
            && let Err(e) = self.store(move |s| s.save_availability(&answers)).await
        {
            warn!(error = %e, "catalog answers not stored");
        }
        (sold, titles)
    }

    /// How often the background task looks for localized links to check
    /// again; `None` without a catalog (nothing to ask).
    pub fn refresh_every(&self) -> Option<std::time::Duration> {
        self.localizer
            .catalog
            .as_ref()
            .map(|_| self.localizer.config.retry)
    }

    /// Localizes again the links whose availability is older than the
    /// refresh interval or was assumed, at most `limit` of them; a link
    /// whose targets changed is updated and forgotten by the caches.
    /// Returns how many links were checked.
    pub async fn refresh_localized(&self, limit: usize) -> Result<usize, StoreError> {
        let before = now_ms() - self.localizer.config.refresh.as_millis() as i64;
        let links = self
            .store(move |s| s.localized_links(before, limit))
            .await?;
        let checked = links.len();
        for link in links {
            if let Err(e) = self.relocalize(&link).await {
                warn!(code = %link.code, error = %e, "localization not refreshed");
            }
        }
        Ok(checked)
    }

    async fn relocalize(&self, link: &Link) -> Result<(), super::LinkError> {
        let Some(old) = &link.targeting else {
            return Ok(());
        };
        let own = link.template();
        let new = self
            .targeting(&old.rules, Some(old.localize), &own, true)
            .await?;
        // The lookups took a while: if the link was changed meanwhile (new
        // rules, destination or setting), that change stands and this
        // refresh is dropped; the next one starts from it.
        let code = link.code.clone();
        let now = self.store(move |s| s.link_by_code(&code)).await?;
        let unchanged = now.as_ref().is_some_and(|n| {
            n.targeting == link.targeting
                && n.template_prefix == link.template_prefix
                && n.template_suffix == link.template_suffix
        });
        if !unchanged {
            return Ok(());
        }
        let update = LinkUpdate {
            targeting: Some(new),
            ..Default::default()
        };
        let code = link.code.clone();
        self.store(move |s| s.update_link(&code, &update)).await?;
        self.forget(&link.code);
        Ok(())
    }
}

/// Longest search text the amazon plugin takes, in bytes.
const MAX_SEARCH_TEXT: usize = 200;

/// A product title cut to what a store search takes: at most
/// [`MAX_SEARCH_TEXT`] bytes, at a word boundary where there is one.
fn search_text(title: &str) -> &str {
    let title = title.trim();
    if title.len() <= MAX_SEARCH_TEXT {
        return title;
    }
    let mut end = MAX_SEARCH_TEXT;
    while !title.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &title[..end];
    cut.rfind(' ').map_or(cut, |space| cut[..space].trim_end())
}

/// The ASIN of a link that localization can apply to: an Amazon product
/// page on a known marketplace.
fn localizable(own: &Template) -> Option<&str> {
    own.marketplace.as_deref().and_then(marketplace_index)?;
    asin_of_destination(&own.destination)
}

/// The marketplaces the provider has a store ID for (its `describe`).
fn configured_marketplaces(builder: &Builder, provider: &str) -> BTreeSet<String> {
    builder
        .providers
        .get(provider)
        .and_then(|p| p.describe())
        .and_then(|d| {
            d.get("marketplaces")?.as_array().map(|ms| {
                ms.iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Appends a built target; its index.
fn push(targeting: &mut Targeting, t: &Template, why: Why) -> Result<u8, BuildError> {
    if targeting.targets.len() >= usize::from(u8::MAX - 1) {
        return Err(BuildError::new(ErrorCode::LimitExceeded, "too many targets").field("targets"));
    }
    targeting.targets.push(BuiltTarget {
        provider: t.provider.clone(),
        destination: t.destination.clone(),
        marketplace: t.marketplace.clone(),
        prefix: t.prefix.clone(),
        suffix: t.suffix.clone(),
        why,
    });
    Ok(targeting.targets.len() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_titles_are_cut_for_a_search_at_a_word_or_char_boundary() {
        assert_eq!(search_text("  Echo Dot  "), "Echo Dot");
        let long = format!("{} tail", "word ".repeat(50));
        let cut = search_text(&long);
        assert!(
            cut.len() <= MAX_SEARCH_TEXT && cut.ends_with("word"),
            "{cut}"
        );
        let wide = "é".repeat(150);
        let cut = search_text(&wide);
        assert!(cut.len() <= MAX_SEARCH_TEXT && cut.chars().all(|c| c == 'é'));
    }
}
