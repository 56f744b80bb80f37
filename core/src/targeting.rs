//! Targeting: where a click goes, by the visitor's device class and country
//! and an A/B split, as rules compiled at link creation into a small table
//! that the redirect reads with no allocation, lock or lookup elsewhere.
//!
//! A link's rules (`targets` in the API) are evaluated in a fixed order,
//! as Dub and Shlink order theirs: the first **device** rule that matches,
//! else the first **country** rule that matches (explicit rules before the
//! ones Amazon localization generates), else the **A/B split**, else the
//! link's own destination. Every destination is a tracked template built
//! through the providers when the link is made ([`Targeting::targets`]);
//! target 0 is the link's own template, target `i` is `targets[i - 1]`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::classify::Device;
use crate::error::{BuildError, ErrorCode};

/// Most rules a link may carry.
pub const MAX_RULES: usize = 50;

/// The target index of the link's own template.
pub const OWN: u8 = 0;

/// "No target chosen" in a compiled table.
const NONE: u8 = u8::MAX;

/// Every ISO 3166-1 alpha-2 code, and `XK` (Kosovo, used by the geo
/// databases), sorted.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY \
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

/// Named groups of countries a rule may use instead of listing them.
const GROUPS: &[(&str, &str)] = &[
    (
        "EU",
        "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE",
    ),
    (
        "EEA",
        "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO",
    ),
    ("DACH", "DE AT CH"),
    ("NORDICS", "DK FI IS NO SE"),
];

/// Every country code targeting knows, upper case.
pub fn countries() -> impl Iterator<Item = &'static str> {
    COUNTRIES.split_ascii_whitespace()
}

/// Whether `code` is a known country code (upper case).
pub fn is_country(code: &str) -> bool {
    code.len() == 2 && countries().any(|c| c == code)
}

/// A country code as an index into a 26 × 26 table; `None` unless two
/// ASCII upper-case letters.
pub fn country_index(code: [u8; 2]) -> Option<usize> {
    let [a, b] = code;
    (a.is_ascii_uppercase() && b.is_ascii_uppercase())
        .then(|| usize::from(a - b'A') * 26 + usize::from(b - b'A'))
}

/// The countries a rule entry names: a code (`DE`, also `UK` for `GB`) or
/// a group (`EU`, `EEA`, `DACH`, `NORDICS`), any case.
fn expand_country(entry: &str) -> Option<Vec<&'static str>> {
    let upper = entry.trim().to_ascii_uppercase();
    if let Some((_, members)) = GROUPS.iter().find(|(name, _)| *name == upper) {
        return Some(members.split_ascii_whitespace().collect());
    }
    let upper = if upper == "UK" {
        "GB".to_owned()
    } else {
        upper
    };
    countries().find(|c| *c == upper).map(|c| vec![c])
}

/// One or several values: `"DE"` or `["DE", "AT"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One value.
    One(T),
    /// Several.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A targeting rule: exactly one condition (`device`, `country` or
/// `weight`) and the destination for the visitors it matches.
///
/// ```json
/// {"device": "ios", "url": "https://apps.apple.com/app/id123"}
/// {"country": ["DE", "AT"], "url": "https://www.amazon.de/dp/B08N5WRWNW"}
/// {"country": "EU", "asin": "B08N5WRWNW", "marketplace": "amazon.fr"}
/// {"weight": 30, "url": "https://www.amazon.com/dp/B0OTHER000"}
/// {"weight": 70}
/// ```
///
/// The destination is built through the providers like a link's own (a
/// `url`, or an `asin` and a `marketplace`); a weight rule without one
/// sends its share to the link's own destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetRule {
    /// Device classes this rule matches: `ios`, `android`, `desktop`, `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub device: Option<OneOrMany<String>>,
    /// Countries (ISO 3166-1 alpha-2) or groups (`EU`, `EEA`, `DACH`, `NORDICS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub country: Option<OneOrMany<String>>,
    /// A share of the A/B split, in percent; the weights of a link's split
    /// rules sum to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// The destination: a product URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The destination as an ASIN, instead of `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asin: Option<String>,
    /// Marketplace for an ASIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace: Option<String>,
}

