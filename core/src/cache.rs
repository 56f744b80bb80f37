//! In-memory caches on the redirect path: links by code (with a bounded
//! negative cache of unknown codes) and middleware-mode templates by
//! normalised URL.
//!
//! Both are dashmaps; no guard is ever held across an `.await` or a second
//! operation on the same map. Bounds are enforced on insert: a full map
//! sheds about an eighth of its entries (a full negative cache is cleared),
//! which keeps memory bounded without per-hit bookkeeping on the hot path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::store::Link;

/// What the redirect path needs of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLink {
    /// The link's row id (clicks refer to it).
    pub id: i64,
    /// Template bytes before the sub-ID slot.
    pub prefix: Box<str>,
    /// Template bytes after the slot.
    pub suffix: Box<str>,
    /// Disabled links answer 410.
    pub disabled: bool,
    /// The provider's metrics label index.
    pub provider: u16,
}

impl CachedLink {
    /// From a stored link, with its provider's label index.
    pub fn from_link(link: &Link, provider: u16) -> CachedLink {
        CachedLink {
            id: link.id,
            prefix: link.template_prefix.as_str().into(),
            suffix: link.template_suffix.as_str().into(),
            disabled: link.disabled,
            provider,
        }
    }
}

/// A cache lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The link.
    Hit(Arc<CachedLink>),
    /// Known not to exist.
    Missing,
    /// Not cached either way: ask the store.
    Unknown,
}

/// A dashmap with a size bound.
#[derive(Debug)]
struct Bounded<V> {
    map: DashMap<Box<str>, V>,
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
        self.map.insert(key.into(), value);
    }
}

/// Links by code, and unknown codes.
#[derive(Debug)]
pub struct LinkCache {
    links: Bounded<Arc<CachedLink>>,
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

    /// Looks a code up.
    pub fn get(&self, code: &str) -> Lookup {
        if let Some(link) = self.links.map.get(code) {
            return Lookup::Hit(Arc::clone(link.value()));
        }
        if self.missing.map.contains_key(code) {
            return Lookup::Missing;
        }
        Lookup::Unknown
    }

    /// Caches a link.
    pub fn insert(&self, code: &str, link: Arc<CachedLink>) {
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
    urls: Bounded<(Box<str>, Arc<CachedLink>)>,
}

impl GoCache {
    /// A cache of at most `max` URLs.
    pub fn new(max: usize) -> GoCache {
        GoCache {
            urls: Bounded::new(max),
        }
    }

    /// The link code and cached link for a normalised URL.
    pub fn get(&self, key: &str) -> Option<(Box<str>, Arc<CachedLink>)> {
        self.urls
            .map
            .get(key)
            .map(|e| (e.value().0.clone(), Arc::clone(&e.value().1)))
    }

    /// Caches the link made for a normalised URL.
    pub fn insert(&self, key: &str, code: &str, link: Arc<CachedLink>) {
        self.urls.insert(key, (code.into(), link), false);
    }

    /// Forgets every URL whose link has this code.
    pub fn invalidate_code(&self, code: &str) {
        self.urls.map.retain(|_, (c, _)| &**c != code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: i64) -> Arc<CachedLink> {
        Arc::new(CachedLink {
            id,
            prefix: "https://t.test/?s=".into(),
            suffix: "".into(),
            disabled: false,
            provider: 0,
        })
    }

    #[test]
    fn hit_missing_and_unknown() {
        let cache = LinkCache::new(10, 10);
        assert_eq!(cache.get("a"), Lookup::Unknown);
        cache.insert_missing("a");
        assert_eq!(cache.get("a"), Lookup::Missing);
        cache.insert("a", link(1));
        assert_eq!(cache.get("a"), Lookup::Hit(link(1)));
        cache.invalidate("a");
        assert_eq!(cache.get("a"), Lookup::Unknown);
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
        assert_eq!(cache.get("c9999"), Lookup::Hit(link(9999)));
        assert_eq!(cache.get("m9999"), Lookup::Missing);
    }

    #[test]
    fn go_cache_forgets_urls_of_a_changed_link() {
        let go = GoCache::new(10);
        go.insert("https://a.test/1", "code1", link(1));
        go.insert("https://a.test/2", "code2", link(2));
        go.invalidate_code("code1");
        assert!(go.get("https://a.test/1").is_none());
        assert_eq!(
            go.get("https://a.test/2").map(|(c, _)| c),
            Some("code2".into())
        );
    }
}
