//! Who clicked: classifies a visitor of `GET /{code}` from its method and
//! headers, on the hot path (every click), without allocating.
//!
//! [`classify`] answers two questions. *Is it a bot?* Bots, crawlers,
//! link-preview fetchers, HTTP libraries, `HEAD` requests and requests with
//! no usable `User-Agent` are redirected like anyone else but mint no sub-ID
//! and are counted as bot hits. *What kind of device?* A [`UaClass`] for the
//! reports.
//!
//! The `User-Agent` is scanned once by an ASCII case-insensitive
//! Aho-Corasick automaton built on first use, which finds every token of
//! interest (bot names and device hints) in a single pass. The rules:
//!
//! - any bot token ([`BOT_TOKENS`]) anywhere → [`UaClass::Bot`]. A few tokens
//!   count only at the very start of the header ([`BOT_PREFIXES`]), because
//!   the same word may appear at the end of a human's in-app browser UA;
//! - no `Mozilla/` → [`UaClass::Other`], human: a custom client that names no
//!   known bot (`MyApp/1.0`, `Dalvik/2.1.0 …`, pre-2013 `Opera/9.80 …`) is
//!   given the benefit of the doubt, but no device class is guessed for it;
//! - TVs and game consoles (`SMART-TV`, `Xbox`, …) → [`UaClass::Other`];
//! - `iPad`, `Tablet` or `Kindle` → [`UaClass::Tablet`] (checked before
//!   `Mobile`: iPad UAs say `Mobile/15E148`);
//! - `Mobile` or `iPhone` (iPods say `iPhone OS`) → [`UaClass::Mobile`];
//! - `Android` without `Mobile` → [`UaClass::Tablet`] (Chrome's convention);
//! - `Windows NT`, `Macintosh`, `X11` or `CrOS` → [`UaClass::Desktop`]; an
//!   iPad in Safari's default "desktop website" mode sends a Macintosh UA and
//!   is counted here — the header cannot tell them apart;
//! - anything else → [`UaClass::Other`].
//!
//! Deliberately *not* bot tokens, because humans send them: `Line/` (the
//! LINE in-app browser; LINE's preview fetcher says `line-poker` and
//! `facebookexternalhit`), `Snapchat` (the in-app browser; the fetcher says
//! `Snap URL Preview`), `Sogou` (Sogou's mobile browser; its crawlers all say
//! `spider`), `FBAN`/`FBAV`/`Instagram` (in-app browsers), and a bare `bot`
//! (Cubot phones): the generic rules need `bot/` or `bot;`.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};

/// What kind of client sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UaClass {
    /// A known bot, crawler, link-preview fetcher or HTTP library.
    Bot,
    /// A phone browser.
    Mobile,
    /// A tablet browser.
    Tablet,
    /// A desktop or laptop browser.
    Desktop,
    /// No usable `User-Agent`, or one that is not recognisably a browser on a
    /// phone, tablet or computer (custom clients, TVs, consoles).
    Other,
}

impl UaClass {
    /// Every class, in [`UaClass::index`] order.
    pub const ALL: [UaClass; 5] = [
        UaClass::Bot,
        UaClass::Mobile,
        UaClass::Tablet,
        UaClass::Desktop,
        UaClass::Other,
    ];

    /// The class's stable lower-case name, as used in metrics labels, the
    /// store and the reports API.
    pub const fn as_str(self) -> &'static str {
        match self {
            UaClass::Bot => "bot",
            UaClass::Mobile => "mobile",
            UaClass::Tablet => "tablet",
            UaClass::Desktop => "desktop",
            UaClass::Other => "other",
        }
    }

    /// The class's position in [`UaClass::ALL`], for per-class counter
    /// arrays. Also how click rows store the class (column `ua`, decoded
    /// by the view `clicks`): these numbers never change.
    pub const fn index(self) -> usize {
        match self {
            UaClass::Bot => 0,
            UaClass::Mobile => 1,
            UaClass::Tablet => 2,
            UaClass::Desktop => 3,
            UaClass::Other => 4,
        }
    }

    /// Parses a name written by [`UaClass::as_str`] (exact, lower case).
    #[expect(
        clippy::should_implement_trait,
        reason = "returns Option, like the other parsers in core; there is no error to report"
    )]
    pub fn from_str(s: &str) -> Option<Self> {
        UaClass::ALL.into_iter().find(|class| class.as_str() == s)
    }
}

