# The Offload edge as the "edge" Worker of workerd.capnp (which see): the
# Workers build from worker-build, copied by the harness into worker/.
# Its config is bundled in the build (OFFLOAD_CONFIG): no bindings here.

using Workerd = import "/workerd/workerd.capnp";

const modules :List(Workerd.Worker.Module) = [
  (name = "index.js", esModule = embed "worker/index.js"),
  (name = "index_bg.wasm", wasm = embed "worker/index_bg.wasm"),
];

const bindings :List(Workerd.Worker.Binding) = [];
