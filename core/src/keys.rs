//! Admin API keys and the per-key rate limiter.
//!
//! A key is `lwk_<id>_<secret>`: the prefix makes a leaked key easy to
//! recognise (and to scan for), the 12-character base62 `id` is public (the
//! `api_keys` primary key, shown by `keys list`), and the 32-character base62
//! `secret` (~190 bits from the OS) is shown once, at creation, and never
//! stored: the table holds only its SHA-256 hash.
//!
//! [`authenticate`] checks an `Authorization: Bearer <key>` header value by
//! looking the id up and comparing hashes in constant time. There is no cache:
//! a primary-key lookup costs a few microseconds, and without a cache a
//! [`revoke_key`] takes effect on the very next request.
//!
//! [`RateLimiter`] is a token bucket per key id, for the admin API's
//! `429 Too Many Requests` with `Retry-After`.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use dashmap::DashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::now_ms;
use crate::store::StoreError;

/// The prefix of every key.
pub const KEY_PREFIX: &str = "lwk_";
/// Characters in a key's public id.
pub const ID_LEN: usize = 12;
/// Characters in a key's secret (62^32 ≈ 2^190).
pub const SECRET_LEN: usize = 32;
/// Characters in a whole key: prefix, id, `_`, secret.
pub const KEY_LEN: usize = KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN;
/// The longest key name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a key may do. [`Scope::Write`] implies [`Scope::Read`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read links, clicks, stats and jobs.
    Read,
    /// Create, change and delete links; start jobs. Implies [`Scope::Read`].
    Write,
}

impl Scope {
    /// Every scope, weakest first.
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Write];

    /// The stable string form (`"read"`, `"write"`), as stored and as the
    /// API and CLI spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    /// Whether holding `self` grants `needed`.
    pub const fn implies(self, needed: Scope) -> bool {
        matches!(
            (self, needed),
            (Scope::Read, Scope::Read) | (Scope::Write, _)
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = KeyError;

    /// Parses `"read"` or `"write"` (exact, lower case).
    fn from_str(s: &str) -> Result<Scope, KeyError> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| KeyError::InvalidScope(s.to_owned()))
    }
}

/// A stored key's public facts (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    /// The public id: 12 base62 characters, the middle part of the key.
    pub id: String,
    /// The operator's name for the key.
    pub name: String,
    /// What the key may do, sorted and without duplicates.
    pub scopes: Vec<Scope>,
    /// When the key was created, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Whether the key has been revoked.
    pub revoked: bool,
}

impl ApiKey {
    /// Whether the key grants `needed` ([`Scope::Write`] implies
    /// [`Scope::Read`]). A revoked key grants nothing.
    pub fn allows(&self, needed: Scope) -> bool {
        !self.revoked && self.scopes.iter().any(|held| held.implies(needed))
    }
}

/// Why creating, listing or revoking keys failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed (internal; a retry may help if it was busy).
    #[error("API key store: {0}")]
    Store(#[from] StoreError),
    /// No key has this id (client error).
    #[error("no API key with id `{0}`")]
    NotFound(String),
    /// The key name is unusable (client error); the message says why.
    #[error("invalid API key name: {0}")]
    InvalidName(String),
    /// A scope string is not one of `read`, `write` (client error).
    #[error("unknown scope `{0}`; expected one of: read, write")]
    InvalidScope(String),
    /// A key must have at least one scope (client error).
    #[error("an API key needs at least one scope (read, write)")]
    NoScopes,
    /// The OS gave no randomness, so no secret could be made (internal).
    #[error("no OS randomness for a new API key: {0}")]
    Randomness(getrandom::Error),
}

impl KeyError {
    /// Whether the caller's input is at fault (as opposed to the service).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            KeyError::NotFound(_)
                | KeyError::InvalidName(_)
                | KeyError::InvalidScope(_)
                | KeyError::NoScopes
        )
    }
}

/// Why a presented key is refused; every variant maps to `401 Unauthorized`.
///
/// A wrong secret is reported as [`AuthFailure::Unknown`], exactly like an id
/// that does not exist, and [`AuthFailure::Revoked`] only for the right
/// secret, so a refusal never tells a guesser more than "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header, or an empty one.
    Missing,
    /// The header is not `Bearer lwk_<id>_<secret>`.
    Malformed,
    /// No key with this id and secret.
    Unknown,
    /// The key was revoked.
    Revoked,
}

