// (c) What a JS developer writes for an edge cache: caches.default in front
// of the origin, storing what the origin marks cacheable. The origin is the
// `ORIGIN` text binding (e.g. "http://127.0.0.1:18810"); the request's path
// and query are kept. Used by `bench edge` (hits) and `bench cache` (Zipf).
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const upstream = env.ORIGIN + url.pathname + url.search;
    const cache = caches.default;
    const hit = await cache.match(upstream);
    if (hit) return hit;
    const response = await fetch(upstream, { method: request.method, headers: request.headers });
    if (request.method === 'GET' && response.status === 200) {
      ctx.waitUntil(cache.put(upstream, response.clone()));
    }
    return response;
  },
};
