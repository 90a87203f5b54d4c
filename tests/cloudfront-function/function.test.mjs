// The generated CloudFront Function (`cargo xtask package
// cloudfront-function` → .offload/cloudfront-function/offload.js), run on
// events in the CloudFront Functions event format (as in
// aws-samples/amazon-cloudfront-functions' test objects), in a sandbox
// offering only what cloudfront-js-2.0 offers (its `crypto` module, and
// `cloudfront`'s KeyValueStore helper: here a stand-in store holding a
// random test key, since the function reads link keys from its store and
// holds none itself).
//
// The runtime rules checked here (see also check() in
// edge/cloudfront-function/src/lib.rs):
// - at most 10 KB; defines `async function handler(event)`; parses;
// - `import` only `cf from 'cloudfront'`; `require` only 'crypto';
// - no timers (setTimeout/setInterval/setImmediate), no network (fetch,
//   XMLHttpRequest), no promise combinators or chains (Promise, .then(),
//   no dynamic code (eval, new Function, import()), no `process`.
//
//   node --test tests/cloudfront-function/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import vm from 'node:vm';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFunction, LINK_KEY, IMPORT, token } from './sandbox.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const file = join(root, '.offload/cloudfront-function/offload.js');
if (!existsSync(file)) throw new Error(`${file} missing: run \`cargo xtask package cloudfront-function\``);
const code = readFileSync(file, 'utf8');

const NOW_MS = 1_700_000_000_000;
const NOW = NOW_MS / 1000;
function load(store) {
  return loadFunction(code, NOW_MS, store);
}

const fixture = (name) => JSON.parse(readFileSync(join(here, 'fixtures', `${name}.json`), 'utf8'));

test('the function follows the cloudfront-js-2.0 rules', () => {
  assert.ok(Buffer.byteLength(code) <= 10 * 1024, `${Buffer.byteLength(code)} bytes`);
  assert.match(code, /async function handler\(event\)/);
  assert.deepEqual(code.split('\n').filter((l) => /^\s*import\b/.test(l)), [IMPORT]);
  new vm.Script(code.replace(IMPORT, 'var cf;')); // parses
  for (const m of code.matchAll(/require\(([^)]*)\)/g)) assert.match(m[1], /^'(crypto|cloudfront)'$/);
  for (const bad of ['setTimeout', 'setInterval', 'setImmediate', 'fetch(', 'XMLHttpRequest', 'Promise', '.then(', 'eval(', 'new Function', 'import(', 'process.']) {
    assert.ok(!code.includes(bad), `uses ${bad}`);
  }
  const { required } = load();
  assert.deepEqual(required, ['crypto']);
});

test('no link key in the code: key ids map to store keys, values come from the store', async () => {
  assert.equal(LINK_KEY.kvs, 'offload-link-local-1');
  assert.match(code, /var K=\{'local-1':'offload-link-local-1'\};/);
  assert.match(code, /var kvs=cf\.kvs\(\);/);
  // A key the store lacks: the link is refused (fail closed), not let through.
  const { handler, reads } = load({});
  const e = fixture('private-no-token');
  e.request.querystring.token = { value: token('/private/', NOW + 60) };
  const out = await handler(structuredClone(e));
  assert.equal(out.statusCode, 403);
  assert.equal(JSON.parse(out.body).error, 'signed link refused: key unavailable');
  assert.deepEqual(reads, ['offload-link-local-1']);
  // Another value under that store key: the token (made with the test key) is refused.
  const other = load({ [LINK_KEY.kvs]: crypto.randomBytes(32).toString('hex') });
  assert.equal(JSON.parse((await other.handler(structuredClone(e))).body).error, 'signed link refused: bad signature');
  // The store is read only for signed-link checks.
  const plain = load();
  await plain.handler(fixture('api-tracking'));
  assert.deepEqual(plain.reads, []);
});

test('cache-key normalization: tracking parameters dropped on cached routes', async () => {
  const { handler } = load();
  const event = fixture('api-tracking');
  const out = await handler(structuredClone(event));
  const { utm_source: _a, fbclid: _b, UTM_Campaign: _c, ...kept } = event.request.querystring;
  assert.deepEqual(out, {
    ...event.request,
    querystring: kept,
    headers: { ...event.request.headers, 'x-offload-region-hint': { value: 'eu-west-1' } },
  });
});

test('country hints: the region the config prefers for the viewer\'s continent', async () => {
  const { handler } = load();
  const us = fixture('private-no-token');
  us.request.uri = '/healthz';
  assert.deepEqual((await handler(us)).headers['x-offload-region-hint'], { value: 'us-east-1' });
  const jp = fixture('landing-page');
  const out = await handler(structuredClone(jp));
  assert.deepEqual(out, jp.request); // no region for Asia in offload.toml; nothing to change
  const spoofed = fixture('landing-page');
  spoofed.request.headers['x-offload-region-hint'] = { value: 'eu-west-1' };
  assert.equal((await handler(spoofed)).headers['x-offload-region-hint'], undefined);
});

