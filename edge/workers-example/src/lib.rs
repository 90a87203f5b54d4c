//! Offload in front of an application's own handler, in the same Worker:
//! `offload_workers_executor::handle` with the application as the [`Handler`]
//! upstream. Cache hits are answered by Offload and never reach the
//! application; misses, revalidations and everything uncacheable do.
//!
//! The application here counts the requests it sees (per isolate) and
//! says so in its answers, so a test can tell a hit from a miss.

use std::cell::Cell;

use offload_workers_executor::Handler;
use worker::{event, Context, Env, Request, Response};

/// `offload.toml` of this crate, validated and turned into JSON by the
/// build script.
const CONFIG: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.json"));

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// The application: any `async fn(Request) -> Result<Response>`.
async fn app(req: Request) -> worker::Result<Response> {
    let n = SEEN.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    let path = req.path();
    let mut resp = Response::from_json(&serde_json::json!({ "path": path, "app_requests": n }))?;
    resp.headers_mut().set("cache-control", "public, max-age=60")?;
    Ok(resp)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    offload_workers_executor::handle(CONFIG, req, &env, &ctx, Handler(app)).await
}
