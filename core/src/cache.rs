//! In-memory caches on the redirect path: links by code (with a bounded
//! negative cache of unknown codes) and middleware-mode templates by
//! normalised URL.
//!
//! Both are dashmaps; no guard is ever held across an `.await` or a second
//! operation on the same map. Bounds are enforced on insert: a full map
//! sheds about an eighth of its entries (a full negative cache is cleared),
//! which keeps memory bounded without per-hit bookkeeping on the hot path.

use std::sync::atomic::{AtomicUsize, Ordering};

use compact_str::CompactString;
use dashmap::DashMap;

use crate::store::Link;

/// What the redirect path needs of a link, in one small record with a single
/// heap allocation (the template), so a lookup touches as few cache lines as
/// possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLink {
    /// The link's row id (clicks refer to it).
    pub id: i64,
    /// Prefix and suffix of the template, back to back.
    template: Box<str>,
    /// Where the prefix ends (the sub-ID slot).
    split: u32,
    /// The provider's metrics label index.
    pub provider: u16,
    /// Disabled links answer 410.
    pub disabled: bool,
}

impl CachedLink {
    /// A cached link from its template halves.
    pub fn new(id: i64, prefix: &str, suffix: &str, disabled: bool, provider: u16) -> CachedLink {
        let mut template = String::with_capacity(prefix.len() + suffix.len());
        template.push_str(prefix);
        template.push_str(suffix);
        CachedLink {
            id,
            template: template.into_boxed_str(),
            split: prefix.len() as u32,
            provider,
            disabled,
        }
    }

    /// From a stored link, with its provider's label index.
    pub fn from_link(link: &Link, provider: u16) -> CachedLink {
        Self::new(
            link.id,
            &link.template_prefix,
            &link.template_suffix,
            link.disabled,
            provider,
        )
    }

    /// Template bytes before the sub-ID slot.
    pub fn prefix(&self) -> &str {
        &self.template[..self.split as usize]
    }

    /// Template bytes after the slot.
    pub fn suffix(&self) -> &str {
        &self.template[self.split as usize..]
    }
}

/// A cache lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<R> {
    /// The link was cached; what the caller computed from it.
    Hit(R),
    /// Known not to exist.
    Missing,
    /// Not cached either way: ask the store.
    Unknown,
}

/// A dashmap with a size bound. Keys (link codes, URLs) are stored inline
/// when short, so comparing one needs no pointer chase.
#[derive(Debug)]
struct Bounded<V> {
    map: DashMap<CompactString, V>,
    max: usize,
    evictions: AtomicUsize,
}

impl<V> Bounded<V> {
    fn new(max: usize) -> Self {
        Bounded {
            map: DashMap::new(),
            max,
            evictions: AtomicUsize::new(0),
        }
    }

