//! (b) of `cargo xtask bench edge`: the workers-rs hello world. The same
//! answer as tests/bench/workers/nothing.js (the JS floor), through the
//! same `#[event(fetch)]` entry point and wasm-bindgen glue as the Offload
//! Worker (edge/workers), so the difference to (a) is the Rust/Wasm floor.

use worker::{event, Context, Env, Request, Response};

const BODY: &str = r#"{"ok":true}"#;

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> worker::Result<Response> {
    let mut resp = Response::ok(BODY)?;
    resp.headers_mut().set("content-type", "application/json")?;
    Ok(resp)
}
