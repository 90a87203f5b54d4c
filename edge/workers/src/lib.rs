//! The Offload Worker: the Workers executor
//! ([`offload_workers_executor`]) with the config bundled at build time
//! (validated by build.rs, so a bad config never deploys; as JSON, so no
//! TOML parser is in the Wasm) and every origin reached with `fetch`.

use offload_workers_executor::{handle, Fetcher};
use worker::{event, Context, Env, Request, Response};

const CONFIG_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.json"));

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    handle(CONFIG_JSON, req, &env, &ctx, Fetcher).await
}
