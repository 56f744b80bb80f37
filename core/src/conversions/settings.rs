//! The report formats, their columns, and the validated `[conversions]`
//! settings (compiled from the config file by [`crate::config`]).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dates::DateOrder;

/// A report format that can be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Amazon Associates Earnings report (items shipped; returns arrive later).
    AmazonEarnings,
    /// Amazon Associates Orders report (items ordered, not yet earned).
    AmazonOrders,
    /// Amazon Associates Bounty report (Prime, Audible and other sign-ups).
    AmazonBounty,
    /// Awin transactions, exported as CSV from the Awin interface.
    AwinCsv,
    /// Awin transactions as the publisher API answers them (a JSON array).
    AwinJson,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 5] = [
        Format::AmazonEarnings,
        Format::AmazonOrders,
        Format::AmazonBounty,
        Format::AwinCsv,
        Format::AwinJson,
    ];

    /// The name used by `--format`, `?format=` and the config.
    pub fn name(self) -> &'static str {
        match self {
            Format::AmazonEarnings => "amazon-earnings",
            Format::AmazonOrders => "amazon-orders",
            Format::AmazonBounty => "amazon-bounty",
            Format::AwinCsv => "awin-csv",
            Format::AwinJson => "awin-json",
        }
    }

    /// The format with this name.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The names of every format, for messages.
    pub fn names() -> String {
        Format::ALL.map(Format::name).join(", ")
    }

    /// The network whose report this is.
    pub fn provider(self) -> Provider {
        match self {
            Format::AmazonEarnings | Format::AmazonOrders | Format::AmazonBounty => {
                Provider::Amazon
            }
            Format::AwinCsv | Format::AwinJson => Provider::Awin,
        }
    }

    /// What kind of conversion its rows are.
    pub fn kind(self) -> Kind {
        match self {
            Format::AmazonEarnings => Kind::Earnings,
            Format::AmazonOrders => Kind::Orders,
            Format::AmazonBounty => Kind::Bounty,
            Format::AwinCsv | Format::AwinJson => Kind::Transaction,
        }
    }

    /// The fields read from named columns, with their default headers (empty
    /// for `awin-json`, whose field names are fixed by the API).
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            Format::AmazonEarnings | Format::AmazonOrders | Format::AmazonBounty => AMAZON_FIELDS,
            Format::AwinCsv => AWIN_CSV_FIELDS,
            Format::AwinJson => &[],
        }
    }

    /// The fields whose columns must be in the header line; the header is
    /// the first line that has them all.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Format::AmazonEarnings => &["date", "asin", "quantity", "commission"],
            Format::AmazonOrders => &["date", "asin", "quantity", "price"],
            Format::AmazonBounty => &["date", "commission"],
            Format::AwinCsv => &["id", "date", "status", "commission_amount"],
            Format::AwinJson => &[],
        }
    }

    fn default_date_order(self) -> DateOrder {
        match self.provider() {
            Provider::Amazon => DateOrder::MonthFirst,
            Provider::Awin => DateOrder::DayFirst,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A field read from a report column, and the headers looked for by default.
#[derive(Debug)]
pub struct FieldSpec {
    /// The field's name in `[conversions.formats.<format>.columns]`.
    pub name: &'static str,
    /// Headers tried in order. Headers match ignoring case, spaces,
    /// punctuation and a bracketed currency (`Price($)` matches `Price`).
    pub defaults: &'static [&'static str],
}

const fn field(name: &'static str, defaults: &'static [&'static str]) -> FieldSpec {
    FieldSpec { name, defaults }
}

/// Amazon Associates report columns (Earnings, Orders and Bounty share them;
/// each report has a subset).
///
/// The sub-tag column's header is **not confirmed** (it appears only on
/// accounts with sub-tag access): `Sub Tag`, `SubTag` and `ascsubtag` are
/// guesses. Set `[conversions.formats.<format>.columns] sub_id = "…"` to the
/// header your reports carry.
const AMAZON_FIELDS: &[FieldSpec] = &[
    field("category", &["Category"]),
    field("name", &["Name", "Product Name", "Title"]),
    field("asin", &["ASIN"]),
    field("date", &["Date Shipped", "Date"]),
    field("quantity", &["Items Shipped", "Qty", "Quantity"]),
    field("returns", &["Returns"]),
    field("price", &["Price"]),
    field("revenue", &["Revenue"]),
    field("commission", &["Ad Fees", "Earnings"]),
    field("tracking_id", &["Tracking ID", "Tag"]),
    field("sub_id", &["Sub Tag", "SubTag", "ascsubtag"]),
];

/// Awin transaction export columns. The export's exact headers were not
/// confirmed either: these are the usual names, each configurable.
const AWIN_CSV_FIELDS: &[FieldSpec] = &[
    field("id", &["Transaction ID", "ID"]),
    field("advertiser_id", &["Advertiser ID"]),
    field("advertiser_name", &["Advertiser Name", "Advertiser"]),
    field("sub_id", &["Click Ref", "Clickref"]),
    field("date", &["Transaction Date", "Date"]),
    field("status", &["Commission Status", "Status"]),
    field("sale_amount", &["Sale Amount", "Transaction Amount"]),
    field("commission_amount", &["Commission Amount", "Commission"]),
    field("currency", &["Currency"]),
    field("paid", &["Paid to Publisher", "Paid"]),
];

/// The network a conversion came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Amazon Associates.
    Amazon,
    /// Awin.
    Awin,
}

impl Provider {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Amazon => "amazon",
            Provider::Awin => "awin",
        }
    }
}

