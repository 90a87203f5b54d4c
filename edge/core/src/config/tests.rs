#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::route::Pool;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const R: &str = "[regions.a]\nlocation = { lat = 1.0, lon = 1.0 }\norigins = [{ url = \"http://a.example\" }]\n";

const GOOD: &str = r#"
[edge]
name = "Offload"

[regions.us-east-1]
location = { lat = 38.9, lon = -77.4 }
origins = [{ url = "http://127.0.0.1:18701" }]

[regions.eu-west-1]
location = { lat = 53.3, lon = -6.3 }
origins = [{ url = "https://eu.example.com/app/", host_header = "www.example.com" }]

[cache]
purge_token = { binding = "OFFLOAD_PURGE_TOKEN" }

[buckets.www]
endpoint = "http://127.0.0.1:18703"
bucket = "www"
region = "us-east-1"
index = "index.html"

[[routes]]
path = "/api/*"
pool = ["us-east-1"]
cache = { stale_if_error = 60 }
cache_key = { sort_query = true }

[[routes]]
path = "/api/eu/*"
pool = ["eu-west-1"]
strip_prefix = true

[[routes]]
path = "/api/time"

[[routes]]
path = "/*"
bucket = "www"
"#;

fn err(text: &str) -> String {
    Config::from_toml(text).unwrap_err().to_string()
}

#[test]
fn good_config_parses() {
    let cfg = Config::from_toml(GOOD).unwrap();
    assert_eq!(cfg.name(), "Offload");
    assert_eq!(cfg.routes().len(), 4);
    let eu = cfg.routing().origin("eu-west-1/0").unwrap();
    assert_eq!(eu.base_url(), "https://eu.example.com/app");
    assert_eq!(eu.host(), "www.example.com");
    assert_eq!(cfg.routing().origin("us-east-1/0").unwrap().host(), "127.0.0.1:18701");
    let api = cfg.route_for("/api/items/1").unwrap().cache().unwrap();
    assert_eq!(api.rules.stale_if_error, Some(60));
    assert!(api.key.sort_query);
    assert!(cfg.route_for("/api/time").unwrap().cache().is_none());
    assert_eq!(cfg.cache().purge_path, "/_offload/purge");
    assert!(!format!("{cfg:?}").contains("0123456789abcdef"), "purge token in Debug");
}

#[test]
fn most_specific_route_wins() {
    let cfg = Config::from_toml(GOOD).unwrap();
    let target = |p: &str| cfg.route_for(p).map(|r| r.target().clone());
    let pool = |names: &[&str]| Some(Target::Pool(Pool::Regions(names.iter().map(|n| n.to_string()).collect())));
    assert_eq!(target("/api/time"), Some(Target::Pool(Pool::All)));
    assert_eq!(target("/api/items/1"), pool(&["us-east-1"]));
    assert_eq!(target("/api/eu/x"), pool(&["eu-west-1"]));
    assert_eq!(target("/"), Some(Target::Bucket("www".into())));
    assert_eq!(target("/style.css"), Some(Target::Bucket("www".into())));
}

#[test]
fn strip_prefix_keeps_a_leading_slash() {
    let cfg = Config::from_toml(GOOD).unwrap();
    let r = cfg.route_for("/api/eu/items/3").unwrap();
    assert_eq!(r.forward_path("/api/eu/items/3"), "/items/3");
    assert_eq!(r.forward_path("/api/eu/"), "/");
}

#[test]
fn no_route_when_nothing_matches() {
    let cfg = Config::from_toml(&format!("{R}[[routes]]\npath = \"/api/*\"\n")).unwrap();
    assert!(cfg.route_for("/other").is_none());
}

#[test]
fn unknown_region_names_field_and_value() {
    let e = err(&format!("{R}[[routes]]\npath = \"/media/*\"\npool = [\"us-east-9\"]\n"));
    assert!(e.contains("routes[0].pool[0]") && e.contains("\"us-east-9\""), "{e}");
}

#[test]
fn unknown_bucket_names_field_and_value() {
    let e = err("[[routes]]\npath = \"/*\"\nbucket = \"nope\"\n");
    assert_eq!(e, "config: routes[0].bucket: unknown bucket \"nope\"");
}

#[test]
fn bad_url_names_field_and_value() {
    let region = |url: &str| format!("[regions.a]\nlocation = {{ lat = 1.0, lon = 1.0 }}\norigins = [{{ url = \"{url}\" }}]\n");
    let e = err(&region("ftp://a.example"));
    assert!(e.starts_with("config: regions.a.origins[0].url: bad URL \"ftp://a.example\""), "{e}");
    let e = err(&region("not a url"));
    assert!(e.starts_with("config: regions.a.origins[0].url: bad URL \"not a url\""), "{e}");
    let e = err(&region("/relative"));
    assert!(e.contains("regions.a.origins[0].url"), "{e}");
    let e = err("[buckets.b]\nendpoint = \"http://user:pw@s3.local\"\nbucket = \"bbb\"\nregion = \"us-east-1\"\n");
    assert!(e.contains("buckets.b.endpoint") && e.contains("credentials"), "{e}");
}

#[test]
fn duplicate_route_names_both() {
    let e = err(&format!("{R}[[routes]]\npath = \"/x/*\"\n[[routes]]\npath = \"/x/*\"\n"));
    assert_eq!(e, "config: routes[1].path: duplicate route \"/x/*\" (already defined by routes[0])");
}

