//! Link patterns: a network's URL template or the query string it appends,
//! parsed once at configuration time into literal text and placeholders.

use std::fmt;

/// A placeholder in a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// `{url}`: the destination, percent-encoded as one URL component.
    Url,
    /// `{url_raw}`: the destination as it is, for path-style networks.
    UrlRaw,
    /// `{subid}`: the click sub-ID slot.
    SubId,
}

impl Placeholder {
    /// Every placeholder.
    pub(crate) const ALL: [Placeholder; 3] =
        [Placeholder::Url, Placeholder::UrlRaw, Placeholder::SubId];

    fn name(self) -> &'static str {
        match self {
            Placeholder::Url => "url",
            Placeholder::UrlRaw => "url_raw",
            Placeholder::SubId => "subid",
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

/// A piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Text copied as it is.
    Text(String),
    /// A placeholder filled per link.
    Slot(Placeholder),
}

/// Splits `pattern` into text and placeholders, accepting only the
/// placeholders in `allowed` and requiring `{subid}` exactly once.
pub(crate) fn parse(pattern: &str, allowed: &[Placeholder]) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = pattern;
    let mut subids = 0;
    while !rest.is_empty() {
        let open = rest.find('{');
        if let Some(close) = rest.find('}')
            && open.is_none_or(|o| close < o)
        {
            return Err("has a '}' without a matching '{'".to_owned());
        }
        let Some(o) = open else {
            parts.push(Part::Text(rest.to_owned()));
            break;
        };
        if o > 0 {
            parts.push(Part::Text(rest[..o].to_owned()));
        }
        let after = &rest[o + 1..];
        let Some(len) = after.find('}') else {
            return Err("has a '{' without a matching '}'".to_owned());
        };
        let name = &after[..len];
        let placeholder = Placeholder::ALL
            .into_iter()
            .find(|p| p.name() == name && allowed.contains(p))
            .ok_or_else(|| {
                let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                format!(
                    "has an unknown placeholder {{{name}}}; the placeholders are {}",
                    allowed.join(", ")
                )
            })?;
        if placeholder == Placeholder::SubId {
            subids += 1;
        }
        parts.push(Part::Slot(placeholder));
        rest = &after[len + 1..];
    }
    match subids {
        1 => Ok(parts),
        0 => {
            Err("must contain {subid} (the click sub-ID slot) exactly once; it has none".to_owned())
        }
        n => Err(format!(
            "must contain {{subid}} exactly once; it has it {n} times"
        )),
    }
}

/// Expands `parts` into the text before and after the `{subid}` slot.
pub(crate) fn expand(parts: &[Part], fill: impl Fn(Placeholder) -> String) -> (String, String) {
    let mut prefix = String::new();
    let mut suffix = String::new();
    let mut seen_subid = false;
    for part in parts {
        let out = if seen_subid { &mut suffix } else { &mut prefix };
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Slot(Placeholder::SubId) => seen_subid = true,
            Part::Slot(placeholder) => out.push_str(&fill(*placeholder)),
        }
    }
    (prefix, suffix)
}
