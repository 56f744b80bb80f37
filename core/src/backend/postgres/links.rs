//! Links on PostgreSQL: creation (one or a batch), look-ups, listing,
//! updates, soft deletion, and the localized links due for a check.

use deadpool_postgres::{GenericClient, Pool};
use linkwright_plugin_sdk::SubIdEncoding;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::bigint;
use crate::clock::now_ms;
use crate::store::{Link, LinkFilter, LinkUpdate, NewLink, StoreError, generate_code};
use crate::targeting::Targeting;

/// The columns [`link_from_row`] reads, in its order.
const LINK_COLUMNS: &str = "id, code, provider, input, destination, template_prefix, \
     template_suffix, subid_max_len, subid_encoding, name, marketplace, campaign, tags, params, \
     source_key, created_ms, disabled, targeting";

/// Tries at a free generated code before giving up.
const CODE_ATTEMPTS: usize = 8;

/// A unique column a link is found by.
#[derive(Debug, Clone, Copy)]
pub(super) enum By {
    Code,
    SourceKey,
    RequestKey,
}

impl By {
    fn column(self) -> &'static str {
        match self {
            By::Code => "code",
            By::SourceKey => "source_key",
            By::RequestKey => "request_key",
        }
    }
}

fn encoding_name(e: SubIdEncoding) -> &'static str {
    match e {
        SubIdEncoding::Alphanumeric => "alphanumeric",
        SubIdEncoding::UrlSafe => "url_safe",
    }
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        table: "links",
        message,
    }
}

fn link_from_row(row: &Row) -> Result<Link, StoreError> {
    let encoding: &str = row.try_get(8)?;
    let subid_encoding = match encoding {
        "alphanumeric" => SubIdEncoding::Alphanumeric,
        "url_safe" => SubIdEncoding::UrlSafe,
        other => return Err(corrupt(format!("unknown sub-ID encoding `{other}`"))),
    };
    let subid_max_len: i64 = row.try_get(7)?;
    let subid_max_len = u32::try_from(subid_max_len)
        .map_err(|_| corrupt(format!("sub-ID length {subid_max_len}")))?;
    let tags =
        serde_json::from_value(row.try_get(12)?).map_err(|e| corrupt(format!("tags: {e}")))?;
    let params =
        serde_json::from_value(row.try_get(13)?).map_err(|e| corrupt(format!("params: {e}")))?;
    let targeting: Option<serde_json::Value> = row.try_get(17)?;
    let targeting = targeting
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| corrupt(format!("targeting: {e}")))?;
    Ok(Link {
        id: row.try_get(0)?,
        code: row.try_get(1)?,
        provider: row.try_get(2)?,
        input: row.try_get(3)?,
        destination: row.try_get(4)?,
        template_prefix: row.try_get(5)?,
        template_suffix: row.try_get(6)?,
        subid_max_len,
        subid_encoding,
        name: row.try_get(9)?,
        marketplace: row.try_get(10)?,
        campaign: row.try_get(11)?,
        tags,
        params,
        source_key: row.try_get(14)?,
        created_ms: row.try_get(15)?,
        disabled: row.try_get(16)?,
        targeting,
    })
}

/// A link's targeting as stored: JSON, or NULL for none (as SQLite keeps it).
fn targeting_json(targeting: Option<&Targeting>) -> Option<serde_json::Value> {
    targeting
        .filter(|t| !t.is_empty() || t.localize)
        .and_then(|t| serde_json::to_value(t).ok())
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
}

async fn one_link(
    client: &impl GenericClient,
    by: By,
    value: &str,
) -> Result<Option<Link>, StoreError> {
    let sql = format!(
        "SELECT {LINK_COLUMNS} FROM links WHERE {} = $1 AND deleted_ms IS NULL",
        by.column()
    );
    let stmt = client.prepare_cached(&sql).await?;
    client
        .query_opt(&stmt, &[&value])
        .await?
        .map(|row| link_from_row(&row))
        .transpose()
}

pub(super) async fn link_by(pool: &Pool, by: By, value: &str) -> Result<Option<Link>, StoreError> {
    one_link(&pool.get().await?, by, value).await
}

