//! Config parsing: `Config::from_toml` and `Config::from_json` on any text.
//! Invariants: never panics; an error names a field; a text that is valid
//! TOML gives the same result through `from_json` of its JSON form (the two
//! front-ends are one validator); a config that loads can plan a request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use offload_core::{Config, Edge, Plan, Viewer};
use offload_fuzz::SECRETS;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let from_toml = Config::from_toml(text);
    let from_json = Config::from_json(text);
    for r in [&from_toml, &from_json] {
        if let Err(e) = r {
            // Errors never echo a known secret value. (A syntax error quotes
            // the broken line as the parser saw it, which may hold one:
            // only errors about a parsed field are checked.)
            let shown = e.to_string();
            assert!(!shown.is_empty());
            // Only the secret fields themselves must never be echoed (a
            // name or URL that happens to contain a test secret's text is
            // that field's own value, rightly shown).
            let f = e.field();
            if f.is_empty() || !(f.contains("secret") || f.contains("token") || f.contains("keys") || f.contains("access_key")) {
                continue;
            }
            for s in SECRETS {
                assert!(!text.contains(s) || !shown.contains(s), "config error echoes a secret");
            }
        }
    }
    // TOML and JSON front-ends agree on the same document.
    if let Ok(value) = toml::from_str::<toml::Value>(text) {
        if let Ok(json) = serde_json::to_string(&value) {
            if !json.contains("$__toml_private_datetime") {
                let via_json = Config::from_json(&json);
                match (&from_toml, &via_json) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "TOML and JSON configs differ"),
                    (Err(_), Err(_)) => {}
                    (a, b) => panic!("TOML {:?} vs JSON {:?}", a.as_ref().err(), b.as_ref().err()),
                }
            }
        }
    }
    if let Ok(config) = from_toml.or(from_json) {
        // Configs naming secrets the harness lacks fail here, by design.
        let Ok(edge) = Edge::new(config, &offload_fuzz::secrets()) else { return };
        for target in ["/", "/a/b?c=d", "/_offload/presign"] {
            let Ok(req) = http::Request::get(format!("https://example.com{target}")).body(()) else { continue };
            let Ok(req) = edge.canonicalize(&req) else { continue };
            match edge.plan(&req, &Viewer::default(), 1_700_000_000_000) {
                Plan::Forward(f) => assert!(f.path_and_query().starts_with('/')),
                Plan::Respond(r) => assert!(r.status().as_u16() >= 200),
            }
        }
    }
});