/// A visitor's device class, as targeting sees it: the operating system for
/// phones and tablets, else desktop or other.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// iPhone, iPad (with a mobile UA), iPod.
    Ios,
    /// An Android phone or tablet.
    Android,
    /// A desktop or laptop browser.
    Desktop,
    /// Anything else: other phones, TVs, consoles, bots, no User-Agent.
    Other,
}

impl Device {
    /// Every class, in [`Device::index`] order.
    pub const ALL: [Device; 4] = [Device::Ios, Device::Android, Device::Desktop, Device::Other];

    /// Position in [`Device::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Device::Ios => 0,
            Device::Android => 1,
            Device::Desktop => 2,
            Device::Other => 3,
        }
    }

    /// The lower-case name used in rules.
    pub const fn as_str(self) -> &'static str {
        match self {
            Device::Ios => "ios",
            Device::Android => "android",
            Device::Desktop => "desktop",
            Device::Other => "other",
        }
    }
}

impl std::fmt::Display for UaClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classification of one request.
///
/// `class` is [`UaClass::Bot`] only when `bot` is true; `bot` can also be true
/// for a browser-looking class (a `HEAD` request from a browser's UA) or
/// [`UaClass::Other`] (no usable `User-Agent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visitor {
    /// Redirect, but mint no sub-ID and count the hit as a bot hit.
    pub bot: bool,
    /// What the `User-Agent` says the client is.
    pub class: UaClass,
    /// The device class targeting rules see.
    pub device: Device,
}

/// A `User-Agent` longer than this is not scanned: the visitor is a bot of
/// class [`UaClass::Other`]. Real browsers, in-app ones included, send well
/// under 1 KiB.
pub const MAX_USER_AGENT_LEN: usize = 2048;

/// A `Referer` longer than this is ignored by [`referrer_host`].
pub const MAX_REFERER_LEN: usize = 2048;

/// Tokens (matched ASCII case-insensitively, anywhere) that make a visitor a
/// bot: crawlers, link-preview fetchers, AI agents, HTTP libraries, headless
/// browsers, and the generic `bot/`, `bot;`, `crawler`, `spider`, `preview`,
/// `fetcher` and `+http` (a contact URL, which only automated clients put in
/// their UA).
pub const BOT_TOKENS: &[&str] = &[
    // Chat and social link previews.
    "Slackbot",
    "Slack-ImgProxy",
    "Twitterbot",
    "facebookexternalhit",
    "facebookcatalog",
    "Facebot",
    "meta-externalagent",
    "WhatsApp",
    "Discordbot",
    "TelegramBot",
    "LinkedInBot",
    "Mastodon",
    "Pleroma",
    "Misskey",
    "Cardyb",
    "SkypeUriPreview",
    "Iframely",
    "Embedly",
    "redditbot",
    "Pinterestbot",
    "Pinterest/0.",
    "line-poker",
    "Snap URL Preview",
    // Search engines and SEO crawlers.
    "Applebot",
    "Googlebot",
    "Google-InspectionTool",
    "GoogleOther",
    "AdsBot-Google",
    "Mediapartners-Google",
    "Storebot-Google",
    "APIs-Google",
    "Google-Read-Aloud",
    "Chrome-Lighthouse",
    "bingbot",
    "BingPreview",
    "DuckDuckBot",
    "YandexBot",
    "Baiduspider",
    "Slurp",
    "Exabot",
    "ia_archiver",
    "AhrefsBot",
    "SemrushBot",
    "MJ12bot",
    "DotBot",
    "PetalBot",
    // AI crawlers and agents.
    "GPTBot",
    "ChatGPT-User",
    "ClaudeBot",
    "Claude-User",
    "anthropic-ai",
    "PerplexityBot",
    "Perplexity-User",
    "Bytespider",
    "Amazonbot",
    "CCBot",
    // HTTP libraries, command-line tools and headless browsers.
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "Scrapy",
    "curl/",
    "Wget",
    "Go-http-client",
    "okhttp",
    "axios/",
    "node-fetch",
    "Java/",
    "Apache-HttpClient",
    "libwww-perl",
    "http.rb/",
    "HeadlessChrome",
    "PhantomJS",
    // Generic.
    "bot/",
    "bot;",
    "crawler",
    "spider",
    "preview",
    "fetcher",
    "+http",
];

