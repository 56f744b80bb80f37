//! Unit tests of bulk jobs: CSV input, webhook URLs, result rows.

use serde_json::Map;

use super::result::{result_row, spreadsheet_safe};
use super::*;
use crate::error::{BuildError, ErrorCode};

#[test]
fn result_cells_that_a_spreadsheet_would_run_are_defused() {
    for (cell, safe) in [
        (
            "=HYPERLINK(\"http://evil\")",
            "'=HYPERLINK(\"http://evil\")",
        ),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        (
            "https://www.amazon.com/dp/B08N5WRWNW",
            "https://www.amazon.com/dp/B08N5WRWNW",
        ),
        ("Echo review", "Echo review"),
        ("", ""),
    ] {
        assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
    }
}

fn parse(text: &str) -> Result<Vec<Value>, String> {
    parse_csv(text.as_bytes()).map_err(|e| e.to_string())
}

#[test]
fn csv_columns_are_case_insensitive_in_any_order_and_empty_cells_are_absent() {
    let items = parse(
        "Name,INPUT,Tags,param:clickref2,Marketplace,asin\n\
         Video 1, https://example.com/p ,a| b ||,x,,\n\
         ,,,,amazon.de,B08N5WRWNW\n",
    )
    .unwrap();
    assert_eq!(
        items,
        vec![
            serde_json::json!({"name": "Video 1", "url": "https://example.com/p",
                "tags": ["a", "b"], "params": {"clickref2": "x"}}),
            serde_json::json!({"marketplace": "amazon.de", "asin": "B08N5WRWNW"}),
        ]
    );
}

/// A spreadsheet's export often starts with a byte-order mark: it is not
/// part of the first column's name. (Written as an escape: the fuzz seeds
/// that carried a literal one were cleaned of invisible characters.)
#[test]
fn a_byte_order_mark_before_the_header_is_ignored() {
    let items = parse("\u{feff}URL,Tags\nhttps://x.example/ ,a|b\n").unwrap();
    assert_eq!(
        items,
        vec![serde_json::json!({"url": "https://x.example/", "tags": ["a", "b"]})]
    );
}

#[test]
fn csv_problems_are_refused_with_what_is_wrong() {
    let cases = [
        ("url,colour\nx,red\n", "unknown CSV column(s): `colour`"),
        ("url,,name\nx,,y\n", "(unnamed column 2)"),
        ("url,param:\nx,y\n", "`param:`"),
        ("url,input\nx,y\n", "more than once: input"),
        ("name,code\nx,y\n", "needs a `url` (or `input`) column"),
        ("url\n", "no rows"),
        ("", "the CSV is empty"),
        ("url,name\nx\n", "malformed CSV"),
    ];
    for (csv, expected) in cases {
        let e = parse(csv).unwrap_err();
        assert!(e.contains(expected), "{csv:?}: {e}");
    }
}