#[test]
fn route_needs_exactly_one_target() {
    let e = err("[buckets.b]\nendpoint = \"http://s3.local\"\nbucket = \"bbb\"\nregion = \"us-east-1\"\n[[routes]]\npath = \"/x\"\nbucket = \"b\"\npool = \"all\"\n");
    assert!(e.contains("routes[0]") && e.contains("not both"), "{e}");
    let e = err("[[routes]]\npath = \"/x\"\n");
    assert!(e.contains("routes[0]") && e.contains("at least one [regions"), "{e}");
}

#[test]
fn bad_patterns_are_rejected() {
    for (p, why) in [("api/*", "start with"), ("/a*/b", "only at the end"), ("/a b", "spaces")] {
        let e = err(&format!("{R}[[routes]]\npath = \"{p}\"\n"));
        assert!(e.contains("routes[0].path") && e.contains(why), "{e}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let e = err("[edge]\nname = \"x\"\nweight = 3\n");
    assert!(e.contains("unknown field") && e.contains("weight"), "{e}");
    let e = err(&format!("{R}[[routes]]\npath = \"/x\"\ncache = {{ ttl = 5 }}\n"));
    assert!(e.contains("unknown field") && e.contains("ttl"), "{e}");
}

#[test]
fn bucket_fields_are_checked() {
    let base = "[buckets.b]\nendpoint = \"http://s3.local\"\nregion = \"us-east-1\"\n";
    let e = err(&format!("{base}bucket = \"Bad_Name\"\n"));
    assert!(e.contains("buckets.b.bucket"), "{e}");
    let e = err(&format!("{base}bucket = \"okname\"\nstyle = \"weird\"\n"));
    // A serde enum: TOML's error shows the line and the expected values.
    assert!(e.contains("style = \"weird\"") && e.contains("unknown variant `weird`, expected `path` or `virtual`"), "{e}");
    // `pool` is "all" or a list (a serde type, not a matched string).
    for (pool, want) in [
        ("\"some\"", "invalid value: string \"some\", expected \"all\" or a list of region names"),
        ("3", "invalid type: integer `3`, expected \"all\" or a list of region names"),
    ] {
        let e = Config::from_toml(&format!("{R}[[routes]]\npath = \"/*\"\npool = {pool}\n")).unwrap_err().to_string();
        assert!(e.contains(&format!("pool = {pool}")) && e.contains(want), "{e}");
    }
    let all = Config::from_toml(&format!("{R}[[routes]]\npath = \"/*\"\npool = \"all\"\n")).unwrap();
    assert_eq!(all.routes()[0].target(), &Target::Pool(Pool::All));
}

#[test]
fn json_config_is_equivalent() {
    let json = r#"{"regions":{"a":{"location":{"lat":1.0,"lon":1.0},"origins":[{"url":"http://a.example"}]}},"routes":[{"path":"/*"}]}"#;
    let toml = format!("{R}[[routes]]\npath = \"/*\"\n");
    assert_eq!(Config::from_json(json).unwrap(), Config::from_toml(&toml).unwrap());
}

#[test]
fn bucket_urls_path_and_virtual() {
    let cfg = Config::from_toml(
        "[buckets.p]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"www\"\nregion = \"us-east-1\"\n\
         [buckets.v]\nendpoint = \"https://s3.eu-west-1.amazonaws.com\"\nbucket = \"media\"\nregion = \"eu-west-1\"\nstyle = \"virtual\"\n",
    )
    .unwrap();
    assert_eq!(cfg.bucket("p").unwrap().url_for_encoded_key("/a%20b.txt"), "http://127.0.0.1:9000/www/a%20b.txt");
    assert_eq!(cfg.bucket("v").unwrap().url_for_encoded_key("/k"), "https://media.s3.eu-west-1.amazonaws.com/k");
    assert_eq!(cfg.bucket("v").unwrap().host(), "media.s3.eu-west-1.amazonaws.com");
}

#[test]
fn cache_rules_are_validated_with_the_route_named() {
    let e = err(&format!("{R}[[routes]]\npath = \"/x\"\ncache = {{ heuristic = 150 }}\n"));
    assert!(e.contains("routes[0].cache.heuristic") && e.contains("150"), "{e}");
    let e = err(&format!("{R}[[routes]]\npath = \"/x\"\ncache_key = {{ sort_query = true }}\n"));
    assert!(e.contains("routes[0].cache_key") && e.contains("needs a `cache`"), "{e}");
    let e = err("[cache]\npurge_token = \"a-secret-value\"\n");
    assert!(e.starts_with("config: cache.purge_token: a secret value is not allowed") && !e.contains("a-secret-value"), "{e}");
}

#[test]
fn bucket_credentials_come_in_pairs_and_stay_secret() {
    let base = "[buckets.b]\nendpoint = \"http://s3.local\"\nbucket = \"bbb\"\nregion = \"us-east-1\"\nsigned = true\n";
    let e = err(&format!("{base}access_key_id = {{ binding = \"ID\" }}\n"));
    assert!(e.contains("buckets.b.secret_access_key"), "{e}");
    let e = err(&format!("{base}access_key_id = {{ binding = \"ID\" }}\nsecret_access_key = \"very-secret-value\"\n"));
    assert!(e.starts_with("config: buckets.b.secret_access_key: a secret value is not allowed"), "{e}");
    assert!(!e.contains("very-secret-value"), "{e}");
    let cfg = Config::from_toml(&format!(
        "{base}access_key_id = {{ binding = \"ID\" }}\nsecret_access_key = {{ binding = \"SECRET\", ssm = \"/s3/secret\" }}\n"
    ))
    .unwrap();
    assert!(cfg.bucket("b").unwrap().signed());
    assert_eq!(cfg.bucket("b").unwrap().credentials().unwrap().secret_access_key.binding_name(), Some("SECRET"));
}
