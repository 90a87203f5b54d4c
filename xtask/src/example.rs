//! The Workers library example (`edge/workers-example`: Offload in front
//! of the application's own handler in one Worker), built with
//! worker-build and run under plain `workerd serve`: a cacheable path is
//! answered by the application once and by Offload after that; an
//! uncacheable path reaches the application every time.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use offload_e2e::worker_build_env;

use offload_supervise::Supervisor;

use crate::conformance::start_edge;

const PORT: u16 = 18831;

/// The application's answer and the edge's `Cache-Status`.
fn get(path: &str) -> Result<(u64, String), String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let url = format!("http://127.0.0.1:{PORT}{path}");
    let resp = agent.get(&url).call().map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.header("cache-status").unwrap_or("").to_owned();
    let body = resp.into_string().map_err(|e| format!("GET {url}: body: {e}"))?;
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("GET {url}: {e}: {body}"))?;
    let seen = json["app_requests"].as_u64().ok_or_else(|| format!("GET {url}: no app_requests in {body}"))?;
    Ok((seen, status))
}

pub(crate) fn run(root: &Path) -> Result<(), String> {
    let dir = root.join("edge/workers-example");
    let mut build = Command::new("worker-build");
    build.arg("--release").current_dir(&dir).envs(worker_build_env(root));
    crate::run(&mut build)?;
    crate::ship_entry(root, &dir.join("build/index.js"))?;
    let mut procs = Supervisor::new(root.join(".offload/logs"))?;
    start_edge(&mut procs, "workers-example", root, &dir.join("build"), &root.join(".offload/workers-example"), PORT, true)?;
    let (first, s1) = get("/cached/a")?;
    let (second, s2) = get("/cached/a")?;
    let (third, s3) = get("/cached/a")?;
    if !(second == first && third == first && s2.contains("hit") && s3.contains("hit")) {
        return Err(format!(
            "cached path: the application answered requests {first}, {second}, {third} ({s1:?}, {s2:?}, {s3:?}); expected one answer and two edge hits"
        ));
    }
    let (p1, _) = get("/plain")?;
    let (p2, _) = get("/plain")?;
    if p2 <= p1 {
        return Err(format!("uncached path: the application saw {p1} then {p2}; expected every request"));
    }
    println!("workers-example: cached path reached the application once in 3 requests ({s3}); uncached path every time");
    Ok(())
}
