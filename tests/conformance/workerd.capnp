# Plain `workerd serve` config for the Offload edge, used by
# `cargo xtask conformance` and `cargo xtask bench cache` (not by
# `wrangler dev`, which changes HTTP traffic: see WORKERD-NOTES).
#
# The harness copies this file into a temporary directory laid out as
#
#   workerd.capnp
#   edge-worker.capnp         the Worker served as "edge": its modules and
#                             bindings (edge-offload.capnp here for Offload;
#                             tests/bench/workers/cache-default.capnp for the
#                             JS Worker with caches.default in `bench cache`)
#   worker/...                the files edge-worker.capnp embeds (for
#                             Offload: index.js, index_bg.wasm from worker-build)
#   miniflare/*.worker.js     miniflare's Cache API workers
#
# and runs
#
#   workerd serve --experimental workerd.capnp \
#     --socket-addr http=127.0.0.1:<port> --directory-path cache-storage=<empty temp dir>
#
# Services:
# - "edge": the Worker under test (edge-worker.capnp's modules and
#   bindings), compatibility date as in wrangler.toml. Whatever it is, it
#   runs with the same outbound, Cache API and flags. Its global fetch()
#   goes to "internet", which only reaches loopback.
# - Cache API: plain workerd has none unless `cacheApiOutbound` names a
#   service ("No Cache was configured"). We reuse miniflare's own cache
#   implementation (the one `wrangler dev` uses): an entry worker that
#   routes each cache namespace to a CacheObject Durable Object, storing
#   metadata in SQLite and bodies as blobs, both in a fresh temporary
#   directory per run (so every run starts with an empty cache). It needs
#   miniflare's `miniflare:shared`/`miniflare:zod` extension modules, the
#   `nodejs_compat` and `experimental` flags, hence `--experimental`.

using Workerd = import "/workerd/workerd.capnp";
using EdgeWorker = import "edge-worker.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edge),
    (name = "internet", network = (allow = ["local"])),
    (name = "cache:0", worker = .cacheEntry),
    (name = "cache:cache", worker = .cacheObject),
    (name = "cache-storage", disk = (path = "cache-storage", writable = true)),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:18801", http = (), service = "edge"),
  ],
  extensions = [
    ( modules = [
        (name = "miniflare:shared", esModule = embed "miniflare/shared.worker.js"),
        (name = "miniflare:zod", esModule = embed "miniflare/zod.worker.js"),
      ] ),
  ],
);

const edge :Workerd.Worker = (
  modules = EdgeWorker.modules,
  bindings = EdgeWorker.bindings,
  compatibilityDate = "2025-01-01",
  globalOutbound = "internet",
  cacheApiOutbound = "cache:0",
);

const cacheEntry :Workerd.Worker = (
  modules = [
    (name = "cache-entry.worker.js", esModule = embed "miniflare/cache-entry.worker.js"),
  ],
  compatibilityDate = "2023-07-24",
  compatibilityFlags = ["nodejs_compat", "experimental"],
  bindings = [
    (name = "MINIFLARE_OBJECT", durableObjectNamespace = (serviceName = "cache:cache", className = "CacheObject")),
    (name = "MINIFLARE_CACHE_WARN_USAGE", json = "false"),
  ],
);

const cacheObject :Workerd.Worker = (
  modules = [
    (name = "cache.worker.js", esModule = embed "miniflare/cache.worker.js"),
  ],
  compatibilityDate = "2023-07-24",
  compatibilityFlags = ["nodejs_compat", "experimental"],
  durableObjectNamespaces = [
    (className = "CacheObject", uniqueKey = "offload-CacheObject", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "cache-storage"),
  bindings = [
    (name = "MINIFLARE_BLOBS", service = "cache-storage"),
  ],
);