impl AuthFailure {
    /// A stable message for the response body.
    pub const fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "missing API key: send the header `Authorization: Bearer <api key>`"
            }
            AuthFailure::Malformed => {
                "malformed Authorization header: expected `Bearer lwk_<id>_<secret>`"
            }
            AuthFailure::Unknown => "unknown API key",
            AuthFailure::Revoked => "API key has been revoked",
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthFailure {}

/// Why [`authenticate`] did not return a key.
///
/// The two cases need different answers: a refusal is the client's fault
/// (`401`), a database error is ours (`500`/`503`) and says nothing about the
/// key, so it must not be reported as a refusal.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key was refused.
    #[error(transparent)]
    Refused(#[from] AuthFailure),
    /// The key could not be checked because the store failed.
    #[error("could not check API key: {0}")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// The refusal, if this is one.
    pub fn failure(&self) -> Option<AuthFailure> {
        match self {
            AuthError::Refused(failure) => Some(*failure),
            AuthError::Store(_) => None,
        }
    }
}

/// API key storage. The domain rules (names, scopes, secrets, constant-time
/// comparison) live in this module; a backend only keeps rows.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Stores a new key with the SHA-256 hash of its secret.
    fn insert_key(&self, key: &ApiKey, secret_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// Every key, revoked ones included, oldest first (then by id).
    fn keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// The key with this id and its stored secret hash.
    fn key_by_id(&self, id: &str) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError>;
    /// Marks the key revoked at `now_ms`, keeping an earlier revocation
    /// time; false if no key has this id.
    fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError>;
}

/// Creates a key named `name` (trimmed; 1–64 characters, no control
/// characters) with `scopes` (at least one; stored sorted, without
/// duplicates). Returns its facts and the full key, which is shown once and
/// cannot be recovered later.
pub fn create_key(
    store: &dyn KeyStore,
    name: &str,
    scopes: &[Scope],
) -> Result<(ApiKey, String), KeyError> {
    let name = validate_name(name)?;
    let mut scopes = scopes.to_vec();
    scopes.sort_unstable();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(KeyError::NoScopes);
    }
    let id = random_base62(ID_LEN)?;
    let secret = random_base62(SECRET_LEN)?;
    let key = ApiKey {
        id,
        name,
        scopes,
        created_ms: now_ms(),
        revoked: false,
    };
    store.insert_key(&key, &hash_secret(&secret))?;
    let full = format!("{KEY_PREFIX}{}_{secret}", key.id);
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    tracing::info!(key_id = %key.id, name = %key.name, scopes = ?scopes, "API key created");
    Ok((key, full))
}

/// Every key, revoked ones included, oldest first.
pub fn list_keys(store: &dyn KeyStore) -> Result<Vec<ApiKey>, KeyError> {
    Ok(store.keys()?)
}

/// The key with this id, revoked or not; `None` if there is none. For a
/// console session, which holds a key's id (never its secret) and checks
/// on every request that the key still stands.
pub fn key_by_id(store: &dyn KeyStore, id: &str) -> Result<Option<ApiKey>, KeyError> {
    Ok(store.key_by_id(id)?.map(|(key, _)| key))
}

/// Revokes the key with this id; it is refused from the next request on.
/// Revoking an already revoked key succeeds and keeps the first revocation
/// time. [`KeyError::NotFound`] if no key has this id.
pub fn revoke_key(store: &dyn KeyStore, id: &str) -> Result<(), KeyError> {
    if !store.revoke_key(id, now_ms())? {
        return Err(KeyError::NotFound(id.to_owned()));
    }
    tracing::info!(key_id = %id, "API key revoked");
    Ok(())
}