test('signed links: refused without a valid token, passed (token kept) with one', async () => {
  const { handler } = load();
  const refused = await handler(fixture('private-no-token'));
  assert.deepEqual(refused, {
    statusCode: 403,
    statusDescription: 'Forbidden',
    headers: { 'content-type': { value: 'application/json' }, 'cache-control': { value: 'no-store' } },
    body: JSON.stringify({ error: 'this path needs a signed link', field: 'token', status: 403 }),
  });
  const ok = fixture('private-no-token');
  ok.request.querystring.token = { value: token('/private/', NOW + 60) };
  ok.request.querystring.utm_source = { value: 'x' };
  const passed = await handler(structuredClone(ok));
  assert.deepEqual(passed, { ...ok.request, headers: { ...ok.request.headers, 'x-offload-region-hint': { value: 'us-east-1' } } });

  const cases = [
    [token('/private/', NOW), 'signed link refused: expired'],
    [token('/private/other.txt', NOW + 60), 'signed link refused: outside the token scope'],
    [token('/private/', NOW + 60, '198.51.100.7'), 'signed link refused: bound to another client address'],
    [token('/private/', NOW + 60).slice(0, -2) + 'AA', 'signed link refused: bad signature'],
    ['not-a-token', 'signed link refused: malformed token'],
    [token('/private/', NOW + 60).replace(/^[^.]+/, Buffer.from('v2|link|other|9999999999||GET|/private/').toString('base64url')), 'signed link refused: unknown key id'],
    [token('/private/', NOW + 60, '', 'POST'), 'signed link refused: method not allowed'],
    [token('/private/', NOW + 60, '', 'GET,HEAD'), 'signed link refused: method not allowed', 'DELETE'],
    [token('/private/', NOW + 60).replace(/^[^.]+/, Buffer.from(`v1|${LINK_KEY.id}|9999999999||/private/`).toString('base64url')), 'signed link refused: token version v1 is no longer accepted; reissue'],
  ];
  for (const [t, message, method] of cases) {
    const e = fixture('private-no-token');
    e.request.querystring.token = { value: t };
    if (method) e.request.method = method;
    const out = await handler(e);
    assert.equal(out.statusCode, 403, message);
    assert.equal(JSON.parse(out.body).error, message);
  }
  const bound = fixture('private-no-token');
  bound.request.querystring.token = { value: token('/private/report.txt', NOW + 60, '203.0.113.178') };
  assert.equal((await handler(bound)).statusCode, undefined);
});

test('link tokens: the function and offload-core\'s verify_link agree on every token of the table', async () => {
  // Written by `cargo xtask package cloudfront-function` from the Rust
  // verifier (xtask/src/sign.rs, link_agreement_table): each token, its
  // request and verify_link's verdict.
  const file = join(root, '.offload/cloudfront-function/tokens.json');
  assert.ok(existsSync(file), `${file} missing: run \`cargo xtask package cloudfront-function\``);
  const table = JSON.parse(readFileSync(file, 'utf8'));
  assert.ok(table.length >= 30, `${table.length} cases`);
  const { handler } = load();
  const verdicts = new Set();
  for (const c of table) {
    assert.equal(c.now * 1000, NOW_MS, 'the table is made for the sandbox clock');
    const event = fixture('private-no-token');
    event.viewer.ip = c.ip || '192.0.2.1';
    event.request.method = c.method;
    event.request.uri = c.path;
    event.request.querystring = { token: { value: c.token } };
    const out = await handler(event);
    const got = out.statusCode === undefined ? 'ok' : JSON.parse(out.body).error.replace(/^signed link refused: /, '');
    assert.equal(got, c.rust, `${c.name}: function says ${got}, Rust says ${c.rust}`);
    verdicts.add(got);
  }
  assert.ok(verdicts.size >= 10, [...verdicts].join(', '));
});

test('the same query decisions as the Lambda@Edge viewer-request handler', async () => {
  const pkg = join(root, '.offload/lambda-edge/pkg/index.mjs');
  if (!existsSync(pkg)) return; // packaged by the Lambda@Edge step
  const { startAws, useRoleEnv } = await import('../lambda-edge/aws.mjs');
  useRoleEnv();
  const lambda = await import(pkg);
  const aws = await startAws();
  try {
    lambda.setOptions({ endpoint: aws.endpoint });
    await lambda.loadSecrets();
  } finally {
    await aws.stop();
  }
  const { handler } = load();
  for (const [uri, qs] of [['/api/x', 'b=2&utm_medium=m&a=1&gclid=9'], ['/index.html', 'v=3&_ga=1&mc_cid=2'], ['/eu/x', 'utm_source=kept']]) {
    const params = Object.fromEntries(qs.split('&').map((p) => p.split('=')).map(([k, v]) => [k, { value: v }]));
    const cf = await handler({ version: '1.0', context: { eventType: 'viewer-request' }, viewer: { ip: '203.0.113.9' },
      request: { method: 'GET', uri, querystring: params, headers: { host: { value: 'x.example' } }, cookies: {} } });
    const fromFunction = Object.entries(cf.querystring).map(([k, v]) => `${k}=${v.value}`).join('&');
    const le = lambda.invoke('viewer-request', { Records: [{ cf: { config: { eventType: 'viewer-request' },
      request: { clientIp: '203.0.113.9', method: 'GET', uri, querystring: qs, headers: { host: [{ key: 'Host', value: 'x.example' }] } } } }] }, NOW_MS, 1);
    assert.equal(fromFunction, le.querystring, `${uri}?${qs}`);
  }
});
