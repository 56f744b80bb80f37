//! A [`Store`] that times every operation of the store it wraps and counts
//! the failures, by operation (`linkwright_store_operation_duration_seconds`,
//! `linkwright_store_errors_total`).

use std::sync::Arc;

use super::Backend;
use crate::conversions::ConversionStore;
use crate::conversions::{Conversion, Written};
use crate::jobs::{Claimed, JobItem, JobStart, JobStore, Lease};
use crate::jobs::{JobStatus, JobSummary};
use crate::keys::ApiKey;
use crate::keys::KeyStore;
use crate::metrics::store_operation as timed;
use crate::nodes::{Leased, NodeStore};
use crate::reports::ReportStore;
use crate::reports::{Report, ReportQuery};
use crate::store::{
    Availability, ClickBreakdown, ClickEvent, ClickStore, Link, LinkChange, LinkFilter, LinkStats,
    LinkStore, LinkUpdate, NewLink, OnLinkChange, StoreError, StoredClick,
};

/// The wrapped store, timed.
#[derive(Debug)]
pub struct Timed<S>(pub Arc<S>);

impl<S: Backend> Backend for Timed<S> {
    fn location(&self) -> String {
        self.0.location()
    }
    fn schema_version(&self) -> Result<i64, StoreError> {
        self.0.schema_version()
    }
}

impl<S: LinkStore> LinkStore for Timed<S> {
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
    fn push_link_changes(&self, on_change: OnLinkChange) -> bool {
        // Not timed: it only starts a listener.
        self.0.push_link_changes(on_change)
    }
}

impl<S: ClickStore> ClickStore for Timed<S> {
    fn insert_clicks(&self, clicks: &[ClickEvent]) -> Result<(), StoreError> {
        timed("insert_clicks", || self.0.insert_clicks(clicks))
    }
    fn insert_new_clicks(&self, clicks: &[ClickEvent]) -> Result<usize, StoreError> {
        timed("insert_new_clicks", || self.0.insert_new_clicks(clicks))
    }
    fn clicks(&self, limit: usize) -> Result<Vec<StoredClick>, StoreError> {
        timed("clicks", || self.0.clicks(limit))
    }
    fn load_click_state(&self) -> Result<u64, StoreError> {
        timed("load_click_state", || self.0.load_click_state())
    }
    fn save_click_state(&self, state: u64) -> Result<(), StoreError> {
        timed("save_click_state", || self.0.save_click_state(state))
    }
}

impl<S: ReportStore> ReportStore for Timed<S> {
    fn report(&self, query: &ReportQuery) -> Result<Report, StoreError> {
        timed("report", || self.0.report(query))
    }
}

impl<S: KeyStore> KeyStore for Timed<S> {
    fn insert_key(&self, key: &ApiKey, secret_hash: &[u8; 32]) -> Result<(), StoreError> {
        timed("insert_key", || self.0.insert_key(key, secret_hash))
    }
    fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        timed("keys", || self.0.keys())
    }
    fn key_by_id(&self, id: &str) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError> {
        timed("key_by_id", || self.0.key_by_id(id))
    }
    fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        timed("revoke_key", || self.0.revoke_key(id, now_ms))
    }
}

impl<S: JobStore> JobStore for Timed<S> {
    fn insert_job(
        &self,
        job: &JobSummary,
        webhook_url: Option<&str>,
        items: &[String],
    ) -> Result<(), StoreError> {
        timed("insert_job", || self.0.insert_job(job, webhook_url, items))
    }
    fn job_summary(&self, id: &str) -> Result<Option<JobSummary>, StoreError> {
        timed("job_summary", || self.0.job_summary(id))
    }
    fn start_job(&self, id: &str, lease: Lease<'_>) -> Result<Option<Claimed>, StoreError> {
        timed("start_job", || self.0.start_job(id, lease))
    }
    fn claim_job(&self, lease: Lease<'_>) -> Result<Option<JobStart>, StoreError> {
        timed("claim_job", || self.0.claim_job(lease))
    }
    fn renew_job_claim(&self, id: &str, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        timed("renew_job_claim", || {
            self.0.renew_job_claim(id, owner, until_ms)
        })
    }
    fn release_job_claim(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        timed("release_job_claim", || self.0.release_job_claim(id, owner))
    }
    fn record_job_items(
        &self,
        id: &str,
        owner: &str,
        outcomes: &[(i64, String, bool)],
    ) -> Result<bool, StoreError> {
        timed("record_job_items", || {
            self.0.record_job_items(id, owner, outcomes)
        })
    }
    fn finish_job(
        &self,
        id: &str,
        owner: &str,
        status: JobStatus,
        failure: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        timed("finish_job", || {
            self.0.finish_job(id, owner, status, failure, now_ms)
        })
    }
    fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        timed("unfinished_jobs", || self.0.unfinished_jobs())
    }
    fn job_items(&self, id: &str) -> Result<Option<(JobSummary, Vec<JobItem>)>, StoreError> {
        timed("job_items", || self.0.job_items(id))
    }
}

impl<S: ConversionStore> ConversionStore for Timed<S> {
    fn upsert_conversions(
        &self,
        rows: &[(u64, Conversion)],
        now_ms: i64,
    ) -> Result<Written, StoreError> {
        timed("upsert_conversions", || {
            self.0.upsert_conversions(rows, now_ms)
        })
    }
}

impl<S: NodeStore> NodeStore for Timed<S> {
    fn lease_node(
        &self,
        owner: &str,
        wanted: Option<u16>,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Leased, StoreError> {
        timed("lease_node", || {
            self.0.lease_node(owner, wanted, now_ms, until_ms)
        })
    }
    fn renew_node(&self, node: u16, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        timed("renew_node", || self.0.renew_node(node, owner, until_ms))
    }
    fn release_node(&self, node: u16, owner: &str) -> Result<bool, StoreError> {
        timed("release_node", || self.0.release_node(node, owner))
    }
}
