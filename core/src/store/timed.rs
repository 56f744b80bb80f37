//! A [`Store`] that times every operation of the store it wraps and counts
//! the failures, by operation (`linkwright_store_operation_duration_seconds`,
//! `linkwright_store_errors_total`).

use std::sync::Arc;

use super::{
    Availability, ClickBreakdown, ClickEvent, Link, LinkChange, LinkFilter, LinkStats, LinkUpdate,
    NewLink, Store, StoreError, StoredClick,
};
use crate::metrics::store_operation as timed;

/// The wrapped store, timed.
#[derive(Debug)]
pub struct Timed<S>(pub Arc<S>);

impl<S: Store> Store for Timed<S> {
    fn create_link(&self, link: NewLink) -> Result<Link, StoreError> {
        timed("create_link", || self.0.create_link(link))
    }
    fn create_links(
        &self,
        links: Vec<NewLink>,
    ) -> Result<Vec<Result<Link, StoreError>>, StoreError> {
        timed("create_links", || self.0.create_links(links))
    }
    fn link_by_code(&self, code: &str) -> Result<Option<Link>, StoreError> {
        timed("link_by_code", || self.0.link_by_code(code))
    }
    fn link_by_source_key(&self, key: &str) -> Result<Option<Link>, StoreError> {
        timed("link_by_source_key", || self.0.link_by_source_key(key))
    }
    fn list_links(&self, filter: &LinkFilter) -> Result<Vec<Link>, StoreError> {
        timed("list_links", || self.0.list_links(filter))
    }
    fn link_by_request_key(&self, key: &str) -> Result<Option<Link>, StoreError> {
        timed("link_by_request_key", || self.0.link_by_request_key(key))
    }
    fn set_disabled(&self, code: &str, disabled: bool) -> Result<bool, StoreError> {
        timed("set_disabled", || self.0.set_disabled(code, disabled))
    }
    fn update_link(&self, code: &str, update: &LinkUpdate) -> Result<Option<Link>, StoreError> {
        timed("update_link", || self.0.update_link(code, update))
    }
    fn delete_link(&self, code: &str) -> Result<bool, StoreError> {
        timed("delete_link", || self.0.delete_link(code))
    }
    fn availability(&self, asin: &str) -> Result<Vec<Availability>, StoreError> {
        timed("availability", || self.0.availability(asin))
    }
    fn save_availability(&self, answers: &[Availability]) -> Result<(), StoreError> {
        timed("save_availability", || self.0.save_availability(answers))
    }
    fn localized_links(
        &self,
        checked_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<Link>, StoreError> {
        timed("localized_links", || {
            self.0.localized_links(checked_before_ms, limit)
        })
    }
    fn link_stats(&self, link_id: i64) -> Result<LinkStats, StoreError> {
        timed("link_stats", || self.0.link_stats(link_id))
    }
    fn click_breakdown(
        &self,
        link_id: Option<i64>,
        since_ms: i64,
        top: usize,
    ) -> Result<ClickBreakdown, StoreError> {
        timed("click_breakdown", || {
            self.0.click_breakdown(link_id, since_ms, top)
        })
    }
    fn insert_clicks(&self, clicks: &[ClickEvent]) -> Result<(), StoreError> {
        timed("insert_clicks", || self.0.insert_clicks(clicks))
    }
    fn insert_new_clicks(&self, clicks: &[ClickEvent]) -> Result<usize, StoreError> {
        timed("insert_new_clicks", || self.0.insert_new_clicks(clicks))
    }
    fn clicks(&self, limit: usize) -> Result<Vec<StoredClick>, StoreError> {
        timed("clicks", || self.0.clicks(limit))
    }
    fn last_link_change(&self) -> Result<i64, StoreError> {
        timed("last_link_change", || self.0.last_link_change())
    }
    fn link_changes(&self, after: i64, limit: usize) -> Result<Vec<LinkChange>, StoreError> {
        timed("link_changes", || self.0.link_changes(after, limit))
    }
    fn prune_link_changes(&self, keep: usize, limit: usize) -> Result<usize, StoreError> {
        timed("prune_link_changes", || {
            self.0.prune_link_changes(keep, limit)
        })
    }
    fn load_click_state(&self) -> Result<u64, StoreError> {
        timed("load_click_state", || self.0.load_click_state())
    }
    fn save_click_state(&self, state: u64) -> Result<(), StoreError> {
        timed("save_click_state", || self.0.save_click_state(state))
    }
}
