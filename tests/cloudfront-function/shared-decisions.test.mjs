// The shared decision table (tests/shared-cases/decisions.json) through the
// generated CloudFront Function (.offload/cloudfront-function/offload.js,
// `cargo xtask package cloudfront-function`), in the sandbox of
// sandbox.mjs. The same table runs natively against the core, on the
// Workers build and through the Lambda@Edge handlers.
//
// The function runs at viewer-request and decides less than the others:
// it answers canonical refusals (400) and the signed-link gate (403) with
// the core's texts; every other request it passes on with the canonical
// URI and, for cached routes, the normalized query; it sets the region
// hint from the viewer's country. It does not choose the upstream (beyond
// that hint), sign, or answer the edge endpoints: CloudFront and the
// Lambda@Edge triggers behind it do. So, per case:
// - expect.upstream null and status 400 or 403: the function answers
//   with that status, its body's error containing expect.error;
// - otherwise: it passes the request on; the URI leads to
//   expect.forwarded's path; for a region upstream the query equals
//   expect.forwarded's; expect.region_hint is the x-offload-region-hint
//   header it sets (absent for null).
// A case listed under not_applicable.cloudfront is counted, with its
// reason, and not run.
//
//   node --test tests/cloudfront-function/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFunction, viewerEvent, leadsTo, assertAnswer } from './sandbox.mjs';

const TARGET = 'cloudfront';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const file = join(root, '.offload/cloudfront-function/offload.js');
if (!existsSync(file)) throw new Error(`${file} missing: run \`cargo xtask package cloudfront-function\``);
const code = readFileSync(file, 'utf8');
const table = JSON.parse(readFileSync(join(root, 'tests/shared-cases/decisions.json'), 'utf8'));
assert.equal(table.config, 'offload.toml', 'the table is written for the bundled config');

const NOW_MS = 1_700_000_000_000;
// The function's test geo header and region hint names come from the core
// (route::geo); the generated code holds them as data.
const HINT = code.match(/var HINT='([^']+)'/)?.[1];

/** The query object as the query string the origin gets (names in order, repeated names expanded). */
function queryString(q) {
  const parts = [];
  for (const [n, e] of Object.entries(q)) for (const v of e.multiValue ?? [e]) parts.push(`${n}=${v.value}`);
  return parts.join('&');
}

async function check(handler, c) {
  const want = c.expect;
  const out = await handler(viewerEvent(c.request, NOW_MS / 1000));
  if (assertAnswer(out, want)) return;
  if (want.forwarded) {
    assert.ok(leadsTo(out.uri, want.upstream, want.forwarded), `uri ${out.uri} does not lead to ${want.forwarded}`);
    if (!want.upstream.startsWith('bucket:')) {
      const wantQuery = want.forwarded.includes('?') ? want.forwarded.slice(want.forwarded.indexOf('?') + 1) : '';
      assert.equal(queryString(out.querystring), wantQuery, 'the query the origin gets (the CloudFront cache key)');
    }
  }
  if ('region_hint' in want) assert.deepEqual(out.headers[HINT] ?? null, want.region_hint === null ? null : { value: want.region_hint }, 'region hint');
}

test('the shared decision table through the CloudFront Function', async () => {
  assert.ok(HINT, 'the function names its region hint header');
  const { handler } = loadFunction(code, NOW_MS);
  const failures = [];
  const notApplicable = [];
  for (const c of table.cases) {
    const reason = c.not_applicable?.[TARGET];
    if (reason) {
      notApplicable.push(`${c.name}: ${reason}`);
      continue;
    }
    try {
      await check(handler, c);
    } catch (e) {
      failures.push(`${c.name}: ${e.message.split('\n').slice(0, 4).join(' ')}`);
    }
  }
  const n = table.cases.length;
  console.log(`shared decisions (${TARGET}): ${n} cases, ${n - notApplicable.length} checked, ${notApplicable.length} not applicable, ${failures.length} failed`);
  for (const na of notApplicable) console.log(`  not applicable: ${na}`);
  assert.ok(n >= 60, `${n} cases`);
  assert.deepEqual(failures, []);
});