/// What a rule matches, checked and expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// These device classes.
    Device(Vec<Device>),
    /// These countries (upper case, groups expanded).
    Country(Vec<&'static str>),
    /// A share of the split, in percent.
    Weight(u8),
}

/// A rule checked: its condition, and the destination to build (`None`:
/// the link's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRule {
    /// What it matches.
    pub condition: Condition,
    /// The product input (`url` or `asin`) and its marketplace.
    pub destination: Option<(String, Option<String>)>,
}

fn invalid(message: String) -> BuildError {
    BuildError::new(ErrorCode::InvalidInput, message).field("targets")
}

impl TargetRule {
    /// Checks rule number `i` of a link.
    fn check(&self, i: usize) -> Result<CheckedRule, BuildError> {
        let at = |what: &str| format!("targets[{i}].{what}");
        let conditions = [
            self.device.is_some(),
            self.country.is_some(),
            self.weight.is_some(),
        ];
        if conditions.iter().filter(|c| **c).count() != 1 {
            return Err(invalid(format!(
                "targets[{i}]: a rule has exactly one of `device`, `country` and `weight`"
            )));
        }
        let condition = if let Some(devices) = &self.device {
            let mut out = Vec::new();
            for name in devices.as_slice() {
                let device = Device::ALL
                    .into_iter()
                    .find(|d| d.as_str().eq_ignore_ascii_case(name.trim()))
                    .ok_or_else(|| {
                        invalid(format!(
                            "{}: unknown device class {name:?}: one of ios, android, desktop, other",
                            at("device")
                        ))
                    })?;
                out.push(device);
            }
            if out.is_empty() {
                return Err(invalid(format!("{}: names no device class", at("device"))));
            }
            Condition::Device(out)
        } else if let Some(entries) = &self.country {
            let mut out = BTreeSet::new();
            for entry in entries.as_slice() {
                let codes = expand_country(entry).ok_or_else(|| {
                    invalid(format!(
                        "{}: unknown country code {entry:?}: an ISO 3166-1 alpha-2 code \
                         (DE, US, GB) or a group (EU, EEA, DACH, NORDICS)",
                        at("country")
                    ))
                })?;
                out.extend(codes);
            }
            if out.is_empty() {
                return Err(invalid(format!("{}: names no country", at("country"))));
            }
            Condition::Country(out.into_iter().collect())
        } else {
            match self.weight {
                Some(w @ 1..=100) => Condition::Weight(w),
                _ => {
                    return Err(invalid(format!(
                        "{}: a weight is a percentage from 1 to 100",
                        at("weight")
                    )));
                }
            }
        };
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let destination = match (given(&self.url), given(&self.asin)) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "targets[{i}]: give either `url` or `asin`, not both"
                )));
            }
            (Some(url), None) => Some((url, None)),
            (None, Some(asin)) if linkwright_model::amazon::is_asin(&asin) => {
                Some((asin, given(&self.marketplace)))
            }
            (None, Some(asin)) => {
                return Err(BuildError::new(
                    ErrorCode::InvalidAsin,
                    format!(
                        "{}: {asin:?} is not a valid ASIN: 10 letters or digits",
                        at("asin")
                    ),
                )
                .field("targets"));
            }
            (None, None) if matches!(condition, Condition::Weight(_)) => None,
            (None, None) => {
                return Err(invalid(format!(
                    "targets[{i}]: give the destination as `url` (or `asin`)"
                )));
            }
        };
        Ok(CheckedRule {
            condition,
            destination,
        })
    }
}

