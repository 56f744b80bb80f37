//! The page shell (head, navigation, sign-out), error pages, and small
//! pieces every page uses: numbers, dates, field errors.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use tracing::error;

/// What every signed-in page needs to know about its viewer.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The key's name.
    pub key_name: &'a str,
    /// The session's CSRF token, for forms.
    pub csrf: &'a str,
    /// Whether write actions are shown.
    pub can_write: bool,
}

/// The navigation: (path, label).
const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/links", "Links"),
    ("/create", "Create"),
    ("/reports", "Reports"),
    ("/conversions", "Conversions"),
    ("/keys", "Keys"),
    ("/providers", "Providers"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · linkwright" }
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A signed-in page: navigation with `current` marked, then `content`.
pub fn page(ctx: Ctx<'_>, current: &str, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "linkwright" }
                    nav aria-label="Console" {
                        ul {
                            @for (path, label) in NAV {
                                @if path != "/create" || ctx.can_write {
                                    li {
                                        a href=(path) aria-current=[(path == current).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/sign-out" {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        span.who title="Signed in with this API key" {
                            (ctx.key_name)
                            @if !ctx.can_write { " (read-only)" }
                        }
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare { (content) }
        }
    }
}

/// An error page with a status.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = bare(
        title,
        html! {
            main.signin {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Back to the console" } }
            }
        },
    );
    (status, body).into_response()
}

/// 500, the details in the log only.
pub fn internal(context: &str, e: &dyn std::fmt::Display) -> Response {
    error!(error = %e, context, "console: internal error");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not answer this page; the log has the details.",
    )
}

/// The error for a form field, if it is the one at fault.
pub fn field_error(field: &str, error: Option<&(Option<String>, String)>) -> Markup {
    html! {
        @if let Some((f, message)) = error {
            @if f.as_deref() == Some(field) {
                p.error id={ (field) "-error" } role="alert" { (message) }
            }
        }
    }
}

/// A number with thin groups: 12 345.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// `YYYY-MM-DD HH:MM` (UTC) of Unix milliseconds.
pub fn datetime(ms: i64) -> String {
    let day = crate::clock::Day::from_days(ms.div_euclid(crate::clock::MS_PER_DAY));
    let in_day = ms.rem_euclid(crate::clock::MS_PER_DAY) / 60_000;
    format!("{day} {:02}:{:02}", in_day / 60, in_day % 60)
}

/// What [`q`] leaves as it is: the unreserved characters of RFC 3986.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or a query value.
pub fn q(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1\u{202f}000");
        assert_eq!(count(1234567), "1\u{202f}234\u{202f}567");
    }

    #[test]
    fn datetimes_are_utc_minutes() {
        assert_eq!(datetime(0), "1970-01-01 00:00");
        assert_eq!(datetime(86_400_000 + 3_723_000), "1970-01-02 01:02");
    }
}