#[test]
fn more_than_max_rows_is_a_limit_error_with_the_count() {
    let mut csv = String::from("asin\n");
    for _ in 0..=MAX_ITEMS {
        csv.push_str("B08N5WRWNW\n");
    }
    match parse_csv(csv.as_bytes()) {
        Err(SubmitError::TooMany(n)) => assert_eq!(n, MAX_ITEMS + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn webhook_urls_must_be_http_or_https_with_a_host() {
    for ok in ["http://127.0.0.1:9/x", "https://hooks.example/a?b=c"] {
        assert!(validate_webhook_url(ok).is_ok(), "{ok}");
    }
    for bad in ["ftp://x/", "file:///etc/passwd", "nope", "http://", ""] {
        assert!(validate_webhook_url(bad).is_err(), "{bad}");
    }
}

/// Regression: outcomes were stored as the API's JSON of a link and
/// read back by field name, so renaming a field of the API's link (say
/// `template` to `tracked_url`) emptied the result CSV's Tracked URL.
/// Now the job stores its own typed record of the link; the CSV is made
/// from that, and the API's JSON of the same link plays no part.
#[test]
fn result_rows_come_from_the_typed_outcome_not_the_api_json_of_the_link() {
    use crate::store::Link;
    let link = Link {
        id: 1,
        code: "abc".into(),
        provider: "amazon".into(),
        input: "https://www.amazon.com/dp/B08N5WRWNW".into(),
        destination: "https://www.amazon.com/dp/B08N5WRWNW".into(),
        template_prefix: "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag=".into(),
        template_suffix: String::new(),
        subid_max_len: 64,
        subid_encoding: linkwright_plugin_sdk::SubIdEncoding::UrlSafe,
        name: Some("Echo".into()),
        marketplace: Some("amazon.com".into()),
        campaign: None,
        tags: vec![],
        params: vec![],
        source_key: None,
        created_ms: 0,
        disabled: false,
        targeting: None,
    };
    let outcome = ItemOutcome::of(Ok(Created { link, new: true }));
    let stored = serde_json::to_string(&outcome).expect("encode");
    let keys: Vec<String> = serde_json::from_str::<Map<String, Value>>(&stored)
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["code", "marketplace", "name", "new", "outcome", "template"]
    );
    let short = |code: &str| format!("https://s.example/{code}");
    assert_eq!(
        result_row(r#"{"asin":"B08N5WRWNW"}"#, Some(&stored), &short),
        [
            "B08N5WRWNW",
            "amazon.com",
            "Echo",
            "https://s.example/abc",
            "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag={click_id}",
            "ok",
            ""
        ]
    );
    let failed = ItemOutcome::of(Err(LinkError::Rejected(BuildError::new(
        ErrorCode::InvalidAsin,
        "\"B0\" is not a valid ASIN",
    ))));
    let stored = serde_json::to_string(&failed).expect("encode");
    assert_eq!(
        result_row(r#"{"asin":"B0"}"#, Some(&stored), &short)[5..],
        ["error", "invalid_asin: \"B0\" is not a valid ASIN"]
    );
}

/// Results stored by earlier versions (the API's status and JSON) are
/// still read, so a job that spans an upgrade keeps its rows.
#[test]
fn result_rows_show_links_errors_and_unprocessed_items() {
    let short = |code: &str| format!("https://s.example/{code}");
    let ok = serde_json::json!({"status": 201, "body": {"code": "abc", "marketplace": "amazon.com",
        "name": "N", "template": "https://a/?t={click_id}"}})
    .to_string();
    let err = serde_json::json!({"status": 422, "body": {"error": {"code": "unsupported_host",
        "message": "no provider"}}})
    .to_string();
    assert_eq!(
        result_row(r#"{"url":" u "}"#, Some(&ok), &short),
        [
            " u ",
            "amazon.com",
            "N",
            "https://s.example/abc",
            "https://a/?t={click_id}",
            "ok",
            ""
        ]
    );
    assert_eq!(
        result_row(
            r#"{"asin":"X","marketplace":"amazon.de","name":"M"}"#,
            Some(&err),
            &short
        ),
        [
            "X",
            "amazon.de",
            "M",
            "",
            "",
            "error",
            "unsupported_host: no provider"
        ]
    );
    assert_eq!(
        result_row(r#"{"asin":"X"}"#, None, &short)[6],
        "not_processed: the job failed before this item was processed"
    );
}

#[test]
fn a_bulk_csv_cell_past_its_limit_is_refused_naming_the_line_and_column() {
    let long = "x".repeat(MAX_CSV_CELL_BYTES + 1);
    let error = parse(&format!(
        "url,name\nhttps://example.com/a,ok\nhttps://example.com/b,\"{long}\"\n"
    ))
    .unwrap_err();
    assert_eq!(
        error,
        format!(
            "line 3, column `name`: a cell of {} bytes; cells hold at most {MAX_CSV_CELL_BYTES}",
            MAX_CSV_CELL_BYTES + 1
        )
    );
    // At the limit it is a link's own business (its field limits).
    let at_limit = "x".repeat(MAX_CSV_CELL_BYTES);
    assert_eq!(parse(&format!("url\n{at_limit}\n")).unwrap().len(), 1);
    let columns: Vec<String> = (0..MAX_CSV_COLUMNS)
        .map(|i| format!("param:p{i}"))
        .collect();
    let error = parse(&format!(
        "url,{}\nx{}\n",
        columns.join(","),
        ",".repeat(MAX_CSV_COLUMNS)
    ))
    .unwrap_err();
    assert_eq!(
        error,
        format!(
            "the CSV has {} columns; a bulk CSV has at most {MAX_CSV_COLUMNS}",
            MAX_CSV_COLUMNS + 1
        )
    );
}