/// Checks a link's rules: each rule's condition and destination, at most
/// [`MAX_RULES`] of them, and split weights that sum to 100.
pub fn check_rules(rules: &[TargetRule]) -> Result<Vec<CheckedRule>, BuildError> {
    if rules.len() > MAX_RULES {
        return Err(BuildError::new(
            ErrorCode::LimitExceeded,
            format!(
                "a link has at most {MAX_RULES} targeting rules, got {}",
                rules.len()
            ),
        )
        .field("targets"));
    }
    let checked = rules
        .iter()
        .enumerate()
        .map(|(i, r)| r.check(i))
        .collect::<Result<Vec<_>, _>>()?;
    let weights: Vec<u32> = checked
        .iter()
        .filter_map(|r| match r.condition {
            Condition::Weight(w) => Some(u32::from(w)),
            _ => None,
        })
        .collect();
    let sum: u32 = weights.iter().sum();
    if !weights.is_empty() && sum != 100 {
        return Err(invalid(format!(
            "targets: the split's weights sum to {sum}, they must sum to 100 \
             (a weight rule without a destination is the link's own)"
        )));
    }
    Ok(checked)
}

/// Why a target serves a country, in the preview and in `links get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// A rule of the link's own.
    Rule,
    /// Localization: the same product in the shopper's store, confirmed by
    /// the catalog.
    Exact,
    /// Localization: the same ASIN in the shopper's store, assumed sold
    /// there (no catalog credentials, or the catalog was unreachable).
    Assumed,
    /// Localization: the product is not sold in the shopper's store; a
    /// search there for its title.
    Search,
    /// The link's own destination.
    Own,
    /// The A/B split.
    Split,
}

/// One destination a link may send a click to, built through a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuiltTarget {
    /// The provider that built it.
    pub provider: String,
    /// The canonical destination.
    pub destination: String,
    /// The marketplace it serves, if the provider has marketplaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace: Option<String>,
    /// Template bytes before the sub-ID slot.
    pub prefix: String,
    /// Template bytes after the slot.
    pub suffix: String,
    /// Why it exists: `rule`, or the localization outcome.
    pub why: Why,
}

/// A country localization sends to one of the link's targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Localized {
    /// The country (ISO 3166-1 alpha-2).
    pub country: String,
    /// The target index (1-based into [`Targeting::targets`]).
    pub target: u8,
}

