# cache-default.js (the JS Worker with caches.default) as the "edge" Worker
# of tests/conformance/workerd.capnp (which see), so it runs exactly as the
# Offload edge does there: same compatibility date, loopback-only outbound,
# miniflare's Cache API. The harness copies cache-default.js into worker/
# and sets ORIGIN (e.g. "http://127.0.0.1:18810") in workerd's environment.

using Workerd = import "/workerd/workerd.capnp";

const modules :List(Workerd.Worker.Module) = [
  (name = "cache-default.js", esModule = embed "worker/cache-default.js"),
];

const bindings :List(Workerd.Worker.Binding) = [
  (name = "ORIGIN", fromEnvironment = "ORIGIN"),
];
