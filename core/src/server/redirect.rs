//! Redirect resolution: a pure function of the request's classification and
//! the link, with no I/O, tested case by case.

use crate::cache::LinkRef;
use crate::classify::Visitor;
use crate::click::ClickId;
use crate::plugin::MAX_INPUT_LEN;

/// What to answer for a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The link is disabled: 410.
    Gone,
    /// Redirect to `location`; `click_id` is the sub-ID minted for a human
    /// visitor, `None` for bots, link-preview fetchers and HEAD.
    Redirect {
        /// The tracked URL's bytes (ASCII: templates are checked when
        /// built, click IDs are base-62), as the `Location` header takes
        /// them: no UTF-8 check on the way.
        location: Vec<u8>,
        /// The minted click ID.
        click_id: Option<ClickId>,
        /// The target that served it (0: the link's own destination).
        target: u8,
        /// The metrics label index of the target's provider and marketplace.
        provider: u16,
    },
}

/// The `url` parameter of a `/go` query string, decoded (the first one).
/// Public, like [`middleware_key`], for the fuzz targets.
pub fn url_param(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "url")
        .map(|(_, v)| v.into_owned())
}

/// The middleware-mode (`/go?url=`) cache key of a decoded `url`
/// parameter: the URL trimmed, parsed and re-serialised (the `url` crate's
/// normal form: lower-case scheme and host, IDNA, default port dropped)
/// without its fragment. `Err` carries the client's message: too long, or
/// not an absolute http(s) URL with a host. Public so that the fuzz targets
/// and the corpus replay can call the exact function `/go` uses.
pub fn middleware_key(raw: &str) -> Result<String, &'static str> {
    if raw.len() > MAX_INPUT_LEN {
        return Err("the url is too long");
    }
    match url::Url::parse(raw.trim()) {
        Ok(mut u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            u.set_fragment(None);
            Ok(String::from(u))
        }
        _ => Err("the url parameter is not an http(s) URL"),
    }
}

/// Resolves a request for `link` from a visitor in `country`: the link's
/// targeting picks the destination (device, then country, then an A/B
/// split), whose template gets the click ID. `mint` is called only for a
/// human visitor, so bots never consume click IDs. Visitor query
/// parameters play no part: they can never override the affiliate tag or
/// the sub-ID.
pub fn resolve(
    link: LinkRef<'_>,
    visitor: Visitor,
    country: Option<[u8; 2]>,
    mint: impl FnOnce() -> ClickId,
) -> Resolution {
    if link.disabled {
        return Resolution::Gone;
    }
    let chosen = link.choose(visitor.device, country, || fastrand::u8(..100));
    let click_id = (!visitor.bot).then(mint);
    let sub_id: &[u8] = click_id.as_ref().map_or(&[], |id| id.as_bytes());
    let (prefix, suffix) = (chosen.prefix.as_bytes(), chosen.suffix.as_bytes());
    let mut location = Vec::with_capacity(prefix.len() + sub_id.len() + suffix.len());
    location.extend_from_slice(prefix);
    location.extend_from_slice(sub_id);
    location.extend_from_slice(suffix);
    Resolution::Redirect {
        location,
        click_id,
        target: chosen.target,
        provider: chosen.provider,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CachedLink;
    use crate::classify::{Device, UaClass};
    use crate::click::ClickIdGenerator;

    fn link(prefix: &str, suffix: &str, disabled: bool) -> CachedLink {
        CachedLink::new(1, prefix, suffix, disabled, 0)
    }

    const HUMAN: Visitor = Visitor {
        bot: false,
        class: UaClass::Desktop,
        device: Device::Desktop,
    };
    const BOT: Visitor = Visitor {
        bot: true,
        class: UaClass::Bot,
        device: Device::Other,
    };

    #[test]
    fn human_gets_a_fresh_click_id_in_the_slot() {
        let ids = ClickIdGenerator::new(0);
        let l = link(
            "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag=",
            "",
            false,
        );
        let Resolution::Redirect {
            location, click_id, ..
        } = resolve(l.as_ref(), HUMAN, None, || ids.next_id())
        else {
            panic!("expected a redirect");
        };
        let id = click_id.expect("minted");
        assert_eq!(
            location,
            format!("https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag={id}").into_bytes()
        );
    }

    #[test]
    fn slot_in_the_middle_keeps_the_suffix() {
        let ids = ClickIdGenerator::new(0);
        let l = link("https://cj.test/sid/", "/https://store.example/x", false);
        let Resolution::Redirect {
            location, click_id, ..
        } = resolve(l.as_ref(), HUMAN, None, || ids.next_id())
        else {
            panic!("expected a redirect");
        };
        assert_eq!(
            location,
            format!(
                "https://cj.test/sid/{}/https://store.example/x",
                click_id.expect("id")
            )
            .into_bytes()
        );
    }

    #[test]
    fn bot_is_redirected_without_minting_a_click_id() {
        let l = link("https://t.test/?sub=", "&x=1", false);
        let r = resolve(l.as_ref(), BOT, None, || {
            panic!("a bot must not mint a click ID")
        });
        assert_eq!(
            r,
            Resolution::Redirect {
                location: b"https://t.test/?sub=&x=1".to_vec(),
                click_id: None,
                target: 0,
                provider: 0,
            }
        );
    }

    #[test]
    fn disabled_link_is_gone_for_everyone() {
        let l = link("https://t.test/?sub=", "", true);
        assert_eq!(
            resolve(l.as_ref(), HUMAN, None, || panic!("no mint")),
            Resolution::Gone
        );
        assert_eq!(
            resolve(l.as_ref(), BOT, None, || panic!("no mint")),
            Resolution::Gone
        );
    }
}