/// A link's targeting as stored with it: the rules as given, the targets
/// built for them and for localization, and which target each serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Targeting {
    /// The rules, as given (checked).
    #[serde(default)]
    pub rules: Vec<TargetRule>,
    /// The target each rule sends to (0: the link's own), by rule.
    #[serde(default)]
    pub rule_targets: Vec<u8>,
    /// Amazon localization is on for this link.
    #[serde(default)]
    pub localize: bool,
    /// Countries sent to their own store by localization.
    #[serde(default)]
    pub localized: Vec<Localized>,
    /// Every built destination; target `i` is `targets[i - 1]`.
    #[serde(default)]
    pub targets: Vec<BuiltTarget>,
    /// Localization assumed the product is sold everywhere (no catalog
    /// credentials, or the catalog was unreachable): said in `links get`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub availability_assumed: bool,
    /// The catalog could not be reached for some marketplace: the
    /// background refresh asks again at its next pass, not only after
    /// `localize.refresh_hours`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_availability: bool,
    /// When localization last checked availability (Unix ms; 0: never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub checked_ms: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Targeting {
    /// Whether there is nothing to route: every click goes to the link's own.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.rule_targets.iter().all(|t| *t == OWN)
    }

    /// For a localized link, whether availability was `confirmed` by the
    /// catalog or `assumed`; `None` when localization is off.
    pub fn availability(&self) -> Option<&'static str> {
        self.localize.then_some(if self.availability_assumed {
            "assumed"
        } else {
            "confirmed"
        })
    }

    /// The compiled table the redirect reads.
    pub fn router(&self) -> Router {
        let mut device = [NONE; 4];
        let mut country: Option<Box<[u8; 676]>> = None;
        let mut split = Vec::new();
        let mut cumulative = 0u8;
        for (rule, &target) in self.rules.iter().zip(&self.rule_targets) {
            // Stored rules were checked when made; one that no longer
            // checks (a future version's) is skipped, not fatal.
            let Ok(checked) = rule.check(0) else { continue };
            match checked.condition {
                Condition::Device(devices) => {
                    for d in devices {
                        if device[d.index()] == NONE {
                            device[d.index()] = target;
                        }
                    }
                }
                Condition::Country(codes) => {
                    let table = country.get_or_insert_with(|| Box::new([NONE; 676]));
                    for code in codes {
                        let b = code.as_bytes();
                        if let Some(i) = country_index([b[0], b[1]])
                            && table[i] == NONE
                        {
                            table[i] = target;
                        }
                    }
                }
                Condition::Weight(w) => {
                    cumulative = cumulative.saturating_add(w);
                    split.push((cumulative, target));
                }
            }
        }
        for l in &self.localized {
            let b = l.country.as_bytes();
            if b.len() != 2 {
                continue;
            }
            let table = country.get_or_insert_with(|| Box::new([NONE; 676]));
            if let Some(i) = country_index([b[0], b[1]])
                && table[i] == NONE
            {
                table[i] = l.target;
            }
        }
        Router {
            device,
            country,
            split: split.into_boxed_slice(),
        }
    }

    /// Where a shopper from `country` on `device` lands and why; for the
    /// preview. A split is reported as [`Why::Split`] with target 0.
    pub fn explain(&self, device: Option<Device>, country: [u8; 2]) -> (u8, Why) {
        self.explain_with(&self.router(), device, country)
    }

    /// [`Targeting::explain`] with the router compiled once (the preview
    /// asks for every country).
    pub fn explain_with(
        &self,
        router: &Router,
        device: Option<Device>,
        country: [u8; 2],
    ) -> (u8, Why) {
        if let Some(d) = device
            && router.device[d.index()] != NONE
        {
            return (router.device[d.index()], Why::Rule);
        }
        if let (Some(table), Some(i)) = (&router.country, country_index(country))
            && table[i] != NONE
        {
            let target = table[i];
            let by_rule = self.rules.iter().zip(&self.rule_targets).any(|(r, t)| {
                *t == target
                    && r.check(0).is_ok_and(|c| {
                        matches!(c.condition, Condition::Country(cs)
                            if cs.iter().any(|c| c.as_bytes() == country))
                    })
            });
            let why = if by_rule {
                Why::Rule
            } else {
                self.targets
                    .get(usize::from(target).wrapping_sub(1))
                    .map_or(Why::Own, |t| t.why)
            };
            return (target, why);
        }
        if !router.split.is_empty() {
            return (OWN, Why::Split);
        }
        (OWN, Why::Own)
    }
}

/// A link's targeting compiled for the redirect: the device table, the
/// country table (26 × 26 letters, present only if a rule or localization
/// names a country) and the split's cumulative weights.
#[derive(Clone, PartialEq, Eq)]
pub struct Router {
    device: [u8; 4],
    country: Option<Box<[u8; 676]>>,
    split: Box<[(u8, u8)]>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("device", &self.device)
            .field(
                "countries",
                &self
                    .country
                    .as_ref()
                    .map(|t| t.iter().filter(|t| **t != NONE).count()),
            )
            .field("split", &self.split)
            .finish()
    }
}