/// Checks an `Authorization` header value (`Bearer <key>`; the scheme in any
/// case, surrounding spaces tolerated) and returns the key's facts.
///
/// A missing or blank header is [`AuthFailure::Missing`]; anything that is
/// not `Bearer lwk_<12 base62>_<32 base62>` (including non-UTF-8 bytes) is
/// [`AuthFailure::Malformed`] and never reaches the store. The store
/// failing is [`AuthError::Store`], not a refusal.
pub fn authenticate(
    store: &dyn KeyStore,
    authorization: Option<&[u8]>,
) -> Result<ApiKey, AuthError> {
    let (id, secret) = parse_authorization(authorization)?;
    let presented = hash_secret(secret);
    let Some((key, stored)) = store.key_by_id(id)? else {
        // Do the same constant-time comparison as for a real key, so the
        // comparison itself does not set unknown ids apart. (The database
        // lookup may still take slightly different times; ids are public
        // anyway. The secret is what must not leak, and it never does.)
        std::hint::black_box(bool::from(DUMMY_HASH.ct_eq(&presented)));
        return Err(AuthFailure::Unknown.into());
    };
    // `[u8]::ct_eq` compares in constant time for equal lengths and is false
    // for a stored hash of any other length.
    if !bool::from(stored.as_slice().ct_eq(&presented[..])) {
        return Err(AuthFailure::Unknown.into());
    }
    if key.revoked {
        return Err(AuthFailure::Revoked.into());
    }
    Ok(key)
}

/// Compared against when the id is unknown; no secret hashes to it.
const DUMMY_HASH: [u8; 32] = [0; 32];

/// Splits a header value into `(id, secret)`, refusing anything else.
fn parse_authorization(authorization: Option<&[u8]>) -> Result<(&str, &str), AuthFailure> {
    let raw = authorization.ok_or(AuthFailure::Missing)?;
    let value = std::str::from_utf8(raw)
        .map_err(|_| AuthFailure::Malformed)?
        .trim_matches(is_space);
    if value.is_empty() {
        return Err(AuthFailure::Missing);
    }
    let (scheme, credentials) = value.split_once(is_space).ok_or(AuthFailure::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Malformed);
    }
    parse_key(credentials.trim_start_matches(is_space)).ok_or(AuthFailure::Malformed)
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits `lwk_<id>_<secret>` into `(id, secret)`; `None` if it is not
/// exactly that shape.
fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN {
        return None;
    }
    let (id, secret) = rest.split_once('_')?;
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    (id.len() == ID_LEN && base62(id) && base62(secret)).then_some((id, secret))
}

