#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every case of the shared table (`tests/shared-cases/explain.json`),
/// with `now_ms` filled in from the table.
pub fn table_cases() -> Vec<(String, Case, serde_json::Value)> {
    let text = std::fs::read_to_string(root().join("tests/shared-cases/explain.json")).unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let now = table["now_ms"].as_u64().unwrap();
    table["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut case = c["case"].clone();
            if case.get("now_ms").is_none() {
                case["now_ms"] = now.into();
            }
            let case: Case = serde_json::from_value(case).unwrap_or_else(|e| panic!("{}: {e}", c["name"]));
            (c["name"].as_str().unwrap().to_owned(), case, c["expect"].clone())
        })
        .collect()
}

fn explainer() -> Explainer {
    Explainer::from_toml(&std::fs::read_to_string(root().join("offload.toml")).unwrap()).unwrap()
}

#[test]
fn the_shared_table_holds_on_the_native_core() {
    let ex = explainer();
    let cases = table_cases();
    assert!(cases.len() >= 30, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, case, expect) in &cases {
        let got = serde_json::to_value(ex.explain(case).unwrap()).unwrap();
        for (field, want) in expect.as_object().unwrap() {
            if &got[field] != want {
                failures.push(format!("{name}: {field} = {} want {want}\n    {got}", got[field]));
            }
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_stored_response_reports_key_and_windows() {
    let ex = explainer();
    let case = Case {
        method: "GET".into(),
        url: "https://www.example.com/api/items/1?utm_source=x".into(),
        request_headers: vec![],
        status: 200,
        response_headers: vec![("cache-control".into(), "max-age=60, stale-while-revalidate=30".into())],
        now_ms: 1_700_000_000_000,
    };
    let e = ex.explain(&case).unwrap();
    assert_eq!(e.outcome, Outcome::Stored);
    assert!(e.storable);
    assert_eq!((e.ttl, e.stale_while_revalidate, e.stale_if_error), (Some(60), Some(30), Some(300)));
    let key = e.cache_key.unwrap();
    assert!(key.contains("www.example.com") && key.contains(":/api/items/1") && !key.contains("utm_source"), "{key}");
}

#[test]
fn bad_input_names_what_is_wrong() {
    let ex = explainer();
    let mut case = Case {
        method: "G ET".into(),
        url: "/api/x".into(),
        request_headers: vec![],
        status: 200,
        response_headers: vec![],
        now_ms: 0,
    };
    assert!(ex.explain(&case).unwrap_err().to_string().contains("method \"G ET\""));
    case.method = "GET".into();
    case.status = 42;
    assert!(ex.explain(&case).unwrap_err().to_string().contains("status 42"));
    case.status = 200;
    case.response_headers = vec![("bad name".into(), "x".into())];
    assert!(ex.explain(&case).unwrap_err().to_string().contains("\"bad name\""));
    let err = Explainer::from_toml("[[routes]]\npath = \"/*\"\npool = [\"nowhere\"]\n").unwrap_err().to_string();
    assert!(err.starts_with("config: ") && err.contains("nowhere"), "{err}");
}

#[test]
fn the_explainer_holds_no_secret_of_the_config() {
    // References only: the explainer never sees a value, and its output
    // is the same whatever the real secrets are.
    let ex = explainer();
    let (_, case, _) = table_cases().into_iter().next().unwrap();
    let out = serde_json::to_string(&ex.explain(&case).unwrap()).unwrap();
    assert!(!out.contains("placeholder"), "{out}");
}

#[test]
fn pasted_headers_parse() {
    let (fields, status) =
        parse_header_block("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"x:y\"\r\n\r\n").unwrap();
    assert_eq!(status, Some(200));
    assert_eq!(fields, vec![("cache-control".into(), "max-age=60".into()), ("etag".into(), "\"x:y\"".into())]);
    let (fields, status) = parse_header_block("GET /a HTTP/1.1\nHost: x\n").unwrap();
    assert_eq!((fields.len(), status), (1, None));
    let (_, status) = parse_header_block(":status: 404\nvary: accept\n").unwrap();
    assert_eq!(status, Some(404));
    let err = parse_header_block("cache-control max-age=60").unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("Name: value"), "{err}");
    assert!(parse_header_block("HTTP/1.1 abc").is_err());
}
