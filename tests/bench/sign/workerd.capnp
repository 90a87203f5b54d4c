# Plain `workerd serve` config for `cargo xtask bench sign`: two Workers in
# one workerd process, each on its own socket.
#
# The harness copies this file into a temporary directory laid out as
#
#   workerd.capnp
#   worker/index.js, worker/index_bg.wasm   Offload's Workers build with tests/bench/sign/offload.toml
#   aws4fetch.js                            tests/bench/sign/aws4fetch.js
#   aws4fetch.mjs                           node_modules/aws4fetch/dist/aws4fetch.esm.mjs (pinned in package-lock.json)
#
# and runs `workerd serve workerd.capnp` with the per-run random secrets
# in its environment (`fromEnvironment`).
#
# - "offload" (127.0.0.1:18841): Offload's presign endpoint, POST /_offload/presign.
# - "aws4fetch" (127.0.0.1:18842): GET /presign?key=K, an aws4fetch presigner.
# Neither has network access (no globalOutbound needed: both answer locally).

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "offload", worker = .offload),
    (name = "aws4fetch", worker = .aws4fetch),
  ],
  sockets = [
    (name = "offload", address = "127.0.0.1:18841", http = (), service = "offload"),
    (name = "aws4fetch", address = "127.0.0.1:18842", http = (), service = "aws4fetch"),
  ],
);

const offload :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "worker/index.js"),
    (name = "index_bg.wasm", wasm = embed "worker/index_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
  bindings = [
    (name = "OFFLOAD_S3_ACCESS_KEY_ID", fromEnvironment = "OFFLOAD_S3_ACCESS_KEY_ID"),
    (name = "OFFLOAD_S3_SECRET_ACCESS_KEY", fromEnvironment = "OFFLOAD_S3_SECRET_ACCESS_KEY"),
    (name = "OFFLOAD_LINK_KEY_BENCH_1", fromEnvironment = "OFFLOAD_LINK_KEY_BENCH_1"),
  ],
);

const aws4fetch :Workerd.Worker = (
  modules = [
    (name = "aws4fetch.js", esModule = embed "aws4fetch.js"),
    (name = "aws4fetch.mjs", esModule = embed "aws4fetch.mjs"),
  ],
  compatibilityDate = "2025-01-01",
  bindings = [
    (name = "OFFLOAD_S3_ACCESS_KEY_ID", fromEnvironment = "OFFLOAD_S3_ACCESS_KEY_ID"),
    (name = "OFFLOAD_S3_SECRET_ACCESS_KEY", fromEnvironment = "OFFLOAD_S3_SECRET_ACCESS_KEY"),
  ],
);