impl Router {
    /// The target for a visitor: device rule, else country, else split
    /// (`roll` is called only for a split, and returns 0..100), else the
    /// link's own ([`OWN`]).
    #[inline]
    pub fn pick(&self, device: Device, country: Option<[u8; 2]>, roll: impl FnOnce() -> u8) -> u8 {
        let by_device = self.device[device.index()];
        if by_device != NONE {
            return by_device;
        }
        if let (Some(table), Some(i)) = (&self.country, country.and_then(country_index)) {
            let by_country = table[i];
            if by_country != NONE {
                return by_country;
            }
        }
        if !self.split.is_empty() {
            let r = roll();
            for &(upto, target) in self.split.iter() {
                if r < upto {
                    return target;
                }
            }
        }
        OWN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> TargetRule {
        serde_json::from_str(json).expect("rule")
    }

    fn targeting(rules: &[&str]) -> Targeting {
        let rules: Vec<TargetRule> = rules.iter().map(|r| rule(r)).collect();
        let checked = check_rules(&rules).expect("valid");
        let mut targets = Vec::new();
        let rule_targets = checked
            .iter()
            .map(|c| match &c.destination {
                None => OWN,
                Some((input, _)) => {
                    targets.push(BuiltTarget {
                        provider: "p".into(),
                        destination: input.clone(),
                        marketplace: None,
                        prefix: input.clone(),
                        suffix: String::new(),
                        why: Why::Rule,
                    });
                    targets.len() as u8
                }
            })
            .collect();
        Targeting {
            rules,
            rule_targets,
            targets,
            ..Default::default()
        }
    }

    #[test]
    fn there_are_249_countries_and_kosovo_and_the_groups_are_made_of_them() {
        assert_eq!(countries().count(), 250);
        let mut sorted: Vec<_> = countries().collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 250, "no duplicates");
        for (name, members) in GROUPS {
            for c in members.split_ascii_whitespace() {
                assert!(is_country(c), "{name}: {c}");
            }
        }
        assert_eq!(expand_country("eu").map(|v| v.len()), Some(27));
        assert_eq!(expand_country("uk"), Some(vec!["GB"]));
        assert_eq!(expand_country("XY"), None);
    }