    fn insert(&self, key: &str, value: V, clear_when_full: bool) {
        if self.map.len() >= self.max && !self.map.contains_key(key) {
            if clear_when_full {
                self.map.clear();
            } else {
                // Shed about an eighth, spread over the map.
                let mut n = 0usize;
                self.map.retain(|_, _| {
                    n += 1;
                    !n.is_multiple_of(8)
                });
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        self.map.insert(CompactString::from(key), value);
    }
}

/// Links by code, and unknown codes.
#[derive(Debug)]
pub struct LinkCache {
    links: Bounded<CachedLink>,
    missing: Bounded<()>,
}

impl LinkCache {
    /// A cache holding at most `max_links` links and `max_missing` unknown codes.
    pub fn new(max_links: usize, max_missing: usize) -> LinkCache {
        LinkCache {
            links: Bounded::new(max_links),
            missing: Bounded::new(max_missing),
        }
    }

    /// Looks a code up and, on a hit, runs `f` on the link while its shard
    /// is read-locked (so `f` must not touch this cache).
    pub fn get<R>(&self, code: &str, f: impl FnOnce(&CachedLink) -> R) -> Lookup<R> {
        if let Some(link) = self.links.map.get(code) {
            return Lookup::Hit(f(link.value()));
        }
        if self.missing.map.contains_key(code) {
            return Lookup::Missing;
        }
        Lookup::Unknown
    }

    /// Caches a link.
    pub fn insert(&self, code: &str, link: CachedLink) {
        self.missing.map.remove(code);
        self.links.insert(code, link, false);
    }

    /// Remembers that a code does not exist.
    pub fn insert_missing(&self, code: &str) {
        self.missing.insert(code, (), true);
    }

    /// Forgets a code either way (after a change to the link).
    pub fn invalidate(&self, code: &str) {
        self.links.map.remove(code);
        self.missing.map.remove(code);
    }

    /// Links cached.
    pub fn len(&self) -> usize {
        self.links.map.len()
    }

    /// Whether no link is cached.
    pub fn is_empty(&self) -> bool {
        self.links.map.is_empty()
    }
}

/// Middleware-mode templates by normalised URL.
#[derive(Debug)]
pub struct GoCache {
    urls: Bounded<(CompactString, CachedLink)>,
}

impl GoCache {
    /// A cache of at most `max` URLs.
    pub fn new(max: usize) -> GoCache {
        GoCache {
            urls: Bounded::new(max),
        }
    }

    /// Runs `f` on the link code and cached link for a normalised URL, under
    /// the shard's read lock.
    pub fn get<R>(&self, key: &str, f: impl FnOnce(&str, &CachedLink) -> R) -> Option<R> {
        self.urls
            .map
            .get(key)
            .map(|e| f(&e.value().0, &e.value().1))
    }

    /// Caches the link made for a normalised URL.
    pub fn insert(&self, key: &str, code: &str, link: CachedLink) {
        self.urls.insert(key, (code.into(), link), false);
    }

    /// Forgets every URL whose link has this code.
    pub fn invalidate_code(&self, code: &str) {
        self.urls.map.retain(|_, (c, _)| c != code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: i64) -> CachedLink {
        CachedLink::new(id, "https://t.test/?s=", "&x=1", false, 0)
    }

    fn id_of(cache: &LinkCache, code: &str) -> Lookup<i64> {
        cache.get(code, |l| l.id)
    }

    #[test]
    fn hit_missing_and_unknown() {
        let cache = LinkCache::new(10, 10);
        assert_eq!(id_of(&cache, "a"), Lookup::Unknown);
        cache.insert_missing("a");
        assert_eq!(id_of(&cache, "a"), Lookup::Missing);
        cache.insert("a", link(1));
        assert_eq!(
            cache.get("a", |l| (l.prefix().to_owned(), l.suffix().to_owned())),
            Lookup::Hit(("https://t.test/?s=".to_owned(), "&x=1".to_owned()))
        );
        cache.invalidate("a");
        assert_eq!(id_of(&cache, "a"), Lookup::Unknown);
    }

    #[test]
    fn bounds_hold_under_many_inserts() {
        let cache = LinkCache::new(100, 50);
        for i in 0..10_000 {
            cache.insert(&format!("c{i}"), link(i));
            cache.insert_missing(&format!("m{i}"));
        }
        assert!(cache.len() <= 100, "{}", cache.len());
        assert!(cache.missing.map.len() <= 50);
        // The newest entries are always present.
        assert_eq!(id_of(&cache, "c9999"), Lookup::Hit(9999));
        assert_eq!(id_of(&cache, "m9999"), Lookup::Missing);
    }

    #[test]
    fn go_cache_forgets_urls_of_a_changed_link() {
        let go = GoCache::new(10);
        go.insert("https://a.test/1", "code1", link(1));
        go.insert("https://a.test/2", "code2", link(2));
        go.invalidate_code("code1");
        assert!(go.get("https://a.test/1", |_, _| ()).is_none());
        assert_eq!(
            go.get("https://a.test/2", |c, l| (c.to_owned(), l.id)),
            Some(("code2".to_owned(), 2))
        );
    }
}
