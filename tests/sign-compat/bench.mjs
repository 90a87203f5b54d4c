// Presigned URLs per second in one Node process, on the same 1000 random
// cases: Offload's Wasm (the Lambda@Edge build's `presign` export, JSON in
// and out) against the AWS SDK for JavaScript v3 at its fastest entry point
// (`S3RequestPresigner.presign` with node:crypto SHA-256 and static
// credentials on a hand-built `HttpRequest`, no client middleware) and at
// its usual one (`getSignedUrl` through an `S3Client`'s middleware stack).
// All three must give the same URL, byte for byte, for every case before
// anything is timed.
//
//   node tests/sign-compat/bench.mjs [seconds per side=2]

import { directPresign, loadWasm, makeCase, rng, sdkPresign } from './cases.mjs';

process.removeAllListeners('warning');

const secs = Number(process.argv[2] ?? 2);
const wasm = loadWasm();
const r = rng(7);
const cases = Array.from({ length: 1000 }, () => makeCase(r));
const inputs = cases.map((c) => JSON.stringify(c.ours));

// Same work: the same URL from each, for every case.
for (const [i, c] of cases.entries()) {
  const ours = JSON.parse(wasm.presign(inputs[i])).url;
  const direct = await directPresign(c.sdk);
  const sdk = await sdkPresign(c.sdk);
  if (ours !== direct || direct !== sdk) {
    console.error(`case ${i}: the URLs differ\n  offload   ${ours}\n  presigner ${direct}\n  getSignedUrl ${sdk}`);
    process.exit(1);
  }
}

// `one` is awaited only if it is async (the SDK's presigners are;
// Offload's is a plain function call).
async function measure(name, one, isAsync) {
  // Warm up (JIT, SDK clients, Wasm tier-up), then count for `secs`.
  for (let i = 0; i < 2000; i++) isAsync ? await one(i % cases.length) : one(i % cases.length);
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
  const rate = done / (Number(now - start) / 1e9);
  console.log(`  ${name.padEnd(56)} ${Math.round(rate).toLocaleString('en-US').padStart(10)} URLs/s`);
  return rate;
}

console.log(`presign throughput, ${cases.length} random cases (all three URLs identical), ${secs} s each, Node ${process.version}`);
const ours = await measure('Offload Wasm presign (JSON in, JSON out)', (i) => JSON.parse(wasm.presign(inputs[i])).url, false);
const direct = await measure('AWS SDK v3 S3RequestPresigner.presign (node:crypto)', (i) => directPresign(cases[i].sdk), true);
const sdk = await measure('AWS SDK v3 getSignedUrl (S3Client middleware)', (i) => sdkPresign(cases[i].sdk), true);
console.log(`ratio Offload Wasm / S3RequestPresigner.presign: ${(ours / direct).toFixed(2)}x (goal >= 5x)`);
console.log(`ratio Offload Wasm / getSignedUrl: ${(ours / sdk).toFixed(1)}x`);
