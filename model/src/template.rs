//! Tracked-URL templates as the host keeps them: what a plugin built (the
//! SDK's [`Built`]: the bytes before and after the click sub-ID slot, the
//! destination, the sub-ID's limits) and which provider built it; filled on
//! every click without calling the plugin.

use std::ops::Deref;

pub use linkwright_plugin_sdk::Template as Built;

use crate::click::ClickId;

/// The text that stands for the sub-ID slot when a template is shown.
pub const SLOT: &str = "{click_id}";

/// A tracked-URL template built by a provider for one destination: the
/// plugin's [`Built`] template (its fields read through `Deref`) and the
/// provider instance that built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The provider instance that built it.
    pub provider: String,
    /// What the plugin built.
    pub built: Built,
}

impl Deref for Template {
    type Target = Built;

    fn deref(&self) -> &Built {
        &self.built
    }
}

impl Template {
    /// The tracked URL for one click.
    pub fn fill(&self, click: &ClickId) -> String {
        self.fill_str(click.as_str())
    }

    /// The tracked URL with `sub_id` in the slot (no sub-ID: pass "").
    pub fn fill_str(&self, sub_id: &str) -> String {
        let mut url = String::with_capacity(self.prefix.len() + sub_id.len() + self.suffix.len());
        url.push_str(&self.prefix);
        url.push_str(sub_id);
        url.push_str(&self.suffix);
        url
    }

    /// The template with the slot shown as `{click_id}`.
    pub fn display(&self) -> String {
        self.fill_str(SLOT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::click::ClickIdGenerator;

    fn template(prefix: &str, suffix: &str) -> Template {
        Template {
            provider: "p".into(),
            built: Built {
                prefix: prefix.into(),
                suffix: suffix.into(),
                destination: "https://shop.test/x".into(),
                marketplace: None,
                subid_max_len: 0,
                subid_encoding: linkwright_plugin_sdk::SubIdEncoding::Alphanumeric,
            },
        }
    }

    #[test]
    fn fill_puts_the_click_id_between_prefix_and_suffix() {
        let t = template("https://t.test/sid/", "/https://shop.test/x");
        let id = ClickIdGenerator::new(3).next_id();
        assert_eq!(
            t.fill(&id),
            format!("https://t.test/sid/{id}/https://shop.test/x")
        );
        assert_eq!(
            t.display(),
            "https://t.test/sid/{click_id}/https://shop.test/x"
        );
    }
}