/// Tokens that make a visitor a bot only at the start of the `User-Agent`:
/// the app's own fetcher leads with its name, while an in-app browser would
/// append it to a browser UA.
pub const BOT_PREFIXES: &[&str] = &["Viber/"];

/// What a token found in a `User-Agent` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Bot,
    BotAtStart,
    Hint(u8),
}

const MOZILLA: u8 = 1 << 0;
const TABLET: u8 = 1 << 1;
const MOBILE: u8 = 1 << 2;
const ANDROID: u8 = 1 << 3;
const DESKTOP: u8 = 1 << 4;
const APPLIANCE: u8 = 1 << 5;
const IOS: u8 = 1 << 6;

/// Device hints (matched ASCII case-insensitively, anywhere).
const HINTS: &[(&str, u8)] = &[
    ("Mozilla/", MOZILLA),
    ("iPad", TABLET | IOS),
    ("iPod", MOBILE | IOS),
    ("Tablet", TABLET),
    ("Kindle", TABLET),
    ("Mobile", MOBILE),
    ("iPhone", MOBILE | IOS),
    ("Android", ANDROID),
    ("Windows NT", DESKTOP),
    ("Macintosh", DESKTOP),
    ("X11", DESKTOP),
    ("CrOS ", DESKTOP),
    ("SMART-TV", APPLIANCE),
    ("SmartTV", APPLIANCE),
    ("Android TV", APPLIANCE),
    ("GoogleTV", APPLIANCE),
    ("CrKey", APPLIANCE),
    ("HbbTV", APPLIANCE),
    ("Xbox", APPLIANCE),
    ("PlayStation", APPLIANCE),
    ("Nintendo", APPLIANCE),
];

/// The automaton over every token, and what each pattern id means.
struct Scanner {
    automaton: AhoCorasick,
    tokens: Vec<Token>,
}

static SCANNER: LazyLock<Option<Scanner>> = LazyLock::new(|| {
    let tokens: Vec<(&str, Token)> = BOT_TOKENS
        .iter()
        .map(|t| (*t, Token::Bot))
        .chain(BOT_PREFIXES.iter().map(|t| (*t, Token::BotAtStart)))
        .chain(HINTS.iter().map(|&(t, bit)| (t, Token::Hint(bit))))
        .collect();
    // Standard semantics, so that overlapping tokens are all reported; a DFA,
    // because the pattern set is small and this runs on every click.
    let automaton = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(tokens.iter().map(|(t, _)| t))
        .ok()?;
    Some(Scanner {
        automaton,
        tokens: tokens.into_iter().map(|(_, k)| k).collect(),
    })
});

/// Classifies a request from its method-is-HEAD flag and User-Agent header.
///
/// HEAD requests, a missing/empty UA, and known bots, crawlers and
/// link-preview fetchers are `bot: true` (they are redirected but mint no
/// sub-ID). See the [module docs](self) for the rules; a `User-Agent` longer
/// than [`MAX_USER_AGENT_LEN`] is treated like a missing one.
pub fn classify(is_head: bool, user_agent: Option<&[u8]>) -> Visitor {
    let ua = user_agent.map(<[u8]>::trim_ascii).unwrap_or_default();
    if ua.is_empty() || ua.len() > MAX_USER_AGENT_LEN {
        return Visitor {
            bot: true,
            class: UaClass::Other,
            device: Device::Other,
        };
    }
    let (class, device) = user_agent_class(ua);
    Visitor {
        bot: is_head || class == UaClass::Bot,
        class,
        device,
    }
}