    #[test]
    fn order_is_device_then_country_then_split_then_own() {
        let t = targeting(&[
            r#"{"country": "DE", "url": "https://de.test/"}"#,
            r#"{"device": "ios", "url": "https://ios.test/"}"#,
            r#"{"weight": 100, "url": "https://split.test/"}"#,
        ]);
        let r = t.router();
        let no_roll = || panic!("no roll needed");
        // Device beats country even though the country rule comes first.
        assert_eq!(r.pick(Device::Ios, Some(*b"DE"), no_roll), 2);
        assert_eq!(r.pick(Device::Desktop, Some(*b"DE"), no_roll), 1);
        assert_eq!(r.pick(Device::Desktop, Some(*b"FR"), || 42), 3);
        assert_eq!(r.pick(Device::Android, None, || 99), 3);
        let plain = targeting(&[r#"{"country": "DE", "url": "https://de.test/"}"#]).router();
        assert_eq!(plain.pick(Device::Desktop, Some(*b"FR"), no_roll), OWN);
        assert_eq!(plain.pick(Device::Desktop, None, no_roll), OWN);
    }

    #[test]
    fn the_first_matching_rule_wins_and_groups_expand() {
        let t = targeting(&[
            r#"{"country": ["AT"], "url": "https://at.test/"}"#,
            r#"{"country": "DACH", "url": "https://dach.test/"}"#,
            r#"{"country": ["eu"], "url": "https://eu.test/"}"#,
        ]);
        let r = t.router();
        let pick = |c: &[u8; 2]| r.pick(Device::Desktop, Some(*c), || 0);
        assert_eq!(pick(b"AT"), 1);
        assert_eq!(pick(b"DE"), 2);
        assert_eq!(pick(b"CH"), 2);
        assert_eq!(pick(b"FR"), 3);
        assert_eq!(pick(b"US"), OWN);
    }

    #[test]
    fn a_70_30_split_lands_within_one_percent_over_100000_clicks() {
        let t = targeting(&[
            r#"{"weight": 70}"#,
            r#"{"weight": 30, "url": "https://b.test/"}"#,
        ]);
        let r = t.router();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 2];
        for _ in 0..100_000 {
            counts[usize::from(r.pick(Device::Desktop, None, || rng.u8(..100)))] += 1;
        }
        let own = f64::from(counts[0]) / 100_000.0;
        assert!((own - 0.70).abs() < 0.01, "own share {own}");
        assert_eq!(counts[0] + counts[1], 100_000);
    }

    #[test]
    fn bad_rules_are_refused_with_the_field_and_what_is_wrong() {
        let cases: &[(&[&str], ErrorCode, &str)] = &[
            (
                &[r#"{"country": "XY", "url": "https://a.test/"}"#],
                ErrorCode::InvalidInput,
                "targets[0].country: unknown country code \"XY\"",
            ),
            (
                &[r#"{"device": "fridge", "url": "https://a.test/"}"#],
                ErrorCode::InvalidInput,
                "targets[0].device: unknown device class",
            ),
            (
                &[
                    r#"{"weight": 60}"#,
                    r#"{"weight": 30, "url": "https://a.test/"}"#,
                ],
                ErrorCode::InvalidInput,
                "weights sum to 90",
            ),
            (
                &[r#"{"weight": 0}"#],
                ErrorCode::InvalidInput,
                "targets[0].weight",
            ),
            (
                &[r#"{"country": "DE", "device": "ios", "url": "https://a.test/"}"#],
                ErrorCode::InvalidInput,
                "exactly one of",
            ),
            (
                &[r#"{"country": "DE"}"#],
                ErrorCode::InvalidInput,
                "give the destination",
            ),
            (
                &[r#"{"country": "DE", "asin": "nope"}"#],
                ErrorCode::InvalidAsin,
                "targets[0].asin",
            ),
        ];
        for (rules, code, needle) in cases {
            let rules: Vec<TargetRule> = rules.iter().map(|r| rule(r)).collect();
            let e = check_rules(&rules).expect_err("refused");
            assert_eq!(e.code, *code, "{e}");
            assert_eq!(e.field, Some("targets"));
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
        }
        let many: Vec<TargetRule> = (0..=MAX_RULES)
            .map(|_| rule(r#"{"country": "DE", "url": "https://a.test/"}"#))
            .collect();
        let e = check_rules(&many).expect_err("too many");
        assert_eq!(e.code, ErrorCode::LimitExceeded);
        assert!(check_rules(&many[..MAX_RULES]).is_ok());
    }

    #[test]
    fn localized_countries_come_after_explicit_country_rules() {
        let mut t = targeting(&[r#"{"country": "DE", "url": "https://rule.test/"}"#]);
        t.targets.push(BuiltTarget {
            provider: "amazon".into(),
            destination: "https://www.amazon.de/dp/B08N5WRWNW".into(),
            marketplace: Some("amazon.de".into()),
            prefix: "https://www.amazon.de/dp/B08N5WRWNW?tag=t-21&ascsubtag=".into(),
            suffix: String::new(),
            why: Why::Exact,
        });
        t.localized = ["DE", "AT"]
            .map(|c| Localized {
                country: c.into(),
                target: 2,
            })
            .to_vec();
        let r = t.router();
        assert_eq!(r.pick(Device::Desktop, Some(*b"DE"), || 0), 1);
        assert_eq!(r.pick(Device::Desktop, Some(*b"AT"), || 0), 2);
        assert_eq!(t.explain(None, *b"DE"), (1, Why::Rule));
        assert_eq!(t.explain(None, *b"AT"), (2, Why::Exact));
        assert_eq!(t.explain(None, *b"US"), (OWN, Why::Own));
    }

    #[test]
    fn stored_targeting_reads_back_as_written() {
        let t = targeting(&[r#"{"country": ["DE", "AT"], "url": "https://de.test/"}"#]);
        let json = serde_json::to_string(&t).expect("json");
        let back: Targeting = serde_json::from_str(&json).expect("back");
        assert_eq!(back, t);
        assert_eq!(back.router(), t.router());
    }
}
