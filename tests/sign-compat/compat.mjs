// Offload's S3 presigned URLs (the Lambda@Edge package: its JSON `presign`
// export and its kept `S3Presigner`) compared byte for byte with the AWS SDK for JavaScript v3
// (`@aws-sdk/s3-request-presigner` + `@aws-sdk/client-s3`, versions pinned
// in package.json) on random keys, methods, expiries, credentials,
// endpoints and response overrides, with the same clock.
//
//   node tests/sign-compat/compat.mjs [cases=10000] [seed]
//
// Prints every mismatch (up to 20 in full) and exits non-zero on any.

import { loadPackage, loadWasm, makeCase, offloadSigners, rng, sdkPresign } from './cases.mjs';

process.removeAllListeners('warning'); // the SDK's Node-version notice

const n = Number(process.argv[2] ?? 10000);
const seed = Number(process.argv[3] ?? process.env.SIGN_COMPAT_SEED ?? Date.now() % 0xffffffff);
const wasm = loadWasm();
const signer = offloadSigners((await loadPackage()).S3Presigner);
const r = rng(seed);
let mismatches = 0;
const counts = {};
for (let i = 0; i < n; i++) {
  const c = makeCase(r);
  const label = `${c.sdk.method} ${c.sdk.style}${c.sdk.sdkEndpoint ? ' custom' : ' aws'}`;
  counts[label] = (counts[label] ?? 0) + 1;
  const sdk = await sdkPresign(c.sdk);
  const ours = JSON.parse(wasm.presign(JSON.stringify(c.ours)));
  let kept;
  try {
    kept = signer(c.ours).presign(c.ours.key, c.ours);
  } catch (e) {
    kept = `error: ${e.message}`;
  }
  if (ours.url !== sdk || kept !== sdk) {
    mismatches++;
    if (mismatches <= 20) {
      console.log(`MISMATCH #${i} (${label})\n  input  ${JSON.stringify({ ...c.ours, secretAccessKey: '…' })}\n  sdk    ${sdk}\n  ours   ${ours.url ?? 'error: ' + ours.error}\n  kept   ${kept}`);
    }
  }
}
console.log(`sign-compat: ${n} cases (seed ${seed}): ${n - mismatches} identical, ${mismatches} mismatches`);
for (const [k, v] of Object.entries(counts).sort()) console.log(`  ${k.padEnd(22)} ${v}`);
process.exit(mismatches === 0 && n > 0 ? 0 : 1);