/// Slots in each thread's memo of recent User-Agents (a power of two).
const MEMO_SLOTS: usize = 64;

/// A direct-mapped memo of User-Agent → class, one per thread. Real traffic
/// repeats a few UA strings (browsers send the same reduced UA), so most
/// clicks skip the scan: a hash and one comparison. A collision or a new UA
/// only costs the scan it would have cost anyway, plus one small allocation;
/// memory is bounded by `MEMO_SLOTS` × [`MAX_USER_AGENT_LEN`] per thread.
/// A memoised User-Agent and what it was classified as.
type MemoEntry = (Box<[u8]>, UaClass, Device);

struct Memo {
    slots: Vec<Option<MemoEntry>>,
}

thread_local! {
    static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::new(Memo {
        slots: vec![None; MEMO_SLOTS],
    });
}

fn user_agent_class(ua: &[u8]) -> (UaClass, Device) {
    use std::hash::BuildHasher;
    let slot = foldhash::fast::FixedState::with_seed(0x6c77).hash_one(ua) as usize % MEMO_SLOTS;
    let memoised = MEMO.try_with(|memo| {
        let mut memo = memo.borrow_mut();
        match &memo.slots[slot] {
            Some((seen, class, device)) if **seen == *ua => (*class, *device),
            _ => {
                let (class, device) = scan(ua);
                memo.slots[slot] = Some((ua.into(), class, device));
                (class, device)
            }
        }
    });
    // Thread-locals are gone only while a thread exits.
    memoised.unwrap_or_else(|_| scan(ua))
}

fn scan(ua: &[u8]) -> (UaClass, Device) {
    let Some(scanner) = SCANNER.as_ref() else {
        // The automaton is built from constants and cannot fail to build;
        // should it ever, nobody loses a sub-ID over it.
        return (UaClass::Other, Device::Other);
    };
    let mut hints = 0u8;
    for found in scanner.automaton.find_overlapping_iter(ua) {
        match scanner.tokens.get(found.pattern().as_usize()) {
            Some(Token::Bot) => return (UaClass::Bot, Device::Other),
            Some(Token::BotAtStart) if found.start() == 0 => {
                return (UaClass::Bot, Device::Other);
            }
            Some(Token::Hint(bit)) => hints |= bit,
            Some(Token::BotAtStart) | None => {}
        }
    }
    let class = class_of(hints);
    let has = |bit: u8| hints & bit != 0;
    let device = match class {
        UaClass::Mobile | UaClass::Tablet if has(IOS) => Device::Ios,
        UaClass::Mobile | UaClass::Tablet if has(ANDROID) => Device::Android,
        UaClass::Desktop => Device::Desktop,
        _ => Device::Other,
    };
    (class, device)
}

/// The class the device hints found in a (non-bot) User-Agent add up to.
fn class_of(hints: u8) -> UaClass {
    let has = |bit: u8| hints & bit != 0;
    if !has(MOZILLA) || has(APPLIANCE) {
        UaClass::Other
    } else if has(TABLET) {
        UaClass::Tablet
    } else if has(MOBILE) {
        UaClass::Mobile
    } else if has(ANDROID) {
        UaClass::Tablet
    } else if has(DESKTOP) {
        UaClass::Desktop
    } else {
        UaClass::Other
    }
}

/// The host of a `Referer` header value: lower-cased (international names in
/// their `xn--` form), `www.` kept, port and user info dropped, IPv6 hosts in
/// brackets.
///
/// `None` if the header is missing, longer than [`MAX_REFERER_LEN`], not
/// UTF-8, not an absolute `http`/`https` URL (`android-app://…` is not), or
/// has no host.
pub fn referrer_host(referer: Option<&[u8]>) -> Option<Box<str>> {
    let raw = referer?;
    if raw.len() > MAX_REFERER_LEN {
        return None;
    }
    let url = url::Url::parse(std::str::from_utf8(raw).ok()?).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(host.into())
}