/// SHA-256 of the secret. A fast, unsalted hash is right here: the secret is
/// ~190 random bits, so there is nothing for a slow hash or salt to protect
/// against (no dictionary, no feasible brute force), and every admin request
/// pays for the hash.
fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// `len` uniformly random base62 characters from the OS.
fn random_base62(len: usize) -> Result<String, KeyError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(KeyError::Randomness)?;
        // Rejection sampling: bytes below 248 (= 4 × 62) map onto the
        // alphabet without bias.
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if b < 248 {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

fn validate_name(name: &str) -> Result<String, KeyError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(KeyError::InvalidName("the name is empty".to_owned()));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(KeyError::InvalidName(format!(
            "the name has {chars} characters; at most {MAX_NAME_CHARS} are allowed"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(KeyError::InvalidName(
            "the name may not contain control characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

/// Nanoseconds in a minute: one token is this many units, so a bucket
/// refilling at `per_minute` tokens a minute gains exactly `per_minute` units
/// a nanosecond and all arithmetic stays in integers.
const UNITS_PER_TOKEN: u128 = 60_000_000_000;

/// Per-key rate limit: a token bucket per key id.
///
/// Each key may make `burst` requests at once, refilled at `per_minute`
/// requests a minute. Call it after [`authenticate`], with the key's id, so
/// the map holds at most one bucket per real key.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    capacity: u128,
    buckets: DashMap<String, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens left, in units of 1 / [`UNITS_PER_TOKEN`] token.
    units: u128,
    /// When `units` was last brought up to date.
    updated: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests a minute per key, with bursts
    /// of up to `burst` (at least 1). `per_minute == 0` means unlimited.
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            capacity: u128::from(burst.max(1)) * UNITS_PER_TOKEN,
            buckets: DashMap::new(),
        }
    }

    /// `Ok(())` if the key may proceed now, else `Err(seconds)` to wait
    /// (at least 1), for `Retry-After`.
    pub fn check(&self, key_id: &str) -> Result<(), u64> {
        self.check_at(key_id, Instant::now())
    }

    /// [`RateLimiter::check`] as of `now`, so tests need not sleep.
    pub fn check_at(&self, key_id: &str, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        // Each guard lives only for the bucket update; the second lookup
        // (allocating the key) happens only for a key's first request.
        if let Some(mut bucket) = self.buckets.get_mut(key_id) {
            return self.take(&mut bucket, now);
        }
        let mut bucket = self
            .buckets
            .entry(key_id.to_owned())
            .or_insert_with(|| Bucket {
                units: self.capacity,
                updated: now,
            });
        self.take(&mut bucket, now)
    }

    /// Whether `key` could proceed now, without spending anything: for a
    /// limit on failures (the console's failed sign-ins), looked at before
    /// an attempt and charged with [`RateLimiter::check`] only when the
    /// attempt fails.
    pub fn peek(&self, key: &str) -> Result<(), u64> {
        self.peek_at(key, Instant::now())
    }

    /// [`RateLimiter::peek`] as of `now`.
    pub fn peek_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        match self.buckets.get(key) {
            None => Ok(()),
            Some(bucket) => {
                let mut copy = Bucket {
                    units: bucket.units,
                    updated: bucket.updated,
                };
                drop(bucket);
                self.take(&mut copy, now)
            }
        }
    }

    fn take(&self, bucket: &mut Bucket, now: Instant) -> Result<(), u64> {
        let rate = u128::from(self.per_minute);
        // A `now` older than the last update (racing callers) adds nothing.
        let elapsed = now.saturating_duration_since(bucket.updated).as_nanos();
        bucket.units = bucket
            .units
            .saturating_add(elapsed.saturating_mul(rate))
            .min(self.capacity);
        if now > bucket.updated {
            bucket.updated = now;
        }
        if bucket.units >= UNITS_PER_TOKEN {
            bucket.units -= UNITS_PER_TOKEN;
            return Ok(());
        }
        let missing = UNITS_PER_TOKEN - bucket.units;
        let wait_nanos = missing.div_ceil(rate);
        let wait_secs = wait_nanos.div_ceil(1_000_000_000).max(1);
        Err(u64::try_from(wait_secs).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SqliteStore;
    use std::path::PathBuf;
    use std::time::Duration;

    /// A store in a fresh directory, removed on drop.
    struct TestStore {
        store: Option<SqliteStore>,
        dir: PathBuf,
    }

    impl TestStore {
        fn new(test: &str) -> TestStore {
            let dir = crate::testing::scratch(test);
            let store = SqliteStore::open(&dir).expect("open store");
            TestStore {
                store: Some(store),
                dir,
            }
        }

        fn store(&self) -> &SqliteStore {
            self.store.as_ref().expect("store is open")
        }
    }

    impl Drop for TestStore {
        fn drop(&mut self) {
            drop(self.store.take());
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn bearer(key: &str) -> Vec<u8> {
        format!("Bearer {key}").into_bytes()
    }

    fn auth(store: &SqliteStore, header: &[u8]) -> Result<ApiKey, AuthFailure> {
        authenticate(store, Some(header))
            .map_err(|e| e.failure().expect("a refusal, not a database error"))
    }

    #[test]
    fn created_key_authenticates_with_its_scopes() {
        let t = TestStore::new("authenticates");
        for scopes in [
            vec![Scope::Read],
            vec![Scope::Write],
            vec![Scope::Read, Scope::Write],
        ] {
            let (created, full) = create_key(t.store(), "deploy bot", &scopes).expect("create");
            let key = auth(t.store(), &bearer(&full)).expect("authenticates");
            assert_eq!(key, created);
            assert_eq!(key.scopes, scopes);
            assert_eq!(key.name, "deploy bot");
            assert!(!key.revoked);
        }
    }

    #[test]
    fn header_scheme_is_case_insensitive_and_spaces_are_tolerated() {
        let t = TestStore::new("header-forms");
        let (created, full) = create_key(t.store(), "k", &[Scope::Read]).expect("create");
        for header in [
            format!("Bearer {full}"),
            format!("bearer {full}"),
            format!("BEARER {full}"),
            format!("  Bearer   {full}  "),
            format!("Bearer\t{full}"),
        ] {
            let key =
                auth(t.store(), header.as_bytes()).unwrap_or_else(|e| panic!("{header:?}: {e:?}"));
            assert_eq!(key.id, created.id, "{header:?}");
        }
    }

    #[test]
    fn bad_headers_are_refused_with_the_exact_failure() {
        let t = TestStore::new("bad-headers");
        let (_, full) = create_key(t.store(), "k", &[Scope::Read]).expect("create");
        let (id, secret) = parse_key(&full).expect("own key parses");
        let cases: Vec<(&str, Option<Vec<u8>>, AuthFailure)> = vec![
            ("no header", None, AuthFailure::Missing),
            ("empty", Some(b"".to_vec()), AuthFailure::Missing),
            ("blank", Some(b"   ".to_vec()), AuthFailure::Missing),
            (
                "basic scheme",
                Some(b"Basic x".to_vec()),
                AuthFailure::Malformed,
            ),
            (
                "basic scheme with a real key",
                Some(format!("Basic {full}").into_bytes()),
                AuthFailure::Malformed,
            ),
            (
                "scheme only",
                Some(b"Bearer".to_vec()),
                AuthFailure::Malformed,
            ),
            (
                "scheme and spaces",
                Some(b"Bearer   ".to_vec()),
                AuthFailure::Malformed,
            ),
            (
                "prefix only",
                Some(b"Bearer lwk_".to_vec()),
                AuthFailure::Malformed,
            ),
            ("garbage", Some(b"garbage".to_vec()), AuthFailure::Malformed),
            (
                "key without scheme",
                Some(full.clone().into_bytes()),
                AuthFailure::Malformed,
            ),
            (
                "non-UTF-8",
                Some(b"Bearer lwk_\xff\xfe".to_vec()),
                AuthFailure::Malformed,
            ),
            (
                "wrong prefix",
                Some(bearer(&format!("lwx_{id}_{secret}"))),
                AuthFailure::Malformed,
            ),
            (
                "secret too long",
                Some(bearer(&format!("{full}x"))),
                AuthFailure::Malformed,
            ),
            (
                "secret too short",
                Some(bearer(&full[..full.len() - 1])),
                AuthFailure::Malformed,
            ),
            (
                "id too short",
                Some(bearer(&format!("lwk_{}_{secret}x", &id[1..]))),
                AuthFailure::Malformed,
            ),
            (
                "not base62",
                Some(bearer(&format!("lwk_{id}_{}-", &secret[1..]))),
                AuthFailure::Malformed,
            ),
            (
                "two tokens",
                Some(format!("Bearer {full} {full}").into_bytes()),
                AuthFailure::Malformed,
            ),
        ];
        for (name, header, want) in cases {
            let got = authenticate(t.store(), header.as_deref()).map_err(|e| e.failure());
            assert_eq!(got, Err(Some(want)), "{name}");
        }
    }

    #[test]
    fn wrong_secret_and_unknown_id_are_unknown() {
        let t = TestStore::new("unknown");
        let (_, full) = create_key(t.store(), "k", &[Scope::Write]).expect("create");
        let (id, secret) = parse_key(&full).expect("own key parses");
        let other_secret = random_base62(SECRET_LEN).expect("random");
        let other_id = random_base62(ID_LEN).expect("random");
        let mut cases = vec![
            ("wrong secret", format!("lwk_{id}_{other_secret}")),
            ("unknown id", format!("lwk_{other_id}_{secret}")),
        ];
        // Ids are case-sensitive: flip the case of the first letter, if any.
        if let Some(pos) = id.find(|c: char| c.is_ascii_alphabetic()) {
            let mut flipped = id.to_owned().into_bytes();
            flipped[pos] ^= 0x20;
            let flipped = String::from_utf8(flipped).expect("ASCII");
            cases.push(("id differs in case", format!("lwk_{flipped}_{secret}")));
        }
        for (name, key) in cases {
            assert_eq!(
                auth(t.store(), &bearer(&key)),
                Err(AuthFailure::Unknown),
                "{name}"
            );
        }
    }

    #[test]
    fn revoked_key_is_refused_but_only_for_the_right_secret() {
        let t = TestStore::new("revoked");
        let (created, full) = create_key(t.store(), "k", &[Scope::Read]).expect("create");
        let (id, _) = parse_key(&full).expect("own key parses");
        let wrong = format!("lwk_{id}_{}", random_base62(SECRET_LEN).expect("random"));
        revoke_key(t.store(), &created.id).expect("revoke");
        assert_eq!(auth(t.store(), &bearer(&full)), Err(AuthFailure::Revoked));
        assert_eq!(auth(t.store(), &bearer(&wrong)), Err(AuthFailure::Unknown));
        // Revoking twice is fine and the key stays revoked.
        revoke_key(t.store(), &created.id).expect("revoke again");
        assert_eq!(auth(t.store(), &bearer(&full)), Err(AuthFailure::Revoked));
    }

    #[test]
    fn revoking_one_key_leaves_others_working() {
        let t = TestStore::new("revoke-one");
        let (a, _) = create_key(t.store(), "a", &[Scope::Read]).expect("create");
        let (_, b_full) = create_key(t.store(), "b", &[Scope::Read]).expect("create");
        revoke_key(t.store(), &a.id).expect("revoke");
        assert!(auth(t.store(), &bearer(&b_full)).is_ok());
    }

    #[test]
    fn key_has_prefix_lengths_and_base62_alphabet_and_keys_differ() {
        let t = TestStore::new("shape");
        let (a, a_full) = create_key(t.store(), "a", &[Scope::Read]).expect("create");
        let (b, b_full) = create_key(t.store(), "b", &[Scope::Read]).expect("create");
        for (key, full) in [(&a, &a_full), (&b, &b_full)] {
            assert_eq!(full.len(), KEY_LEN);
            assert_eq!(KEY_LEN, 49);
            let rest = full.strip_prefix("lwk_").expect("prefix");
            let (id, secret) = rest.split_once('_').expect("separator");
            assert_eq!(id, key.id);
            assert_eq!(id.len(), 12);
            assert_eq!(secret.len(), 32);
            for part in [id, secret] {
                assert!(part.bytes().all(|c| c.is_ascii_alphanumeric()), "{part}");
            }
        }
        assert_ne!(a_full, b_full);
        assert_ne!(a.id, b.id);
        assert_ne!(a_full.rsplit('_').next(), b_full.rsplit('_').next());
    }

    #[test]
    fn random_base62_uses_the_whole_alphabet() {
        let text = random_base62(4000).expect("random");
        assert_eq!(text.len(), 4000);
        let mut seen = [false; 128];
        for b in text.bytes() {
            seen[usize::from(b)] = true;
        }
        // 4000 draws miss one of 62 symbols with probability ~ 62·(61/62)^4000.
        for &c in BASE62 {
            assert!(seen[usize::from(c)], "{} never drawn", char::from(c));
        }
    }

    #[test]
    fn secret_is_not_stored_only_its_hash() {
        let t = TestStore::new("not-stored");
        let (created, full) =
            create_key(t.store(), "k", &[Scope::Read, Scope::Write]).expect("create");
        let (_, secret) = parse_key(&full).expect("own key parses");
        let (id, name, hash, scopes, created_ms, revoked_ms) = t.store().with_conn(|conn| {
            conn.query_row(
                "SELECT id, name, secret_hash, scopes, created_ms, revoked_ms FROM api_keys WHERE id = ?1",
                [&created.id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, Option<i64>>(5)?,
                    ))
                },
            )
            .expect("row")
        });
        assert_ne!(hash.as_slice(), secret.as_bytes());
        assert_eq!(hash.len(), 32);
        assert_eq!(hash.as_slice(), &Sha256::digest(secret.as_bytes())[..]);
        let hash_contains_secret = hash.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!hash_contains_secret);
        for text in [&id, &name, &scopes, &created_ms.to_string()] {
            assert!(!text.contains(secret), "secret found in {text}");
            assert!(!text.contains(&full), "key found in {text}");
        }
        assert_eq!(revoked_ms, None);
        assert_eq!(scopes, r#"["read","write"]"#);
    }

    #[test]
    fn list_shows_every_key_with_its_revoked_flag() {
        let t = TestStore::new("list");
        assert_eq!(list_keys(t.store()).expect("list"), Vec::new());
        let (a, _) = create_key(t.store(), "alpha", &[Scope::Read]).expect("create");
        let (b, _) = create_key(t.store(), "beta", &[Scope::Write]).expect("create");
        revoke_key(t.store(), &a.id).expect("revoke");
        let listed = list_keys(t.store()).expect("list");
        assert_eq!(listed.len(), 2);
        let find = |id: &str| listed.iter().find(|k| k.id == id).expect("listed");
        assert!(find(&a.id).revoked);
        assert_eq!(find(&a.id).name, "alpha");
        assert!(!find(&b.id).revoked);
        assert_eq!(find(&b.id).scopes, vec![Scope::Write]);
    }

    #[test]
    fn revoking_an_unknown_id_is_not_found() {
        let t = TestStore::new("revoke-unknown");
        match revoke_key(t.store(), "nosuchkey123") {
            Err(KeyError::NotFound(id)) => assert_eq!(id, "nosuchkey123"),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn names_are_trimmed_and_validated() {
        let t = TestStore::new("names");
        let x64 = "x".repeat(64);
        let e64 = "é".repeat(64);
        let cases: Vec<(String, Option<&str>)> = vec![
            ("  ci deploy  ".to_owned(), Some("ci deploy")),
            (x64.clone(), Some(&x64)),
            (e64.clone(), Some(&e64)),
            (format!(" {x64} "), Some(&x64)),
            ("".to_owned(), None),
            ("   ".to_owned(), None),
            ("x".repeat(65), None),
            ("a\nb".to_owned(), None),
            ("tab\there".to_owned(), None),
        ];
        for (name, want) in cases {
            match (create_key(t.store(), &name, &[Scope::Read]), want) {
                (Ok((key, _)), Some(want)) => assert_eq!(key.name, want, "{name:?}"),
                (Err(KeyError::InvalidName(_)), None) => {}
                (got, want) => panic!("{name:?}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn scopes_must_be_non_empty_and_are_normalised() {
        let t = TestStore::new("scopes");
        assert!(matches!(
            create_key(t.store(), "k", &[]),
            Err(KeyError::NoScopes)
        ));
        let (key, full) =
            create_key(t.store(), "k", &[Scope::Write, Scope::Read, Scope::Write]).expect("create");
        assert_eq!(key.scopes, vec![Scope::Read, Scope::Write]);
        assert_eq!(
            auth(t.store(), &bearer(&full)).expect("auth").scopes,
            vec![Scope::Read, Scope::Write]
        );
    }

    #[test]
    fn write_implies_read_but_read_does_not_imply_write() {
        let key = |scopes: Vec<Scope>, revoked| ApiKey {
            id: "id".to_owned(),
            name: "k".to_owned(),
            scopes,
            created_ms: 0,
            revoked,
        };
        let cases = [
            (vec![Scope::Read], false, Scope::Read, true),
            (vec![Scope::Read], false, Scope::Write, false),
            (vec![Scope::Write], false, Scope::Read, true),
            (vec![Scope::Write], false, Scope::Write, true),
            (vec![], false, Scope::Read, false),
            (vec![Scope::Write], true, Scope::Read, false),
        ];
        for (scopes, revoked, needed, want) in cases {
            assert_eq!(
                key(scopes.clone(), revoked).allows(needed),
                want,
                "{scopes:?} revoked={revoked} needs {needed:?}"
            );
        }
    }

    #[test]
    fn scope_strings_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().expect("parses"), scope);
            assert_eq!(
                serde_json::to_string(&scope).expect("json"),
                format!("\"{}\"", scope.as_str())
            );
        }
        assert!(matches!("admin".parse::<Scope>(), Err(KeyError::InvalidScope(s)) if s == "admin"));
        assert!("Read".parse::<Scope>().is_err());
    }

    #[test]
    fn corrupt_stored_scopes_are_a_database_error_not_a_refusal() {
        let t = TestStore::new("corrupt");
        let (key, full) = create_key(t.store(), "k", &[Scope::Read]).expect("create");
        t.store()
            .with_conn(|conn| {
                conn.execute(
                    "UPDATE api_keys SET scopes = 'nope' WHERE id = ?1",
                    [&key.id],
                )
            })
            .expect("update");
        let got = authenticate(t.store(), Some(&bearer(&full)));
        assert!(matches!(got, Err(AuthError::Store(_))), "{got:?}");
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_refuses_with_retry_after() {
        // 6 a minute: one token every 10 s.
        let limiter = RateLimiter::new(6, 3);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check_at("a", t0), Ok(()), "request {i}");
        }
        assert_eq!(limiter.check_at("a", t0), Err(10));
        // Part of the way there: the wait shrinks but stays at least 1 s.
        assert_eq!(
            limiter.check_at("a", t0 + Duration::from_millis(9_500)),
            Err(1)
        );
    }

    #[test]
    fn rate_limiter_refills_after_the_computed_time() {
        // (per minute, burst, expected Retry-After once the burst is spent)
        for (per_minute, burst, want_wait) in [
            (6, 1, 10),
            (60, 2, 1),
            (7, 3, 9), // 60/7 = 8.57 s, rounded up
            (1, 1, 60),
            (1000, 5, 1), // 60 ms, rounded up to the header's whole second
        ] {
            let limiter = RateLimiter::new(per_minute, burst);
            let t0 = Instant::now();
            for _ in 0..burst {
                assert_eq!(limiter.check_at("k", t0), Ok(()));
            }
            let wait = limiter.check_at("k", t0);
            assert_eq!(wait, Err(want_wait), "{per_minute}/min");
            if want_wait > 1 {
                // A second early is still too early: the wait is not padded.
                let early = t0 + Duration::from_secs(want_wait - 1);
                assert!(
                    limiter.check_at("k", early).is_err(),
                    "{per_minute}/min early"
                );
            }
            // At the computed time, exactly the refilled tokens (capped at
            // the burst) are available, and then the bucket is empty again.
            let later = t0 + Duration::from_secs(want_wait);
            let refilled = (want_wait * u64::from(per_minute) / 60).min(u64::from(burst));
            let allowed = (0..=burst)
                .take_while(|_| limiter.check_at("k", later).is_ok())
                .count();
            assert_eq!(
                allowed as u64, refilled,
                "{per_minute}/min after {want_wait}s"
            );
        }
    }

    #[test]
    fn rate_limiter_refill_is_capped_at_the_burst() {
        let limiter = RateLimiter::new(60, 2);
        let t0 = Instant::now();
        assert_eq!(limiter.check_at("k", t0), Ok(()));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(limiter.check_at("k", later), Ok(()));
        assert_eq!(limiter.check_at("k", later), Ok(()));
        assert_eq!(limiter.check_at("k", later), Err(1));
    }

    #[test]
    fn peek_spends_nothing_and_sees_an_exhausted_bucket() {
        let limiter = RateLimiter::new(60, 2);
        let now = Instant::now();
        assert_eq!(limiter.peek_at("ip", now), Ok(()));
        assert_eq!(limiter.peek_at("ip", now), Ok(()));
        assert_eq!(limiter.check_at("ip", now), Ok(()));
        assert_eq!(limiter.peek_at("ip", now), Ok(()));
        assert_eq!(limiter.check_at("ip", now), Ok(()));
        assert_eq!(limiter.peek_at("ip", now), Err(1));
        assert_eq!(limiter.peek_at("ip", now + Duration::from_secs(1)), Ok(()));
        assert_eq!(limiter.peek_at("other", now), Ok(()));
    }

    #[test]
    fn key_by_id_finds_keys_revoked_or_not() {
        let t = TestStore::new("key_by_id");
        let store = t.store();
        let (key, _) = create_key(store, "console", &[Scope::Read]).expect("created");
        assert_eq!(key_by_id(store, &key.id).ok(), Some(Some(key.clone())));
        revoke_key(store, &key.id).expect("revoked");
        let found = key_by_id(store, &key.id).ok().flatten();
        assert!(found.is_some_and(|k| k.revoked));
        assert_eq!(key_by_id(store, "nosuchkey000").ok(), Some(None));
    }

    #[test]
    fn rate_limiter_keeps_keys_independent() {
        let limiter = RateLimiter::new(60, 1);
        let t0 = Instant::now();
        assert_eq!(limiter.check_at("a", t0), Ok(()));
        assert!(limiter.check_at("a", t0).is_err());
        assert_eq!(limiter.check_at("b", t0), Ok(()));
        assert!(limiter.check_at("b", t0).is_err());
    }

    #[test]
    fn rate_limiter_is_unlimited_when_per_minute_is_zero() {
        let limiter = RateLimiter::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.check_at("k", t0), Ok(()));
        }
        assert!(limiter.check("k").is_ok());
    }

    #[test]
    fn rate_limiter_treats_zero_burst_as_one() {
        let limiter = RateLimiter::new(60, 0);
        let t0 = Instant::now();
        assert_eq!(limiter.check_at("k", t0), Ok(()));
        assert_eq!(limiter.check_at("k", t0), Err(1));
    }
}
