//! The one encoding of a [`ClickEvent`] as a journal record: [`encode`]
//! and [`decode`], and nothing else anywhere knows the layout.
//!
//! Layout ([`VERSION`] 1), little-endian:
//!
//! ```text
//!  0      flags: 1 bot, 2 click ID, 4 country, 8 referrer host
//!  1      user-agent class (UaClass::index)
//!  2..10  link id (i64)
//! 10..18  at, Unix ms (i64)
//! then, each only if its flag is set:
//!         click ID: 13 ASCII bytes
//!         country: 2 bytes
//!         referrer host: length (u16), then its bytes
//! appended since (absent in an older record: the default):
//!         target: 1 byte (0: the link's own destination)
//! ```
//!
//! To add a field to `ClickEvent`: append it here, after the last field,
//! in `encoded_len`, `encode` and `decode`; a record written before the
//! field existed ends early and decodes with the field's default, so
//! segments left by the previous version still replay. Change the layout
//! of existing fields only with a new [`VERSION`] (and keep decoding the
//! old one).

use crate::classify::UaClass;
use crate::click::{CLICK_ID_LEN, ClickId};
use crate::store::ClickEvent;

/// What journal segments of click events say they hold.
pub(super) const KIND: linkwright_journal::Kind = linkwright_journal::Kind {
    id: 1,
    version: VERSION,
};
/// The layout above.
pub(super) const VERSION: u32 = 1;

const BOT: u8 = 1;
const ID: u8 = 2;
const COUNTRY: u8 = 4;
const REFERRER: u8 = 8;
const FIXED: usize = 18;

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("click record: {0}")]
pub(super) struct DecodeError(&'static str);

/// The referrer host as recorded: at most `u16::MAX` bytes (a host name is
/// at most 253).
fn referrer(e: &ClickEvent) -> Option<&[u8]> {
    e.referrer_host
        .as_deref()
        .map(|h| &h.as_bytes()[..h.len().min(usize::from(u16::MAX))])
}

/// The most bytes [`encode`] writes for `e`.
#[inline]
pub(super) fn encoded_len(e: &ClickEvent) -> usize {
    FIXED
        + e.click_id.map_or(0, |_| CLICK_ID_LEN)
        + e.country.map_or(0, |_| 2)
        + referrer(e).map_or(0, |r| 2 + r.len())
        + 1
}

/// Writes `e` at the start of `out` (at least [`encoded_len`] long);
/// the bytes written.
#[inline]
pub(super) fn encode(e: &ClickEvent, out: &mut [u8]) -> usize {
    let referrer = referrer(e);
    let flags = if e.bot { BOT } else { 0 }
        | e.click_id.map_or(0, |_| ID)
        | e.country.map_or(0, |_| COUNTRY)
        | referrer.map_or(0, |_| REFERRER);
    out[0] = flags;
    out[1] = e.ua_class.index() as u8;
    out[2..10].copy_from_slice(&e.link_id.to_le_bytes());
    out[10..18].copy_from_slice(&e.at_ms.to_le_bytes());
    let mut at = FIXED;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    if let Some(id) = &e.click_id {
        put(id.as_bytes());
    }
    if let Some(cc) = &e.country {
        put(cc);
    }
    if let Some(r) = referrer {
        put(&(r.len() as u16).to_le_bytes());
        put(r);
    }
    put(&[e.target]);
    at
}

/// Reads a record [`encode`] wrote (with layout `version`).
pub(super) fn decode(version: u32, bytes: &[u8]) -> Result<ClickEvent, DecodeError> {
    if version != VERSION {
        return Err(DecodeError("unknown layout version"));
    }
    let mut r = Reader(bytes);
    let fixed = r
        .take(FIXED)
        .ok_or(DecodeError("shorter than its fixed part"))?;
    let flags = fixed[0];
    let ua_class = *UaClass::ALL
        .get(usize::from(fixed[1]))
        .ok_or(DecodeError("unknown user-agent class"))?;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&fixed[at..at + 8]);
        i64::from_le_bytes(w)
    };
    let (link_id, at_ms) = (word(2), word(10));
    let click_id = if flags & ID != 0 {
        let id = r
            .take(CLICK_ID_LEN)
            .ok_or(DecodeError("cut in its click ID"))?;
        let id = std::str::from_utf8(id)
            .ok()
            .and_then(ClickId::parse)
            .ok_or(DecodeError("not a click ID"))?;
        Some(id)
    } else {
        None
    };
    let country = if flags & COUNTRY != 0 {
        let cc = r.take(2).ok_or(DecodeError("cut in its country"))?;
        Some([cc[0], cc[1]])
    } else {
        None
    };
    let referrer_host = if flags & REFERRER != 0 {
        let len = r.take(2).ok_or(DecodeError("cut in its referrer"))?;
        let len = u16::from_le_bytes([len[0], len[1]]);
        let host = r
            .take(usize::from(len))
            .ok_or(DecodeError("cut in its referrer"))?;
        let host = std::str::from_utf8(host).map_err(|_| DecodeError("referrer not UTF-8"))?;
        Some(host.into())
    } else {
        None
    };
    // Fields appended later: a record that ends before one has its default.
    let target = r.take(1).map_or(0, |t| t[0]);
    Ok(ClickEvent {
        click_id,
        link_id,
        at_ms,
        bot: flags & BOT != 0,
        referrer_host,
        ua_class,
        country,
        target,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::click::ClickIdGenerator;

    fn events() -> Vec<ClickEvent> {
        let ids = ClickIdGenerator::new(7);
        let base = ClickEvent {
            click_id: Some(ids.next_id()),
            link_id: 42,
            at_ms: 1_764_000_000_123,
            bot: false,
            referrer_host: None,
            ua_class: UaClass::Desktop,
            country: None,
            target: 0,
        };
        vec![
            base.clone(),
            ClickEvent {
                click_id: None,
                bot: true,
                ua_class: UaClass::Bot,
                link_id: -1,
                at_ms: i64::MIN,
                ..base.clone()
            },
            ClickEvent {
                referrer_host: Some("news.example.com".into()),
                country: Some(*b"DE"),
                target: 3,
                ua_class: UaClass::Mobile,
                link_id: i64::MAX,
                ..base.clone()
            },
            ClickEvent {
                referrer_host: Some("".into()),
                ua_class: UaClass::Other,
                ..base
            },
        ]
    }

    #[test]
    fn every_shape_of_event_decodes_to_itself_in_its_encoded_length() {
        for e in events() {
            let mut buf = vec![0xAA; encoded_len(&e) + 5];
            let n = encode(&e, &mut buf);
            assert_eq!(n, encoded_len(&e), "{e:?}");
            assert_eq!(decode(VERSION, &buf[..n]), Ok(e));
        }
    }

    #[test]
    fn cut_or_damaged_records_are_refused_not_misread() {
        let e = &events()[2];
        let mut buf = vec![0; encoded_len(e)];
        let n = encode(e, &mut buf);
        // Cut before the last field: the target, appended after version 1's
        // first records, which decode with the default.
        for cut in 0..n - 1 {
            assert!(decode(VERSION, &buf[..cut]).is_err(), "cut at {cut}");
        }
        let older = decode(VERSION, &buf[..n - 1]).expect("a record from before the target");
        assert_eq!((older.target, older.link_id), (0, e.link_id));
        let mut bad = buf.clone();
        bad[1] = 9;
        assert_eq!(
            decode(VERSION, &bad),
            Err(DecodeError("unknown user-agent class"))
        );
        assert_eq!(
            decode(VERSION + 1, &buf),
            Err(DecodeError("unknown layout version"))
        );
    }
}