/// A country code from a trusted header value (such as Cloudflare's
/// `CF-IPCountry`): exactly two ASCII letters → upper-case `[u8; 2]`.
///
/// Anything else is `None`, including the placeholders for "unknown": `XX`
/// (Cloudflare), `ZZ` (CLDR, many geo databases) and `T1` (Cloudflare's Tor).
pub fn country(value: Option<&[u8]>) -> Option<[u8; 2]> {
    let &[a, b] = value? else {
        return None;
    };
    if !(a.is_ascii_alphabetic() && b.is_ascii_alphabetic()) {
        return None;
    }
    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    match &code {
        b"XX" | b"ZZ" => None,
        _ => Some(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bot flag and UA class of a request, with the device class left
    /// out (set to `Other`): the tables below are about bots and classes;
    /// `device_classes_for_targeting` checks the device.
    fn classify(is_head: bool, user_agent: Option<&[u8]>) -> Visitor {
        Visitor {
            device: Device::Other,
            ..super::classify(is_head, user_agent)
        }
    }

    #[test]
    fn device_classes_for_targeting() {
        let cases = [
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                Device::Ios,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
                Device::Ios,
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                Device::Android,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                Device::Android,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                Device::Desktop,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                Device::Desktop,
            ),
            (
                "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
                Device::Other,
            ),
            (
                "Googlebot/2.1 (+http://www.google.com/bot.html)",
                Device::Other,
            ),
        ];
        for (ua, device) in cases {
            // Twice: the second answer comes from the thread's memo.
            for _ in 0..2 {
                assert_eq!(
                    super::classify(false, Some(ua.as_bytes())).device,
                    device,
                    "{ua}"
                );
            }
        }
        assert_eq!(super::classify(false, None).device, Device::Other);
    }

    const BOT: Visitor = Visitor {
        bot: true,
        class: UaClass::Bot,
        device: Device::Other,
    };
    const MOBILE_HUMAN: Visitor = Visitor {
        bot: false,
        class: UaClass::Mobile,
        device: Device::Other,
    };
    const TABLET_HUMAN: Visitor = Visitor {
        bot: false,
        class: UaClass::Tablet,
        device: Device::Other,
    };
    const DESKTOP_HUMAN: Visitor = Visitor {
        bot: false,
        class: UaClass::Desktop,
        device: Device::Other,
    };
    const OTHER_HUMAN: Visitor = Visitor {
        bot: false,
        class: UaClass::Other,
        device: Device::Other,
    };

    /// Browsers and in-app browsers that people click links in.
    const HUMANS: &[(&str, Visitor)] = &[
        // Desktop.
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            DESKTOP_HUMAN,
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            DESKTOP_HUMAN,
        ),
        // Phones.
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36 OPR/86.0.0.0",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
            MOBILE_HUMAN,
        ),
        // A Cubot phone: "bot" alone is not a bot token.
        (
            "Mozilla/5.0 (Linux; Android 11; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
            MOBILE_HUMAN,
        ),
        // Sogou's mobile browser: only Sogou's spiders are bots.
        (
            "Mozilla/5.0 (Linux; Android 10; V2002A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.99 Mobile Safari/537.36 SogouMobileBrowser/5.28.14",
            MOBILE_HUMAN,
        ),
        // In-app browsers are people, not the apps' preview fetchers.
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 300.0.0.22.84 (iPhone15,3; iOS 17_6_1; en_US; en; scale=3.00; 1290x2796; 640325925; IABMV/1)",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/127.0.6533.103 Mobile Safari/537.36 Instagram 300.0.0.29.110 Android (34/14; 420dpi; 1080x2400; Google/google; Pixel 8; shiba; shiba; en_US; 514327624)",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.40.103;FBBV/616064823;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/619003036]",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/442.0.0.33.113;]",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.5.0",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/13.0.0.37 (like Safari/8618.2.12.10.5, panda)",
            MOBILE_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.62",
            MOBILE_HUMAN,
        ),
        // Tablets.
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            TABLET_HUMAN,
        ),
        (
            "Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0",
            TABLET_HUMAN,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36",
            TABLET_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            TABLET_HUMAN,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            TABLET_HUMAN,
        ),
        // The first Kindle Fire said "Mobile".
        (
            "Mozilla/5.0 (Linux; U; Android 2.3.4; en-us; Kindle Fire Build/GINGERBREAD) AppleWebKit/533.1 (KHTML, like Gecko) Version/4.0 Mobile Safari/533.1",
            TABLET_HUMAN,
        ),
        (
            "Mozilla/5.0 (Linux; Android 11; KFRASWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.3.1 like Chrome/131.0.6778.135 Safari/537.36",
            TABLET_HUMAN,
        ),
        // Not a browser on a phone, tablet or computer, but not a known bot.
        ("MyApp/1.0", OTHER_HUMAN),
        (
            "Dalvik/2.1.0 (Linux; U; Android 11; Pixel 5 Build/RQ3A.210805.001.A1)",
            OTHER_HUMAN,
        ),
        (
            "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
            OTHER_HUMAN,
        ),
        (
            "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) 7.0 TV Safari/537.36",
            OTHER_HUMAN,
        ),
        // "Android TV" overlaps "Android": both must be seen.
        (
            "Mozilla/5.0 (Linux; Android 9; SHIELD Android TV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            OTHER_HUMAN,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edge/44.18363.8131",
            OTHER_HUMAN,
        ),
    ];

    /// Crawlers, preview fetchers and scripts, one or more per family.
    const BOTS: &[&str] = &[
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Slack-ImgProxy (+https://api.slack.com/robots)",
        "Twitterbot/1.0",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Facebot",
        "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        "WhatsApp/2.23.20.0 A",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "TelegramBot (like TwitterBot)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "http.rb/5.1.1 (Mastodon/4.2.1; +https://mastodon.social/)",
        "Pleroma 2.6.0; https://pleroma.example <admin@pleroma.example>",
        "Misskey/2024.10.1 (https://misskey.io)",
        "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
        "Iframely/1.3.1 (+https://iframely.com/docs/about)",
        "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
        "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
        "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)",
        "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
        "Mozilla/5.0 (compatible; Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots)",
        "Viber/20.9.0.8 CFNetwork/1410.0.3 Darwin/22.6.0",
        "facebookexternalhit/1.1;line-poker/1.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
        "AdsBot-Google (+http://www.google.com/adsbot.html)",
        "Mediapartners-Google",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36 BingPreview/1.0b",
        "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
        "Mozilla/5.0 (compatible; Exabot/3.0; +http://www.exabot.com/go/robot)",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
        "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)",
        "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        "anthropic-ai",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Amazonbot/0.1; +https://developer.amazon.com/support/amazonbot) Chrome/119.0.6045.214 Safari/537.36",
        "CCBot/2.0 (https://commoncrawl.org/faq/)",
        "python-requests/2.32.3",
        "Python-urllib/3.12",
        "curl/8.5.0",
        "Wget/1.21.4",
        "Go-http-client/2.0",
        "okhttp/4.12.0",
        "axios/1.7.7",
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        // Caught only by the generic rules.
        "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/seznambot-crawler/)",
        "Mozilla/5.0 (compatible; Qwantify/2.4w; +https://www.qwant.com/)",
        "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
        "Mozilla/5.0 (compatible; MicrosoftPreview/2.0; +https://aka.ms/MicrosoftPreview)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
    ];

    #[test]
    fn browsers_and_in_app_browsers_are_humans_of_their_device_class() {
        for &(ua, want) in HUMANS {
            assert_eq!(classify(false, Some(ua.as_bytes())), want, "{ua}");
        }
    }

    #[test]
    fn the_per_thread_memo_answers_what_the_scan_answers() {
        // More UAs than memo slots, visited three times in different orders,
        // so slots are hit, missed and overwritten by colliding UAs.
        let uas: Vec<&str> = HUMANS
            .iter()
            .map(|(ua, _)| *ua)
            .chain(BOTS.iter().copied())
            .collect();
        assert!(uas.len() > MEMO_SLOTS);
        for round in 0..3 {
            for i in 0..uas.len() {
                let ua = uas[(i * (round * 2 + 1)) % uas.len()];
                let bytes = ua.as_bytes();
                assert_eq!(user_agent_class(bytes), scan(bytes), "round {round}: {ua}");
            }
        }
        // A UA that differs from a memoised one only in its last byte.
        let a =
            b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Googlebot/2.1";
        let mut b = a.to_vec();
        if let Some(last) = b.last_mut() {
            *last = b'X';
        }
        assert_eq!(user_agent_class(a).0, UaClass::Bot);
        assert_eq!(user_agent_class(&b), scan(&b));
    }

    #[test]
    fn crawlers_preview_fetchers_and_scripts_are_bots() {
        for &ua in BOTS {
            assert_eq!(classify(false, Some(ua.as_bytes())), BOT, "{ua}");
        }
    }

    #[test]
    fn every_bot_token_is_recognised_in_any_case_inside_a_browser_ua() {
        for token in BOT_TOKENS {
            for t in [
                token.to_string(),
                token.to_uppercase(),
                token.to_lowercase(),
            ] {
                let ua = format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) {t} Safari/537.36");
                assert_eq!(classify(false, Some(ua.as_bytes())), BOT, "{ua}");
            }
        }
    }

    #[test]
    fn head_requests_are_bots_keeping_the_device_class() {
        let (ua, _) = HUMANS[0];
        assert_eq!(
            classify(true, Some(ua.as_bytes())),
            Visitor {
                bot: true,
                class: UaClass::Desktop,
                device: Device::Other,
            }
        );
        assert_eq!(classify(true, Some(b"curl/8.5.0")), BOT);
        assert_eq!(
            classify(true, None),
            Visitor {
                bot: true,
                class: UaClass::Other,
                device: Device::Other,
            }
        );
    }

    #[test]
    fn missing_empty_or_blank_user_agent_is_a_bot_of_class_other() {
        let unusable = Visitor {
            bot: true,
            class: UaClass::Other,
            device: Device::Other,
        };
        for ua in [None, Some(&b""[..]), Some(&b"   "[..]), Some(&b"\t"[..])] {
            assert_eq!(classify(false, ua), unusable, "{ua:?}");
        }
    }

    #[test]
    fn overlong_user_agent_is_a_bot_of_class_other() {
        let (ua, want) = HUMANS[0];
        let at_limit = format!("{ua}{}", " x".repeat((MAX_USER_AGENT_LEN - ua.len()) / 2));
        assert!(at_limit.len() <= MAX_USER_AGENT_LEN);
        assert_eq!(classify(false, Some(at_limit.as_bytes())), want);
        let over = format!("{ua}{}", "x".repeat(MAX_USER_AGENT_LEN));
        assert_eq!(
            classify(false, Some(over.as_bytes())),
            Visitor {
                bot: true,
                class: UaClass::Other,
                device: Device::Other,
            }
        );
    }

    #[test]
    fn bot_token_at_the_end_of_a_long_browser_ua_is_found() {
        let (ua, _) = HUMANS[0];
        let padded = format!("{ua}{} Googlebot/2.1", " x".repeat(900));
        assert!(padded.len() <= MAX_USER_AGENT_LEN);
        assert_eq!(classify(false, Some(padded.as_bytes())), BOT);
    }

    #[test]
    fn prefix_only_token_counts_only_at_the_start() {
        assert_eq!(classify(false, Some(b"viber/21.0 CFNetwork/1.0")), BOT);
        // An in-app browser that appended the app's name is a person.
        let in_app = b"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 Viber/21.0";
        assert_eq!(classify(false, Some(in_app)), MOBILE_HUMAN);
    }

    #[test]
    fn microsoft_is_not_mistaken_for_chrome_os() {
        // Constructed: "miCROSoft" contains "cros", so the hint is "CrOS ".
        let ua = b"Mozilla/5.0 (compatible; Microsoft-WebDAV-MiniRedir/10.0)";
        assert_eq!(classify(false, Some(ua)), OTHER_HUMAN);
    }

    #[test]
    fn non_utf8_user_agent_is_still_classified() {
        let ua = b"Mozilla/5.0 (Windows NT 10.0; \xff\xfe) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(classify(false, Some(ua)), DESKTOP_HUMAN);
    }

    #[test]
    fn ua_class_names_round_trip_and_indexes_follow_all() {
        let names: Vec<&str> = UaClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["bot", "mobile", "tablet", "desktop", "other"]);
        for (i, class) in UaClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), i);
            assert_eq!(UaClass::from_str(class.as_str()), Some(class));
            assert_eq!(class.to_string(), class.as_str());
        }
        for bad in ["", "Bot", "robot", "desktop "] {
            assert_eq!(UaClass::from_str(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn referrer_host_is_the_lower_cased_host_without_port() {
        let cases: &[(&str, &str)] = &[
            ("https://www.google.com/", "www.google.com"),
            (
                "https://news.ycombinator.com/item?id=1#top",
                "news.ycombinator.com",
            ),
            ("http://Example.COM:8080/a/b", "example.com"),
            ("HTTPS://WWW.Reddit.com", "www.reddit.com"),
            ("https://user:pw@blog.example.org/x", "blog.example.org"),
            ("https://bücher.de/", "xn--bcher-kva.de"),
            ("http://192.168.0.1:3000/", "192.168.0.1"),
            ("http://[::1]:8080/", "[::1]"),
        ];
        for &(referer, want) in cases {
            assert_eq!(
                referrer_host(Some(referer.as_bytes())).as_deref(),
                Some(want),
                "{referer}"
            );
        }
    }

    #[test]
    fn referrer_host_rejects_missing_foreign_scheme_garbage_and_overlong() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_REFERER_LEN));
        let cases: &[&[u8]] = &[
            b"",
            b"android-app://com.google.android.gm/",
            b"ftp://example.com/file",
            b"file:///etc/passwd",
            b"about:blank",
            b"not a url",
            b"/relative/path",
            b"https://",
            b"https://exa mple.com/",
            b"https://example.com:99999/",
            b"https://\xff\xfe.com/",
            long.as_bytes(),
        ];
        assert_eq!(referrer_host(None), None);
        for &referer in cases {
            assert_eq!(
                referrer_host(Some(referer)),
                None,
                "{}",
                String::from_utf8_lossy(referer)
            );
        }
    }

    #[test]
    fn referrer_host_accepts_a_referer_at_the_length_limit() {
        let prefix = "https://example.com/";
        let at_limit = format!("{prefix}{}", "a".repeat(MAX_REFERER_LEN - prefix.len()));
        assert_eq!(at_limit.len(), MAX_REFERER_LEN);
        assert_eq!(
            referrer_host(Some(at_limit.as_bytes())).as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn country_is_two_letters_upper_cased() {
        assert_eq!(country(Some(b"US")), Some(*b"US"));
        assert_eq!(country(Some(b"de")), Some(*b"DE"));
        assert_eq!(country(Some(b"gB")), Some(*b"GB"));
    }

    #[test]
    fn country_rejects_unknown_tor_and_malformed_values() {
        let cases: &[&[u8]] = &[
            b"XX",
            b"xx",
            b"ZZ",
            b"T1",
            b"",
            b"U",
            b"USA",
            b"U1",
            b"12",
            b" U",
            b"U-",
            b"\xc3\xa9",
        ];
        assert_eq!(country(None), None);
        for &value in cases {
            assert_eq!(
                country(Some(value)),
                None,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
