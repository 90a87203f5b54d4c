// Presigned URLs per second: Offload's Wasm (the Lambda@Edge build's
// `presign` export, JSON in and out) ÷ the AWS SDK for JavaScript v3
// presigner (`getSignedUrl`), in the same Node process, on the same 1000
// random cases.
//
//   node tests/sign-compat/bench.mjs [seconds per side=2]

import { loadWasm, makeCase, rng, sdkPresign } from './cases.mjs';

process.removeAllListeners('warning');

const secs = Number(process.argv[2] ?? 2);
const wasm = loadWasm();
const r = rng(7);
const cases = Array.from({ length: 1000 }, () => makeCase(r));
const inputs = cases.map((c) => JSON.stringify(c.ours));

// `one` is awaited only if it is async (the SDK's presigner is; Offload's
// is a plain function call).
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
  console.log(`  ${name.padEnd(44)} ${Math.round(rate).toLocaleString('en-US').padStart(10)} URLs/s`);
  return rate;
}

console.log(`presign throughput, ${cases.length} random cases, ${secs} s each, Node ${process.version}`);
const ours = await measure('Offload Wasm presign (JSON in, JSON out)', (i) => JSON.parse(wasm.presign(inputs[i])).url, false);
const sdk = await measure('AWS SDK v3 getSignedUrl', (i) => sdkPresign(cases[i].sdk), true);
const ratio = ours / sdk;
console.log(`ratio Offload Wasm / AWS SDK v3: ${ratio.toFixed(1)}x (goal >= 10x)`);