/// Inserts one link (inside the caller's transaction, if any), generating
/// a code if none is given: [`Store::create_link`]'s work, and each item's
/// of [`Store::create_links`].
///
/// `ON CONFLICT DO NOTHING`, then a look at what was in the way: a unique
/// violation would abort the caller's transaction, where SQLite undoes
/// only the failed statement. The look finds nothing only if the row in
/// the way changed in between (deleted, its key cleared): then try again.
///
/// [`Store::create_link`]: crate::store::Store::create_link
/// [`Store::create_links`]: crate::store::Store::create_links
async fn insert_link(
    client: &impl GenericClient,
    new: NewLink,
    created_ms: i64,
) -> Result<Link, StoreError> {
    let tags = json(&new.tags);
    let params = json(&new.params);
    let targeting = targeting_json(new.targeting.as_ref());
    let t = &new.template;
    let insert = client
        .prepare_cached(
            "INSERT INTO links (code, provider, input, destination, template_prefix, \
             template_suffix, subid_max_len, subid_encoding, name, marketplace, campaign, \
             tags, params, source_key, created_ms, request_key, targeting) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .await?;
    let taken = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM links WHERE code = $1)")
        .await?;
    for _ in 0..CODE_ATTEMPTS {
        let code = new.code.clone().unwrap_or_else(generate_code);
        let inserted = client
            .query_opt(
                &insert,
                &[
                    &code,
                    &t.provider,
                    &new.input,
                    &t.destination,
                    &t.prefix,
                    &t.suffix,
                    &i64::from(t.subid_max_len),
                    &encoding_name(t.subid_encoding),
                    &new.name,
                    &t.marketplace,
                    &new.campaign,
                    &tags,
                    &params,
                    &new.source_key,
                    &created_ms,
                    &new.request_key,
                    &targeting,
                ],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(new.into_link(row.try_get(0)?, code, created_ms));
        }
        // What was in the way, in the order SQLite reports it: a key
        // first, so that a retried request naming the code it made finds
        // its link rather than a conflict. The same request (or /go URL)
        // made a link first: answer with it.
        for (by, key) in [
            (By::RequestKey, &new.request_key),
            (By::SourceKey, &new.source_key),
        ] {
            if let Some(key) = key
                && let Some(existing) = one_link(client, by, key).await?
            {
                return Err(StoreError::Duplicate(Box::new(existing)));
            }
        }
        if new.code.is_some() && client.query_one(&taken, &[&code]).await?.try_get(0)? {
            return Err(StoreError::Conflict(code));
        }
        // A generated code taken (try another), or the row in the way
        // changed in between (try again).
    }
    Err(StoreError::Conflict(
        new.code.unwrap_or_else(|| "(generated)".into()),
    ))
}

pub(super) async fn create_link(pool: &Pool, new: NewLink) -> Result<Link, StoreError> {
    insert_link(&pool.get().await?, new, now_ms()).await
}

pub(super) async fn create_links(
    pool: &Pool,
    links: Vec<NewLink>,
) -> Result<Vec<Result<Link, StoreError>>, StoreError> {
    let mut client = pool.get().await?;
    let created_ms = now_ms();
    let tx = client.transaction().await?;
    let mut made = Vec::with_capacity(links.len());
    for new in links {
        match insert_link(&tx, new, created_ms).await {
            Ok(link) => made.push(Ok(link)),
            Err(e @ (StoreError::Conflict(_) | StoreError::Duplicate(_))) => made.push(Err(e)),
            // Anything else: the whole batch fails, nothing is kept (the
            // transaction rolls back when dropped).
            Err(e) => return Err(e),
        }
    }
    tx.commit().await?;
    Ok(made)
}

pub(super) async fn list_links(pool: &Pool, filter: &LinkFilter) -> Result<Vec<Link>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE id > $1 AND deleted_ms IS NULL \
             AND ($2::text IS NULL OR provider = $2) AND ($3::text IS NULL OR marketplace = $3) \
             AND ($4::text IS NULL OR campaign = $4) \
             AND ($5::text IS NULL OR tags ? $5) \
             AND ($6::text IS NULL OR strpos(lower(coalesce(name, '')), lower($6)) > 0) \
             AND ($8::text IS NULL OR strpos(lower(coalesce(name, '') || chr(10) || code \
                  || chr(10) || input || chr(10) || destination), lower($8)) > 0) \
             AND ($9::boolean IS NULL OR disabled = $9) \
             ORDER BY id LIMIT $7"
        ))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &filter.after_id.unwrap_or(0),
                &filter.provider,
                &filter.marketplace,
                &filter.campaign,
                &filter.tag,
                &filter.name,
                &bigint(filter.limit),
                &filter.search,
                &filter.disabled,
            ],
        )
        .await?;
    rows.iter().map(link_from_row).collect()
}

