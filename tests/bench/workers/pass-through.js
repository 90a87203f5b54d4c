// (f) A JS pass-through Worker: every request to the `ORIGIN` text binding,
// path and query kept, the response streamed back. The baseline for
// Offload's miss and bypass paths in `bench edge`.
export default {
  fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.ORIGIN + url.pathname + url.search, { method: request.method, headers: request.headers, body: request.body });
  },
};
