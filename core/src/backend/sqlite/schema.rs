//! The SQLite schema as numbered migrations, applied in order at open and
//! tracked in `PRAGMA user_version`. A migration is never edited once
//! released: a change is a new one at the end.

/// Migrations, in order; `user_version` is the number applied.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: links, clicks, meta.
    r#"
    CREATE TABLE links (
        id              INTEGER PRIMARY KEY,
        code            TEXT NOT NULL UNIQUE,
        provider        TEXT NOT NULL,
        input           TEXT NOT NULL,
        destination     TEXT NOT NULL,
        template_prefix TEXT NOT NULL,
        template_suffix TEXT NOT NULL,
        subid_max_len   INTEGER NOT NULL,
        subid_encoding  TEXT NOT NULL,
        name            TEXT,
        marketplace     TEXT,
        campaign        TEXT,
        tags            TEXT NOT NULL DEFAULT '[]',
        params          TEXT NOT NULL DEFAULT '[]',
        source_key      TEXT UNIQUE,
        created_ms      INTEGER NOT NULL,
        disabled        INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX links_provider ON links(provider, id);
    CREATE TABLE clicks (
        id            INTEGER PRIMARY KEY,
        click_id      TEXT,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua_class      TEXT NOT NULL,
        country       TEXT
    );
    CREATE UNIQUE INDEX clicks_click_id ON clicks(click_id) WHERE click_id IS NOT NULL;
    CREATE INDEX clicks_link_at ON clicks(link_id, at_ms);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    "#,
    // 2: API keys, bulk jobs.
    r#"
    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        scopes      TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        revoked_ms  INTEGER
    );
    CREATE TABLE jobs (
        id           TEXT PRIMARY KEY,
        status       TEXT NOT NULL,
        total        INTEGER NOT NULL,
        processed    INTEGER NOT NULL DEFAULT 0,
        ok           INTEGER NOT NULL DEFAULT 0,
        errors       INTEGER NOT NULL DEFAULT 0,
        webhook_url  TEXT,
        created_ms   INTEGER NOT NULL,
        finished_ms  INTEGER,
        failure      TEXT
    );
    CREATE TABLE job_items (
        job_id  TEXT NOT NULL REFERENCES jobs(id),
        seq     INTEGER NOT NULL,
        request TEXT NOT NULL,
        result  TEXT,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    "#,
    // 3: idempotent creation and soft deletion of links.
    r#"
    ALTER TABLE links ADD COLUMN request_key TEXT;
    ALTER TABLE links ADD COLUMN deleted_ms INTEGER;
    CREATE UNIQUE INDEX links_request_key ON links(request_key) WHERE request_key IS NOT NULL;
    "#,
    // 4: conversions imported from the networks' reports, and a per-link,
    // per-day click rollup kept up to date by the click writer (reports read
    // it instead of scanning raw clicks). Money is integer micro-units.
    r#"
    CREATE TABLE conversions (
        id                INTEGER PRIMARY KEY,
        provider          TEXT NOT NULL,
        kind              TEXT NOT NULL,
        row_key           TEXT NOT NULL,
        sub_id            TEXT,
        click_id          TEXT,
        link_id           INTEGER REFERENCES links(id),
        tracking_id       TEXT,
        event_ms          INTEGER NOT NULL,
        product_id        TEXT,
        product_name      TEXT,
        quantity          INTEGER NOT NULL DEFAULT 0,
        returns           INTEGER NOT NULL DEFAULT 0,
        price_micros      INTEGER NOT NULL DEFAULT 0,
        revenue_micros    INTEGER NOT NULL DEFAULT 0,
        commission_micros INTEGER NOT NULL DEFAULT 0,
        status            TEXT NOT NULL,
        currency          TEXT,
        imported_ms       INTEGER NOT NULL,
        updated_ms        INTEGER NOT NULL,
        UNIQUE (provider, kind, row_key)
    );
    CREATE INDEX conversions_event ON conversions(event_ms);
    CREATE INDEX conversions_link ON conversions(link_id, event_ms);
    CREATE INDEX conversions_sub_id ON conversions(sub_id) WHERE link_id IS NULL;
    CREATE TABLE click_rollup (
        link_id  INTEGER NOT NULL,
        day      INTEGER NOT NULL,
        clicks   INTEGER NOT NULL DEFAULT 0,
        bot_hits INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (link_id, day)
    ) WITHOUT ROWID;
    INSERT INTO click_rollup (link_id, day, clicks, bot_hits)
        SELECT link_id, at_ms / 86400000, sum(bot = 0), sum(bot = 1) FROM clicks GROUP BY 1, 2;
    "#,
    // 5: per-link questions are answered by click_rollup, so raw clicks need
    // no (link, time) index: one B-tree less to update on every click.
    r#"
    DROP INDEX clicks_link_at;
    "#,
    // 6: clicks split by whether they carry a click ID. Those that do (every
    // human click) go in a WITHOUT ROWID table keyed by the ID: one B-tree
    // per insert instead of the rowid table plus the unique `clicks_click_id`
    // index (IDs are time-ordered, so inserts land at the right edge). Those
    // that don't (bot hits, HEAD requests) keep a plain rowid table. Readers
    // see both through the view `clicks`, with the columns of the old table
    // but `id`; `click_id = ?` on the view searches the primary key (the
    // other half's click ID is NULL, so a non-NULL ID skips its scan). Both
    // tables keep `bot`: the store takes any event, and one the redirect
    // never makes (a human without an ID, a bot with one) reads back as it
    // went in. Ordered copies, so each table is built in key order.
    r#"
    CREATE TABLE clicks_by_id (
        click_id      TEXT PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua_class      TEXT NOT NULL,
        country       TEXT
    ) WITHOUT ROWID;
    CREATE TABLE clicks_without_id (
        id            INTEGER PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua_class      TEXT NOT NULL,
        country       TEXT
    );
    INSERT INTO clicks_by_id (click_id, link_id, at_ms, bot, referrer_host, ua_class, country)
        SELECT click_id, link_id, at_ms, bot, referrer_host, ua_class, country
        FROM clicks WHERE click_id IS NOT NULL ORDER BY click_id;
    INSERT INTO clicks_without_id (id, link_id, at_ms, bot, referrer_host, ua_class, country)
        SELECT id, link_id, at_ms, bot, referrer_host, ua_class, country
        FROM clicks WHERE click_id IS NULL ORDER BY id;
    DROP TABLE clicks;
    CREATE VIEW clicks (click_id, link_id, at_ms, bot, referrer_host, ua_class, country) AS
        SELECT click_id, link_id, at_ms, bot, referrer_host, ua_class, country FROM clicks_by_id
        UNION ALL
        SELECT NULL, link_id, at_ms, bot, referrer_host, ua_class, country FROM clicks_without_id;
    "#,
    // 7: a journal of link changes, so that a server's caches learn of
    // changes made by another process (the CLI, another instance sharing
    // the store). Triggers write it, whoever changes `links`. `seq` is
    // max + 1 (never the newest row is pruned), so the numbers have no
    // holes except below the oldest row kept.
    r#"
    CREATE TABLE link_changes (
        seq     INTEGER PRIMARY KEY,
        code    TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TRIGGER link_created AFTER INSERT ON links BEGIN
        INSERT INTO link_changes (code, created) VALUES (NEW.code, 1);
    END;
    CREATE TRIGGER link_updated AFTER UPDATE ON links BEGIN
        INSERT INTO link_changes (code, created) VALUES (OLD.code, 0);
        INSERT INTO link_changes (code, created)
            SELECT NEW.code, 0 WHERE NEW.code IS NOT OLD.code;
    END;
    CREATE TRIGGER link_removed AFTER DELETE ON links BEGIN
        INSERT INTO link_changes (code, created) VALUES (OLD.code, 0);
    END;
    "#,
    // 8: the user-agent class as a small integer (`ua`: 0 bot, 1 mobile,
    // 2 tablet, 3 desktop, 4 other; `UaClass::index`) instead of its name:
    // ~6 bytes less per click row, and no text to bind per click. The click
    // writer spent ~15% less per row. The view `clicks` still shows the name.
    r#"
    DROP VIEW clicks;
    CREATE TABLE clicks_by_id_8 (
        click_id      TEXT PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua            INTEGER NOT NULL,
        country       TEXT
    ) WITHOUT ROWID;
    CREATE TABLE clicks_without_id_8 (
        id            INTEGER PRIMARY KEY,
        link_id       INTEGER NOT NULL REFERENCES links(id),
        at_ms         INTEGER NOT NULL,
        bot           INTEGER NOT NULL,
        referrer_host TEXT,
        ua            INTEGER NOT NULL,
        country       TEXT
    );
    INSERT INTO clicks_by_id_8 (click_id, link_id, at_ms, bot, referrer_host, ua, country)
        SELECT click_id, link_id, at_ms, bot, referrer_host,
            CASE ua_class WHEN 'bot' THEN 0 WHEN 'mobile' THEN 1 WHEN 'tablet' THEN 2
                WHEN 'desktop' THEN 3 ELSE 4 END,
            country
        FROM clicks_by_id ORDER BY click_id;
    INSERT INTO clicks_without_id_8 (id, link_id, at_ms, bot, referrer_host, ua, country)
        SELECT id, link_id, at_ms, bot, referrer_host,
            CASE ua_class WHEN 'bot' THEN 0 WHEN 'mobile' THEN 1 WHEN 'tablet' THEN 2
                WHEN 'desktop' THEN 3 ELSE 4 END,
            country
        FROM clicks_without_id ORDER BY id;
    DROP TABLE clicks_by_id;
    DROP TABLE clicks_without_id;
    ALTER TABLE clicks_by_id_8 RENAME TO clicks_by_id;
    ALTER TABLE clicks_without_id_8 RENAME TO clicks_without_id;
    CREATE VIEW clicks (click_id, link_id, at_ms, bot, referrer_host, ua_class, country) AS
        SELECT click_id, link_id, at_ms, bot, referrer_host,
            CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet'
                WHEN 3 THEN 'desktop' ELSE 'other' END,
            country
        FROM clicks_by_id
        UNION ALL
        SELECT NULL, link_id, at_ms, bot, referrer_host,
            CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet'
                WHEN 3 THEN 'desktop' ELSE 'other' END,
            country
        FROM clicks_without_id;
    "#,
    // 9: a link replaced in place (`INSERT OR REPLACE`, as a hand edit or
    // another tool might do) deletes the old row without firing
    // `link_removed` (SQLite fires delete triggers for a REPLACE only with
    // `recursive_triggers` on), so it was journaled as a creation only and
    // running servers kept the old row cached. Before any insert, every row
    // the new one would replace (by id, code, source key or request key) is
    // journaled as changed. A plain insert that conflicts fails and takes
    // this with it, so the store's own creations journal nothing more.
    r#"
    CREATE TRIGGER link_replacing BEFORE INSERT ON links BEGIN
        INSERT INTO link_changes (code, created)
            SELECT code, 0 FROM links
            WHERE id = NEW.id OR code = NEW.code
                OR source_key = NEW.source_key OR request_key = NEW.request_key;
    END;
    "#,
    // 10: targeting. A link's rules and the targets built for them (JSON,
    // `targeting::Targeting`; NULL: none), the catalog's answers on where
    // an ASIN is sold (Amazon localization), and on each click the target
    // that served it (0: the link's own destination).
    r#"
    ALTER TABLE links ADD COLUMN targeting TEXT;
    CREATE TABLE availability (
        asin        TEXT NOT NULL,
        marketplace TEXT NOT NULL,
        available   INTEGER NOT NULL,
        title       TEXT,
        checked_ms  INTEGER NOT NULL,
        PRIMARY KEY (asin, marketplace)
    ) WITHOUT ROWID;
    ALTER TABLE clicks_by_id ADD COLUMN target INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE clicks_without_id ADD COLUMN target INTEGER NOT NULL DEFAULT 0;
    DROP VIEW clicks;
    CREATE VIEW clicks (click_id, link_id, at_ms, bot, referrer_host, ua_class, country, target) AS
        SELECT click_id, link_id, at_ms, bot, referrer_host,
            CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet'
                WHEN 3 THEN 'desktop' ELSE 'other' END,
            country, target
        FROM clicks_by_id
        UNION ALL
        SELECT NULL, link_id, at_ms, bot, referrer_host,
            CASE ua WHEN 0 THEN 'bot' WHEN 1 THEN 'mobile' WHEN 2 THEN 'tablet'
                WHEN 3 THEN 'desktop' ELSE 'other' END,
            country, target
        FROM clicks_without_id;
    "#,
    // 11: node ID leases (`nodes`): who mints click IDs with which node
    // ID, until when.
    r#"
    CREATE TABLE node_leases (
        node_id    INTEGER PRIMARY KEY,
        owner      TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    "#,
    // 12: bulk jobs are claimed by a runner of any instance sharing the
    // store, for a lease its runner renews (`claimed_by`, `claimed_until_ms`:
    // Unix ms); a job whose runner died is taken by another once its lease
    // runs out. Runners look for jobs often: unfinished ones are indexed.
    r#"
    ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
    ALTER TABLE jobs ADD COLUMN claimed_until_ms INTEGER;
    CREATE INDEX jobs_unfinished ON jobs(created_ms, id) WHERE status IN ('queued', 'running');
    "#,
];
