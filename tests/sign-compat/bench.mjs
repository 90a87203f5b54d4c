// Presigned URLs per second in one Node process, on the same 1000 random
// cases: Offload's Wasm (the Lambda@Edge package) through its two entry
// points, `S3Presigner.presign` (a presigner kept per bucket and
// credentials, positional arguments to the Wasm, the URL back) and the
// `presign` export (JSON in and out), against the AWS SDK for JavaScript
// v3 at its fastest entry point (`S3RequestPresigner.presign` with
// node:crypto SHA-256 and static credentials on a hand-built
// `HttpRequest`, no client middleware, a presigner kept per credentials)
// and at its usual one (`getSignedUrl` through an `S3Client`'s middleware
// stack). All four must give the same URL, byte for byte, for every case
// before anything is timed.
//
// Same work per URL on both sides: every call signs one URL from scratch,
// day signing key included (Offload's presigner keeps none; the SDK's
// `signingKeyCache` holds 50 keys and the cases' times are random over 40
// years, so it does not hit either). What a presigner keeps is per bucket
// and credentials: the SDK's the credentials and region, Offload's the
// checked endpoint and bucket and the HMAC state of "AWS4" + secret.
//
//   node tests/sign-compat/bench.mjs [seconds per side=2]

import { directPresign, loadPackage, loadWasm, makeCase, offloadSigners, rng, sdkPresign } from './cases.mjs';

process.removeAllListeners('warning');

const secs = Number(process.argv[2] ?? 2);
const wasm = loadWasm();
const { S3Presigner } = await loadPackage();
const r = rng(7);
const cases = Array.from({ length: 1000 }, () => makeCase(r));
const inputs = cases.map((c) => JSON.stringify(c.ours));
const signers = offloadSigners(S3Presigner);
const ids = cases.map((c) => signers.id(c.ours));
const signer = (i) => signers.byId(ids[i], cases[i].ours);

// Same work: the same URL from each, for every case.
for (const [i, c] of cases.entries()) {
  const json = JSON.parse(wasm.presign(inputs[i])).url;
  const kept = signer(i).presign(c.ours.key, c.ours);
  const direct = await directPresign(c.sdk);
  const sdk = await sdkPresign(c.sdk);
  if (json !== kept || kept !== direct || direct !== sdk) {
    console.error(`case ${i}: the URLs differ\n  S3Presigner  ${kept}\n  presign JSON ${json}\n  presigner    ${direct}\n  getSignedUrl ${sdk}`);
    process.exit(1);
  }
}
// `one` is awaited only if it is async (the SDK's presigners are;
// Offload's is a plain function call). URLs per second over `secs`.
async function rate(one, isAsync, secs) {
  let done = 0;
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(secs * 1e9));
  let now = start;
  while (now < until) {
    if (isAsync) for (let j = 0; j < 200; j++) await one((done + j) % cases.length);
    else for (let j = 0; j < 200; j++) one((done + j) % cases.length);
    done += 200;
    now = process.hrtime.bigint();
  }
  return done / (Number(now - start) / 1e9);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString('en-US');

// The rows, each warmed up (JIT, SDK clients, Wasm tier-up), then timed in
// ROUNDS alternating rounds of secs / ROUNDS each (so load from elsewhere
// on the machine hits every row alike); per row the median, and each ratio
// the median of its per-round ratios. getSignedUrl (informative, ~30x
// slower) runs once, after.
const ROUNDS = 5;
const rows = [
  ['Offload Wasm S3Presigner.presign (kept per bucket)', (i) => signer(i).presign(cases[i].ours.key, cases[i].ours), false],
  ['Offload Wasm presign (JSON in, JSON out)', (i) => JSON.parse(wasm.presign(inputs[i])).url, false],
  ['AWS SDK v3 S3RequestPresigner.presign (node:crypto)', (i) => directPresign(cases[i].sdk), true],
];
console.log(`presign throughput, ${cases.length} random cases (all four URLs identical; ${new Set(ids).size} Offload presigners), ${ROUNDS} alternating rounds, ${secs} s per row in all, Node ${process.version}`);
for (const [, one, isAsync] of rows) for (let i = 0; i < 2000; i++) isAsync ? await one(i % cases.length) : one(i % cases.length);
const rates = rows.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (const [k, [, one, isAsync]] of rows.entries()) rates[k].push(await rate(one, isAsync, secs / ROUNDS));
}
for (const [k, [name]] of rows.entries()) {
  console.log(`  ${name.padEnd(56)} ${fmt(median(rates[k])).padStart(10)} URLs/s  (rounds: ${rates[k].map(fmt).join(', ')})`);
}
for (let i = 0; i < 200; i++) await sdkPresign(cases[i % cases.length].sdk);
const sdk = await rate((i) => sdkPresign(cases[i].sdk), true, secs);
console.log(`  ${'AWS SDK v3 getSignedUrl (S3Client middleware)'.padEnd(56)} ${fmt(sdk).padStart(10)} URLs/s`);
const ratio = (k) => median(rates[k].map((r, i) => r / rates[2][i]));
console.log(`ratio Offload S3Presigner / S3RequestPresigner.presign: ${ratio(0).toFixed(2)}x (goal >= 5x; per round: ${rates[0].map((r, i) => (r / rates[2][i]).toFixed(2)).join(', ')})`);
console.log(`ratio Offload presign JSON / S3RequestPresigner.presign: ${ratio(1).toFixed(2)}x`);
console.log(`ratio Offload S3Presigner / getSignedUrl: ${(median(rates[0]) / sdk).toFixed(1)}x`);
