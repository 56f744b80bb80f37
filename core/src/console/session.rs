//! Console sessions: an API key exchanged at sign-in for a random session
//! token kept only in an `HttpOnly`, `SameSite=Strict` cookie, and its
//! server-side record (the key's id, never its secret; a CSRF token; the
//! expiry). The record is looked up by a SHA-256 of the token, so the map
//! holds no usable token.
//!
//! Sessions live in this process's memory: a restart signs everyone out,
//! and instances behind a load balancer need sticky sessions for the
//! console (the API is unaffected).

use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie.
pub const SESSION_COOKIE: &str = "lw_session";
/// The cookie of the sign-in form's CSRF token (the form has no session yet:
/// the token is checked against this cookie, double-submit style).
pub const SIGN_IN_COOKIE: &str = "lw_signin";

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The API key's public id: every request checks that the key stands.
    pub key_id: String,
    /// The token every state-changing form carries.
    pub csrf: String,
    /// When the session ends.
    pub expires: Instant,
}

/// The sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    by_digest: DashMap<[u8; 32], Session>,
}

impl Sessions {
    /// Sessions lasting `ttl` from sign-in.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            by_digest: DashMap::new(),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for a key; returns the cookie's token. Expired
    /// sessions are forgotten on the way.
    pub fn start(&self, key_id: &str) -> Result<String, getrandom::Error> {
        let now = Instant::now();
        self.by_digest.retain(|_, s| s.expires > now);
        let token = random_token()?;
        let session = Session {
            key_id: key_id.to_owned(),
            csrf: random_token()?,
            expires: now + self.ttl,
        };
        self.by_digest.insert(digest(&token), session);
        Ok(token)
    }

    /// The live session of a token; an expired one is forgotten.
    pub fn get(&self, token: &str) -> Option<Session> {
        let key = digest(token);
        let session = self.by_digest.get(&key).map(|s| s.clone())?;
        if session.expires <= Instant::now() {
            self.by_digest.remove(&key);
            return None;
        }
        Some(session)
    }

    /// Ends a session (sign-out).
    pub fn end(&self, token: &str) {
        self.by_digest.remove(&digest(token));
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 32 random bytes from the OS, hex-encoded.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares a submitted CSRF token with the expected one in constant time;
/// a missing or empty token never matches.
pub fn tokens_match(expected: &str, given: Option<&str>) -> bool {
    match given {
        Some(given) if !given.is_empty() && !expected.is_empty() => {
            bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
        }
        _ => false,
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` when the
/// deployment is served over https; `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_session_is_found_by_its_token_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let token = sessions.start("key1").unwrap();
        assert_eq!(token.len(), 64);
        let s = sessions.get(&token).unwrap();
        assert_eq!(s.key_id, "key1");
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(s.csrf, token);
        assert!(sessions.get("nope").is_none());
        sessions.end(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::new(Duration::ZERO);
        let token = sessions.start("key1").unwrap();
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn csrf_tokens_must_be_present_and_equal() {
        assert!(tokens_match("abc", Some("abc")));
        assert!(!tokens_match("abc", Some("abd")));
        assert!(!tokens_match("abc", Some("")));
        assert!(!tokens_match("abc", None));
        assert!(!tokens_match("", Some("")));
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; lw_session=xyz".parse().unwrap());
        h.append(http::header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn set_cookie_carries_the_flags() {
        assert_eq!(
            set_cookie("s", "v", "/", Duration::from_secs(10), true),
            "s=v; Path=/; Max-Age=10; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!set_cookie("s", "v", "/", Duration::ZERO, false).contains("Secure"));
    }
}
