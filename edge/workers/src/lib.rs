//! The Offload Worker: the Workers executor
//! ([`offload_workers_executor`]) with the config bundled at build time
//! (validated by build.rs, so a bad config never deploys; as JSON, so no
//! TOML parser is in the Wasm) and every origin reached with `fetch`.
//!
//! The `fetch` export is written out instead of `#[worker::event(fetch)]`
//! (which makes every request an `async` export and converts the platform's
//! request and response to `worker` types): [`handle_now`] answers a
//! cache hit synchronously, with no promise, and returns a `Promise` only
//! for what must wait. worker-build's entry calls the `fetch` export and
//! hands its result, a `Response` or a `Promise`, to the platform.

use offload_workers_executor::{handle_now, Fetcher};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::web_sys::Request;
use worker::{Context, Env};

const CONFIG_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.json"));

#[wasm_bindgen]
pub fn fetch(req: Request, env: Env, ctx: worker::worker_sys::Context) -> JsValue {
    handle_now(CONFIG_JSON, req, &env, Context::new(ctx), Fetcher)
}
