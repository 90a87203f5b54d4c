// The hostile-input suite (tests/shared-cases/hostile.json) against the
// generated CloudFront Function, and the canonical-request agreement table
// (.offload/cloudfront-function/canonical.json, offload-core's verdicts,
// written by `cargo xtask package cloudfront-function`).
//
// The function runs at viewer-request only and answers only two things
// itself: canonical refusals (400) and the signed-link gate (403).
// Everything else (routing to an origin or the bucket, a 404 from the
// bucket, a 405 for a write to a bucket route) happens behind it in
// CloudFront; here such requests must pass, with the canonical URI, the
// one the rest of the table expects upstream. For `clean` cases the
// function's output URI and query equal the clean request's; which viewer
// headers reach the origin is CloudFront's origin request policy
// (deploy/cloudformation.yaml), not the function's. The event is built
// as CloudFront builds it: `uri` as sent, the query split into an object
// by name (raw names and values; a repeated name gets `multiValue`), one
// value per header name.
//
//   node --test tests/cloudfront-function/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFunction, viewerEvent, leadsTo, assertAnswer } from './sandbox.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const file = join(root, '.offload/cloudfront-function/offload.js');
if (!existsSync(file)) throw new Error(`${file} missing: run \`cargo xtask package cloudfront-function\``);
const code = readFileSync(file, 'utf8');
const table = JSON.parse(readFileSync(join(root, 'tests/shared-cases/hostile.json'), 'utf8'));

const NOW_MS = 1_700_000_000_000;
const event = (req) => viewerEvent(req, NOW_MS / 1000);

async function check(handler, c) {
  const { reason: _r, ...over } = c.platforms?.cloudfront ?? {};
  const want = { ...c.expect, ...over };
  const out = await handler(event(c.request));
  const answered = out.statusCode !== undefined;
  if (answered && !c.request.target.includes('{{link:')) {
    assert.ok(!String(out.body ?? '').includes(readFileSync(join(root, 'www/private/report.txt'), 'utf8')), 'THE PRIVATE FILE WAS SERVED');
  }
  if (assertAnswer(out, want)) return;
  if (want.forwarded) assert.ok(leadsTo(out.uri, want.upstream, want.forwarded), `uri ${out.uri} does not lead to ${want.forwarded}`);
  if (c.clean) {
    const clean = await handler(event(c.clean));
    assert.deepEqual([out.uri, out.querystring], [clean.uri, clean.querystring], 'uri and query differ from the clean request');
  }
}

test('the hostile table', async () => {
  const { handler } = loadFunction(code, NOW_MS);
  const failures = [];
  for (const c of table.cases) {
    try {
      await check(handler, c);
    } catch (e) {
      failures.push(`${c.name}: ${e.message.split('\n').slice(0, 4).join(' ')}`);
    }
  }
  assert.ok(table.cases.length >= 60, `${table.cases.length} cases`);
  console.log(`hostile: ${table.cases.length} cases, ${table.cases.length - failures.length} held (CloudFront Function)`);
  assert.deepEqual(failures, []);
});

test("canon() agrees with offload-core's canonical_path/canonical_query, byte for byte", () => {
  const file = join(root, '.offload/cloudfront-function/canonical.json');
  assert.ok(existsSync(file), `${file} missing: run \`cargo xtask package cloudfront-function\``);
  const rows = JSON.parse(readFileSync(file, 'utf8'));
  assert.ok(rows.length >= 100, `${rows.length} rows`);
  const { canon } = loadFunction(code, NOW_MS);
  const failures = [];
  for (const r of rows) {
    const js = canon(r.input, r.part === 'path');
    // canonical_query says None for an empty query; canon() says ''.
    const got = typeof js === 'string' ? { ok: js === '' && r.part === 'query' ? null : js } : { error: js.e };
    try {
      assert.deepEqual(got, r.rust);
    } catch {
      failures.push(`${r.part} ${JSON.stringify(r.input).slice(0, 80)}: JS ${JSON.stringify(got)}, Rust ${JSON.stringify(r.rust)}`);
    }
  }
  console.log(`canonical agreement: ${rows.length} inputs, ${rows.length - failures.length} agree`);
  assert.deepEqual(failures, []);
});
