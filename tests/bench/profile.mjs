// CPU profile of one Worker in a running `workerd serve --inspector-addr`,
// taken while load runs against it: V8's sampling profiler over the
// inspector protocol (the same data Chrome DevTools shows), summed by
// function (self time) and printed as the top entries.
//
//   node tests/bench/profile.mjs <inspector host:port> <service name> <seconds> [top]
//
// Wasm functions appear under their Rust names when the Wasm keeps its
// name section. Used by `cargo xtask bench edge --profile`.
import WebSocket from 'ws';

const [addr, service, secsArg, topArg] = process.argv.slice(2);
if (!addr || !service || !secsArg) {
  console.error('usage: profile.mjs <inspector host:port> <service> <seconds> [top]');
  process.exit(2);
}
const secs = Number(secsArg);
const top = Number(topArg ?? 25);

const list = await (await fetch(`http://${addr}/json/list`)).json();
const target = list.find((t) => t.title === service || t.id === service || (t.url ?? '').includes(service)) ?? (list.length === 1 ? list[0] : undefined);
if (!target) {
  console.error(`no inspector target named ${service}; targets: ${list.map((t) => t.title).join(', ')}`);
  process.exit(1);
}
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
let id = 0;
const pending = new Map();
ws.on('message', (m) => {
  const msg = JSON.parse(m);
  if (msg.id && pending.has(msg.id)) {
    const { ok, fail } = pending.get(msg.id);
    pending.delete(msg.id);
    msg.error ? fail(new Error(JSON.stringify(msg.error))) : ok(msg.result);
  }
});
const call = (method, params = {}) => new Promise((ok, fail) => {
  const n = ++id;
  pending.set(n, { ok, fail });
  ws.send(JSON.stringify({ id: n, method, params }));
});

await call('Profiler.enable');
await call('Profiler.setSamplingInterval', { interval: 50 });
await call('Profiler.start');
await new Promise((r) => setTimeout(r, secs * 1000));
const { profile } = await call('Profiler.stop');
ws.close();

// Self time per function: samples whose leaf is the node.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const hits = new Map();
for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
const self = new Map();
let total = 0;
for (const [nodeId, count] of hits) {
  const n = byId.get(nodeId);
  const f = n.callFrame;
  const name = f.functionName || '(anonymous)';
  const where = f.url ? ` ${f.url.split('/').pop()}` : '';
  const key = `${name}${where}`;
  self.set(key, (self.get(key) ?? 0) + count);
  total += count;
}
// Inclusive time: each sample counts once for every distinct function on
// its stack (leaf to root).
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) => `${n.callFrame.functionName || '(anonymous)'}${n.callFrame.url ? ' ' + n.callFrame.url.split('/').pop() : ''}`;
const incl = new Map();
for (const [nodeId, count] of hits) {
  const seen = new Set();
  for (let id = nodeId; id !== undefined; id = parent.get(id)) {
    const k = label(byId.get(id));
    if (!seen.has(k)) { seen.add(k); incl.set(k, (incl.get(k) ?? 0) + count); }
  }
}
const idle = self.get('(idle)') ?? 0;
const busy = total - idle;
console.log(`profile of ${target.title}: ${total} samples, ${busy} busy (${(100 * busy / Math.max(total, 1)).toFixed(1)}%), self time by function:`);
const rows = [...self.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top);
for (const [k, c] of rows) {
  console.log(`  ${(100 * c / Math.max(busy, 1)).toFixed(1).padStart(5)}%  ${k.slice(0, 150)}`);
}
console.log('inclusive time (the function and what it calls), Wasm and glue only:');
const inclRows = [...incl.entries()]
  .filter(([k]) => !k.startsWith('(') && (k.includes('.wasm') || k.includes('index.js')))
  .sort((a, b) => b[1] - a[1]).slice(0, top);
for (const [k, c] of inclRows) {
  console.log(`  ${(100 * c / Math.max(busy, 1)).toFixed(1).padStart(5)}%  ${k.slice(0, 150)}`);
}
