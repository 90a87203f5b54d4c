#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const GOOD: &str = r#"
[edge]
name = "Offload"

[origins.us-east-1]
url = "http://127.0.0.1:18701"
region = "us-east-1"

[origins.eu-west-1]
url = "https://eu.example.com/app/"
host_header = "www.example.com"

[buckets.www]
endpoint = "http://127.0.0.1:18703"
bucket = "www"
region = "us-east-1"
index = "index.html"

[[routes]]
path = "/api/*"
origin = "us-east-1"

[[routes]]
path = "/api/eu/*"
origin = "eu-west-1"
strip_prefix = true

[[routes]]
path = "/api/time"
origin = "eu-west-1"

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
    let eu = cfg.origin("eu-west-1").unwrap();
    assert_eq!(eu.base_url(), "https://eu.example.com/app");
    assert_eq!(eu.host(), "www.example.com");
    assert_eq!(cfg.origin("us-east-1").unwrap().host(), "127.0.0.1:18701");
}

#[test]
fn most_specific_route_wins() {
    let cfg = Config::from_toml(GOOD).unwrap();
    let target = |p: &str| cfg.route_for(p).map(|r| r.target().clone());
    assert_eq!(target("/api/time"), Some(Target::Origin("eu-west-1".into())));
    assert_eq!(target("/api/items/1"), Some(Target::Origin("us-east-1".into())));
    assert_eq!(target("/api/eu/x"), Some(Target::Origin("eu-west-1".into())));
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
    let cfg = Config::from_toml(
        "[origins.a]\nurl = \"http://a.example\"\n[[routes]]\npath = \"/api/*\"\norigin = \"a\"\n",
    )
    .unwrap();
    assert!(cfg.route_for("/other").is_none());
}

#[test]
fn unknown_origin_names_field_and_value() {
    let e = err("[origins.a]\nurl = \"http://a.example\"\n[[routes]]\npath = \"/media/*\"\norigin = \"us-east-9\"\n");
    assert_eq!(e, "config: routes[0].origin: unknown origin \"us-east-9\"");
}

#[test]
fn unknown_bucket_names_field_and_value() {
    let e = err("[[routes]]\npath = \"/*\"\nbucket = \"nope\"\n");
    assert_eq!(e, "config: routes[0].bucket: unknown bucket \"nope\"");
}

#[test]
fn bad_url_names_field_and_value() {
    let e = err("[origins.a]\nurl = \"ftp://a.example\"\n");
    assert!(e.starts_with("config: origins.a.url: bad URL \"ftp://a.example\""), "{e}");
    let e = err("[origins.a]\nurl = \"not a url\"\n");
    assert!(e.starts_with("config: origins.a.url: bad URL \"not a url\""), "{e}");
    let e = err("[origins.a]\nurl = \"/relative\"\n");
    assert!(e.contains("origins.a.url"), "{e}");
    let e = err("[origins.a]\nurl = \"http://user:pw@a.example\"\n");
    assert!(e.contains("credentials"), "{e}");
}

#[test]
fn duplicate_route_names_both() {
    let e = err(
        "[origins.a]\nurl = \"http://a.example\"\n[[routes]]\npath = \"/x/*\"\norigin = \"a\"\n[[routes]]\npath = \"/x/*\"\norigin = \"a\"\n",
    );
    assert_eq!(e, "config: routes[1].path: duplicate route \"/x/*\" (already defined by routes[0])");
}

#[test]
fn route_needs_exactly_one_target() {
    let e = err("[[routes]]\npath = \"/x\"\n");
    assert!(e.contains("routes[0]") && e.contains("exactly one"), "{e}");
}

#[test]
fn bad_patterns_are_rejected() {
    for (p, why) in [("api/*", "start with"), ("/a*/b", "only at the end"), ("/a b", "spaces")] {
        let e = err(&format!(
            "[origins.a]\nurl = \"http://a.example\"\n[[routes]]\npath = \"{p}\"\norigin = \"a\"\n"
        ));
        assert!(e.contains("routes[0].path") && e.contains(why), "{e}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let e = err("[origins.a]\nurl = \"http://a.example\"\nweight = 3\n");
    assert!(e.contains("unknown field") && e.contains("weight"), "{e}");
}

#[test]
fn bucket_fields_are_checked() {
    let base = "[buckets.b]\nendpoint = \"http://s3.local\"\nregion = \"us-east-1\"\n";
    let e = err(&format!("{base}bucket = \"Bad_Name\"\n"));
    assert!(e.contains("buckets.b.bucket"), "{e}");
    let e = err(&format!("{base}bucket = \"okname\"\nstyle = \"weird\"\n"));
    assert!(e.contains("buckets.b.style") && e.contains("weird"), "{e}");
}

#[test]
fn json_config_is_equivalent() {
    let json = r#"{"origins":{"a":{"url":"http://a.example"}},"routes":[{"path":"/*","origin":"a"}]}"#;
    let toml = "[origins.a]\nurl = \"http://a.example\"\n[[routes]]\npath = \"/*\"\norigin = \"a\"\n";
    assert_eq!(Config::from_json(json).unwrap(), Config::from_toml(toml).unwrap());
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
