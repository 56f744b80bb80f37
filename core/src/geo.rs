//! The visitor's country, for the click row and targeting: from a header a
//! trusted proxy sets (`CF-IPCountry`), else from the client's address in a
//! MaxMind-format country database (GeoLite2-Country, GeoIP2-Country, DB-IP
//! lite `.mmdb`).
//!
//! The client's address is the socket peer's, or, when the peer is one of
//! the trusted proxies, the first address in `X-Forwarded-For` (or
//! `Forwarded: for=`) counted from the right that is not itself a trusted
//! proxy. From any other peer those headers are ignored: a visitor cannot
//! choose their country by sending one.
//!
//! The database is read whole into memory (a country database is a few
//! MiB) rather than memory-mapped: mapping needs `unsafe` (this crate has
//! none), and a file rewritten in place under a mapping kills the process
//! with SIGBUS. A background task checks the file's size, modification
//! time and inode every `check_interval`; a changed file is read and parsed
//! on the blocking pool and swapped in atomically ([`ArcSwap`]), so a
//! request never waits on the disk or a lock. A file that fails to parse is
//! logged and the previous database stays.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use maxminddb::{PathElement, Reader};
use tracing::{info, warn};

use crate::classify::country;

/// Longest forwarding header looked at, in bytes.
const MAX_FORWARDED_LEN: usize = 1024;

/// A geo database that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("geo database {path}: {message}")]
pub struct GeoError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// What identifies a version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

/// One version of the database, parsed.
struct Database {
    reader: Reader<Vec<u8>>,
    stamp: Stamp,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("type", &self.reader.metadata().database_type)
            .field("stamp", &self.stamp)
            .finish()
    }
}

fn open(path: &Path) -> Result<Database, GeoError> {
    let err = |message: String| GeoError {
        path: path.to_owned(),
        message,
    };
    let before = stamp(path).map_err(|e| err(e.to_string()))?;
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let reader = Reader::from_source(bytes).map_err(|e| err(e.to_string()))?;
    Ok(Database {
        reader,
        stamp: before,
    })
}

impl Database {
    fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let found = self.reader.lookup(ip).ok()?;
        let code = |key: &str| {
            found
                .decode_path::<&str>(&[PathElement::Key(key), PathElement::Key("iso_code")])
                .ok()
                .flatten()
        };
        let code = code("country").or_else(|| code("registered_country"))?;
        country(Some(code.as_bytes()))
    }
}

/// Where a visitor's country comes from. Cheap to share; the database is
/// swapped under it when the file changes.
#[derive(Debug, Default)]
pub struct Geo {
    header: Option<HeaderName>,
    proxies: Vec<IpNet>,
    file: Option<PathBuf>,
    db: Arc<ArcSwapOption<Database>>,
}

impl Geo {
    /// Country from `header` (set by a trusted proxy), else from the
    /// database at `database` (read now: an error is a start-up error),
    /// with the client's address read through `proxies`.
    pub fn new(
        header: Option<HeaderName>,
        proxies: Vec<IpNet>,
        database: Option<&Path>,
    ) -> Result<Geo, GeoError> {
        let db = match database {
            Some(path) => Some(Arc::new(open(path)?)),
            None => None,
        };
        Ok(Geo {
            header,
            proxies,
            file: database.map(Path::to_owned),
            db: Arc::new(ArcSwapOption::new(db)),
        })
    }

    /// Whether anything can give a country.
    pub fn is_enabled(&self) -> bool {
        self.header.is_some() || self.file.is_some()
    }