/// The kind of row: which report it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Amazon Earnings (shipped items).
    Earnings,
    /// Amazon Orders (ordered items).
    Orders,
    /// Amazon Bounty (sign-ups).
    Bounty,
    /// An Awin transaction.
    Transaction,
}

impl Kind {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Earnings => "earnings",
            Kind::Orders => "orders",
            Kind::Bounty => "bounty",
            Kind::Transaction => "transaction",
        }
    }
}

/// A conversion's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Not yet confirmed (Amazon orders; Awin pending).
    Pending,
    /// Confirmed (Amazon earnings and bounties; Awin approved).
    Approved,
    /// Refused by the advertiser (Awin declined or deleted).
    Declined,
    /// Every item was returned (Amazon: returns ≥ quantity).
    Returned,
    /// Approved and paid to the publisher (Awin `paidToPublisher`).
    Paid,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Approved,
        Status::Declined,
        Status::Returned,
        Status::Paid,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Declined => "declined",
            Status::Returned => "returned",
            Status::Paid => "paid",
        }
    }
}

/// How one format is read: validated `[conversions.formats.<format>]`.
#[derive(Debug, Clone)]
pub struct FormatSettings {
    /// Per field (see [`Format::fields`]), the headers tried in order.
    pub columns: Vec<(&'static str, Vec<String>)>,
    /// ISO 4217 currency of the amounts when the report does not say.
    pub currency: Option<String>,
    /// How to read `03/04/2026`.
    pub date_order: DateOrder,
}

impl FormatSettings {
    /// The defaults of a format.
    pub fn defaults(format: Format) -> FormatSettings {
        FormatSettings {
            columns: format
                .fields()
                .iter()
                .map(|f| (f.name, f.defaults.iter().map(|h| (*h).to_owned()).collect()))
                .collect(),
            currency: None,
            date_order: format.default_date_order(),
        }
    }

    /// The headers tried for a field.
    pub fn headers(&self, field: &str) -> &[String] {
        self.columns
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(&[], |(_, h)| h.as_slice())
    }
}

/// Pulling transactions from Awin's publisher API: validated
/// `[conversions.awin]`.
#[derive(Debug, Clone)]
pub struct AwinPullConfig {
    /// Base URL of the API, without a trailing slash.
    pub api_base: String,
    /// The publisher (account) id; needed to pull.
    pub publisher_id: Option<String>,
    /// The environment variable holding the OAuth token (never the config file).
    pub token_env: String,
    /// The API's budget: calls are spaced at least 60 s / this apart.
    pub calls_per_minute: u32,
    /// Time limit of one call: connect plus the whole exchange.
    pub timeout: Duration,
    /// Retries of a transient failure (timeout, connection error, 408, 429, 5xx).
    pub retries: u32,
    /// First retry delay; doubles each time (a 429's `Retry-After` wins if longer).
    pub backoff: Duration,
    /// The most bytes read of one answer.
    pub max_response_bytes: usize,
}

impl AwinPullConfig {
    /// The least time between the starts of two calls.
    pub fn spacing(&self) -> Duration {
        Duration::from_secs(60) / self.calls_per_minute.max(1)
    }
}

impl Default for AwinPullConfig {
    fn default() -> Self {
        AwinPullConfig {
            api_base: "https://api.awin.com".to_owned(),
            publisher_id: None,
            token_env: "AWIN_API_TOKEN".to_owned(),
            calls_per_minute: 20,
            timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_secs(1),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Validated `[conversions]`.
#[derive(Debug, Clone)]
pub struct ConversionsConfig {
    /// One entry per format, in [`Format::ALL`] order.
    formats: Vec<FormatSettings>,
    /// Pulling from Awin.
    pub awin: AwinPullConfig,
}

impl ConversionsConfig {
    /// The settings of a format.
    pub fn format(&self, format: Format) -> &FormatSettings {
        let i = Format::ALL.iter().position(|f| *f == format).unwrap_or(0);
        &self.formats[i]
    }

    /// Replaces the settings of a format.
    pub fn set_format(&mut self, format: Format, settings: FormatSettings) {
        if let Some(i) = Format::ALL.iter().position(|f| *f == format) {
            self.formats[i] = settings;
        }
    }
}

impl Default for ConversionsConfig {
    fn default() -> Self {
        ConversionsConfig {
            formats: Format::ALL.map(FormatSettings::defaults).to_vec(),
            awin: AwinPullConfig::default(),
        }
    }
}