pub(super) async fn set_disabled(
    pool: &Pool,
    code: &str,
    disabled: bool,
) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("UPDATE links SET disabled = $1 WHERE code = $2 AND deleted_ms IS NULL")
        .await?;
    Ok(client.execute(&stmt, &[&disabled, &code]).await? > 0)
}

/// The parameters of a dynamic statement.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// `column = $n`, with its value.
fn set(
    sets: &mut Vec<String>,
    params: &mut Params,
    column: &str,
    value: impl ToSql + Sync + Send + 'static,
) {
    params.push(Box::new(value));
    sets.push(format!("{column} = ${}", params.len()));
}

pub(super) async fn update_link(
    pool: &Pool,
    code: &str,
    update: &LinkUpdate,
) -> Result<Option<Link>, StoreError> {
    let mut sets = Vec::new();
    let mut params: Params = Vec::new();
    if let Some(name) = &update.name {
        set(&mut sets, &mut params, "name", name.clone());
    }
    if let Some(campaign) = &update.campaign {
        set(&mut sets, &mut params, "campaign", campaign.clone());
    }
    if let Some(tags) = &update.tags {
        set(&mut sets, &mut params, "tags", json(tags));
    }
    if let Some(disabled) = update.disabled {
        set(&mut sets, &mut params, "disabled", disabled);
    }
    if let Some((input, t)) = &update.destination {
        set(&mut sets, &mut params, "input", input.clone());
        set(&mut sets, &mut params, "provider", t.provider.clone());
        set(&mut sets, &mut params, "destination", t.destination.clone());
        set(&mut sets, &mut params, "template_prefix", t.prefix.clone());
        set(&mut sets, &mut params, "template_suffix", t.suffix.clone());
        set(
            &mut sets,
            &mut params,
            "subid_max_len",
            i64::from(t.subid_max_len),
        );
        set(
            &mut sets,
            &mut params,
            "subid_encoding",
            encoding_name(t.subid_encoding),
        );
        set(&mut sets, &mut params, "marketplace", t.marketplace.clone());
    }
    if let Some(targeting) = &update.targeting {
        set(
            &mut sets,
            &mut params,
            "targeting",
            targeting_json(targeting.as_ref()),
        );
    }
    // A new destination, or other rules, make it another link as far as
    // idempotency goes (the request key digests the rules it was made with).
    if update.destination.is_some() || update.forget_request {
        sets.push("request_key = NULL".into());
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if !sets.is_empty() {
        params.push(Box::new(code.to_owned()));
        let sql = format!(
            "UPDATE links SET {} WHERE code = ${} AND deleted_ms IS NULL",
            sets.join(", "),
            params.len()
        );
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        tx.execute(sql.as_str(), &params).await?;
    }
    let link = one_link(&tx, By::Code, code).await?;
    tx.commit().await?;
    Ok(link)
}

pub(super) async fn delete_link(pool: &Pool, code: &str) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "UPDATE links SET deleted_ms = $1, request_key = NULL, source_key = NULL \
             WHERE code = $2 AND deleted_ms IS NULL",
        )
        .await?;
    Ok(client.execute(&stmt, &[&now_ms(), &code]).await? > 0)
}

pub(super) async fn localized_links(
    pool: &Pool,
    checked_before_ms: i64,
    limit: usize,
) -> Result<Vec<Link>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE deleted_ms IS NULL \
             AND targeting IS NOT NULL AND targeting -> 'localize' = 'true'::jsonb \
             AND (coalesce((targeting ->> 'checked_ms')::bigint, 0) < $1 \
                  OR targeting -> 'retry_availability' = 'true'::jsonb) \
             ORDER BY coalesce((targeting ->> 'checked_ms')::bigint, 0), id LIMIT $2"
        ))
        .await?;
    let rows = client
        .query(&stmt, &[&checked_before_ms, &bigint(limit)])
        .await?;
    rows.iter().map(link_from_row).collect()
}