    /// The visitor's country: the trusted header's, else the database's
    /// for the client's address. `peer`: the socket's remote address.
    #[inline]
    pub fn country(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<[u8; 2]> {
        // With trusted proxies configured, only they may set the header: a
        // visitor reaching the server directly cannot pick a country.
        if let Some(h) = &self.header
            && (self.proxies.is_empty() || peer.is_some_and(|p| self.trusted(p)))
            && let Some(c) = country(headers.get(h).map(HeaderValue::as_bytes))
        {
            return Some(c);
        }
        self.file.as_ref()?;
        let ip = self.client_ip(headers, peer?);
        self.db.load().as_ref()?.country(ip)
    }

    /// The database's country for an address (no headers).
    pub fn lookup(&self, ip: IpAddr) -> Option<[u8; 2]> {
        self.db.load().as_ref()?.country(ip)
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer`, or, if `peer` is a trusted proxy, the
    /// rightmost forwarded address that is not one. `X-Forwarded-For` is
    /// read if the request has one (every line of it, in order); only a
    /// request without it is read through `Forwarded: for=`, so a visitor
    /// cannot slip a `Forwarded` header past a proxy that writes
    /// `X-Forwarded-For`. An entry that is not an address, or a line that is
    /// overlong or not text, stops the walk at the last trusted hop.
    /// Allocates nothing.
    pub fn client_ip(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusted(peer) {
            return peer;
        }
        let mut client = peer;
        // Steps one hop to the left; `false` when the walk ends here.
        let mut step = |hop: Option<IpAddr>| match hop {
            Some(ip) => {
                client = canonical(ip);
                self.trusted(client)
            }
            None => false,
        };
        let xff = headers.get_all("x-forwarded-for");
        if xff.iter().next().is_some() {
            for value in xff.iter().rev() {
                let Some(text) = readable(value) else {
                    return client;
                };
                for entry in text.rsplit(',') {
                    if !step(parse_addr(entry.trim())) {
                        return client;
                    }
                }
            }
        } else {
            for value in headers.get_all(http::header::FORWARDED).iter().rev() {
                let Some(text) = readable(value) else {
                    return client;
                };
                for element in text.rsplit(',') {
                    let for_ = element.split(';').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                    });
                    // An element without `for` says nothing about the client.
                    if let Some(v) = for_
                        && !step(parse_addr(v))
                    {
                        return client;
                    }
                }
            }
        }
        client
    }

    /// Starts the task that swaps in a changed database file, checking
    /// every `every`; `None` when there is no file. Runs until aborted.
    pub fn watch(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.file.clone()?;
        let db = Arc::clone(&self.db);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // A file that failed to parse is not tried again until it changes.
            let mut broken = None;
            loop {
                tick.tick().await;
                let current = db.load().as_ref().map(|d| d.stamp);
                let p = path.clone();
                let Ok(Ok(now)) = tokio::task::spawn_blocking(move || stamp(&p)).await else {
                    // Gone for a moment (being replaced): keep the old one.
                    continue;
                };
                if Some(now) == current || Some(now) == broken {
                    continue;
                }
                let p = path.clone();
                match tokio::task::spawn_blocking(move || open(&p)).await {
                    Ok(Ok(new)) => {
                        info!(path = %path.display(), "geo database reloaded");
                        crate::metrics::geo_reloaded(true);
                        db.store(Some(Arc::new(new)));
                        broken = None;
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, "geo database not reloaded; keeping the previous one");
                        crate::metrics::geo_reloaded(false);
                        broken = Some(now);
                    }
                    Err(e) => warn!(error = %e, "geo reload task failed"),
                }
            }
        }))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A forwarding header's text, if it is text and not overlong.
fn readable(value: &HeaderValue) -> Option<&str> {
    value.to_str().ok().filter(|t| t.len() <= MAX_FORWARDED_LEN)
}

/// An address as forwarding headers write it: bare, `[v6]`, `v4:port`,
/// `[v6]:port`, optionally quoted.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(proxies: &[&str]) -> Geo {
        Geo {
            header: Some(HeaderName::from_static("cf-ipcountry")),
            proxies: proxies.iter().map(|p| p.parse().expect("cidr")).collect(),
            file: None,
            db: Arc::default(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let g = geo(&["10.0.0.0/8", "::1/128"]);
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
        // From a proxy: the rightmost address that is not a proxy.
        assert_eq!(g.client_ip(&xff, ip("10.1.2.3")), ip("203.0.113.7"));
        // From anyone else: the header is a lie until proven otherwise.
        assert_eq!(g.client_ip(&xff, ip("198.51.100.1")), ip("198.51.100.1"));
        // A visitor's own forged entry left of the real one is skipped.
        let forged = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        assert_eq!(g.client_ip(&forged, ip("10.0.0.1")), ip("203.0.113.7"));
        // IPv4-mapped peers are their IPv4 address; IPv6 proxies work.
        assert_eq!(g.client_ip(&xff, ip("::ffff:10.0.0.1")), ip("203.0.113.7"));
        assert_eq!(g.client_ip(&xff, ip("::1")), ip("203.0.113.7"));
        // Several header lines read as one list, in order.
        let split = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        assert_eq!(g.client_ip(&split, ip("10.0.0.1")), ip("203.0.113.9"));
        // A Forwarded header does not count when X-Forwarded-For is there,
        // and an overlong X-Forwarded-For line stops the walk at the peer.
        let mut both = xff.clone();
        both.insert("forwarded", HeaderValue::from_static("for=5.6.7.8"));
        assert_eq!(g.client_ip(&both, ip("10.0.0.1")), ip("203.0.113.7"));
        let mut long = HeaderMap::new();
        long.insert(
            "x-forwarded-for",
            HeaderValue::from_str(&"1.2.3.4, ".repeat(200)).expect("value"),
        );
        long.insert("forwarded", HeaderValue::from_static("for=5.6.7.8"));
        assert_eq!(g.client_ip(&long, ip("10.0.0.1")), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        let junk = headers(&[("x-forwarded-for", "203.0.113.7, not-an-ip, 10.0.0.3")]);
        assert_eq!(g.client_ip(&junk, ip("10.0.0.1")), ip("10.0.0.3"));
        // No header: the peer.
        assert_eq!(
            g.client_ip(&HeaderMap::new(), ip("10.0.0.1")),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_forwarded_header_is_read_when_x_forwarded_for_is_absent() {
        let g = geo(&["10.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.4"#,
        )]);
        assert_eq!(g.client_ip(&h, ip("10.0.0.1")), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=192.0.2.60:8080;by=10.0.0.1")]);
        assert_eq!(g.client_ip(&h, ip("10.0.0.1")), ip("192.0.2.60"));
    }

    #[test]
    fn with_trusted_proxies_only_they_may_set_the_country_header() {
        let g = geo(&["10.0.0.0/8"]);
        let h = headers(&[("cf-ipcountry", "DE")]);
        assert_eq!(g.country(&h, Some(ip("10.0.0.1"))), Some(*b"DE"));
        assert_eq!(g.country(&h, Some(ip("198.51.100.1"))), None);
    }

    #[test]
    fn the_trusted_header_wins_and_bad_values_are_ignored() {
        let g = geo(&[]);
        let h = headers(&[("cf-ipcountry", "de")]);
        assert_eq!(g.country(&h, Some(ip("1.2.3.4"))), Some(*b"DE"));
        for bad in ["XX", "T1X", "", "D3"] {
            let mut h = HeaderMap::new();
            h.insert("cf-ipcountry", HeaderValue::from_str(bad).expect("value"));
            assert_eq!(g.country(&h, Some(ip("1.2.3.4"))), None, "{bad:?}");
        }
    }
}
