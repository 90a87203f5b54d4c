// The shared decision table (tests/shared-cases/decisions.json) against the
// Lambda@Edge build (`cargo xtask package lambda-edge`). The same table runs
// end to end against the Workers build (tests/e2e/tests/edge.rs,
// shared_decision_table_matches_on_workers): both builds must route, key
// and sign every case the same way.
//
// Each case goes through CloudFront as it would: a viewer-request event
// (the host and CloudFront-Viewer-Country only; the geolocation headers are
// added after that trigger), then, unless that answered, an origin-request
// event carrying the viewer-request's output plus what CloudFront adds
// (CloudFront-Viewer-*, X-Forwarded-For, Via; host = the default origin's).
// Decisions are read from the outputs: origin.custom.domainName/port → the
// upstream, uri + querystring → the forwarded target, X-Offload-Auth (its
// HMAC recomputed here) → origin auth, Authorization (recomputed with the
// AWS SDK's SigV4 signer) → bucket signing, a generated response → the
// edge answered with that status.
//
//   node --test tests/lambda-edge/

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { touchedRestricted } from './restricted.mjs';
import { startAws, useRoleEnv, ROLE } from './aws.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const pkg = process.env.OFFLOAD_LAMBDA_PKG ?? join(root, '.offload/lambda-edge/pkg');
if (!existsSync(join(pkg, 'index.mjs'))) throw new Error(`${pkg}/index.mjs missing: run \`cargo xtask package lambda-edge\``);
useRoleEnv();
const lambda = await import(join(pkg, 'index.mjs'));
const require = createRequire(join(root, 'package.json'));
// The package reads its secrets from Secrets Manager / SSM (moto here).
const aws = await startAws();
after(() => aws.stop());
lambda.setOptions({ endpoint: aws.endpoint });
await lambda.loadSecrets();
const BINDINGS = aws.secrets.bindings;

const table = JSON.parse(readFileSync(join(root, 'tests/shared-cases/decisions.json'), 'utf8'));
assert.equal(table.config, 'offload.toml', 'the table is written for the bundled config');

// ----- what the bundled offload.toml says (only the fields used here) -----

/** `[section]` → { key: raw value } for the top-level tables of a TOML file (comments dropped). */
function tomlSections(text) {
  const sections = {};
  let cur = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (!line || line.startsWith('#')) continue;
    const head = line.match(/^\[+([^\]]+)\]+$/);
    if (head) {
      cur = sections[head[1]] ??= {};
      continue;
    }
    const kv = line.match(/^([A-Za-z0-9_.-]+)\s*=\s*(.*)$/);
    if (kv && cur) cur[kv[1]] = kv[2];
  }
  return sections;
}
const toml = tomlSections(readFileSync(join(root, table.config), 'utf8'));
const unquote = (v) => JSON.parse(v);
const hostPort = (url) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
};
/** host:port of each upstream, as the table names them. */
const UPSTREAMS = {};
for (const [name, sec] of Object.entries(toml)) {
  const region = name.match(/^regions\.(.+)$/);
  if (region) UPSTREAMS[hostPort(sec.origins.match(/url\s*=\s*"([^"]+)"/)[1])] = region[1];
  const bucket = name.match(/^buckets\.(.+)$/);
  if (bucket) UPSTREAMS[hostPort(unquote(sec.endpoint))] ??= `bucket:${bucket[1]}`;
}
const links = toml.links;
const LINK_KEY_ID = unquote(links.current);
// Secrets are references ({ binding = "NAME", ... }); the local values are
// the bindings' (.dev.vars), which are what moto was seeded with.
const bindingOf = (ref) => ref.match(/binding\s*=\s*"([^"]+)"/)[1];
const LINK_SECRET = BINDINGS[bindingOf(links.keys.match(new RegExp(`id\\s*=\\s*"${LINK_KEY_ID}"\\s*,\\s*secret\\s*=\\s*(\\{[^}]*\\})`))[1])];
const AUTH = toml['routing.origin_auth'];
const ORIGIN_AUTH = { kid: unquote(AUTH.key_id), secret: BINDINGS[bindingOf(AUTH.secret)], header: AUTH.header ? unquote(AUTH.header) : 'x-offload-auth' };
const WWW = toml['buckets.www'];
// Lambda@Edge signs bucket requests with its role.
const BUCKET_CREDS = ROLE;
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

// ----- tokens and signatures, computed independently of the Wasm -----

const b64url = (b) => Buffer.from(b).toString('base64url');

/** A signed-link token as offload-core issues it (sign/link.rs). */
function linkToken(scope, expiresAt) {
  // Version 2, audience `link`, GET and HEAD; the table's scopes need no escapes.
  assert.ok(!/[%|\s]/.test(scope), scope);
  const payload = `v2|link|${LINK_KEY_ID}|${expiresAt}||GET,HEAD|${scope}`;
  const mac = createHmac('sha256', LINK_SECRET).update(`offload-link-v2\n${payload}`).digest();
  return `${b64url(payload)}.${b64url(mac)}`;
}

/** The table's `{{link:SCOPE}}`, `{{link-expired:SCOPE}}`, `{{link-tampered:SCOPE}}` placeholders filled in. */
function fillTarget(target, nowS) {
  return target.replace(/\{\{(link|link-expired|link-tampered):([^}]*)\}\}/g, (_, kind, scope) => {
    const token = linkToken(scope, kind === 'link-expired' ? nowS - 60 : nowS + 300);
    if (kind !== 'link-tampered') return token;
    // Change the MAC's first character (all of its bits count).
    const at = token.indexOf('.') + 1;
    return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
  });
}

/** The origin-auth header as offload-core signs it (route/auth.rs). */
function originAuth(method, pathAndQuery, host, ts) {
  const sig = createHmac('sha256', ORIGIN_AUTH.secret).update(`${ts}\n${method}\n${pathAndQuery}\n${host.toLowerCase()}`).digest();
  return `v1,ts=${ts},kid=${ORIGIN_AUTH.kid},sig=${b64url(sig)}`;
}

/** SigV4 header auth of a bucket GET, by the AWS SDK's own signer. */
async function sdkBucketAuthorization(method, host, port, path, nowMs) {
  const { SignatureV4 } = require('@smithy/signature-v4');
  class Sha256 {
    constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
    update(data) { this.h.update(data); }
    async digest() { return new Uint8Array(this.h.digest()); }
  }
  const signer = new SignatureV4({
    service: 's3', region: unquote(WWW.region), credentials: BUCKET_CREDS,
    sha256: Sha256, uriEscapePath: false, applyChecksum: false,
  });
  const signed = await signer.sign(
    { method, protocol: 'http:', hostname: host, port, path, query: {},
      headers: { host: `${host}:${port}`, 'x-amz-content-sha256': EMPTY_SHA256 } },
    { signingDate: new Date(nowMs) },
  );
  return signed.headers.authorization;
}

// ----- CloudFront events from a table request -----

const DIST = 'd111111abcdef8.cloudfront.net';
const h = (key, value) => [{ key, value }];
const canonical = (n) => n.replace(/(^|-)([a-z])/g, (_, d, c) => d + c.toUpperCase());

function record(eventType, name, request) {
  return { Records: [{ cf: { config: { distributionDomainName: DIST, distributionId: 'EDFDVBD6EXAMPLE', eventType, requestId: `shared-${name}` }, request } }] };
}

function viewerRequestEvent(c, target) {
  const r = c.request;
  const [uri, ...q] = target.split('?');
  const headers = { host: h('Host', DIST), 'user-agent': h('User-Agent', 'shared-decisions/1'), accept: h('Accept', '*/*') };
  for (const [n, v] of Object.entries(r.headers ?? {})) headers[n.toLowerCase()] = h(canonical(n), v);
  headers['cloudfront-viewer-country'] = h('CloudFront-Viewer-Country', r.viewer.country);
  const request = { clientIp: '203.0.113.178', headers, method: r.method, querystring: q.join('?'), uri };
  if (r.body !== undefined) {
    request.body = { action: 'read-only', data: Buffer.from(r.body).toString('base64'), encoding: 'base64', inputTruncated: false };
  }
  return record('viewer-request', c.name, request);
}

/** The origin-request event CloudFront makes from the viewer-request's output. */
function originRequestEvent(c, fromViewer) {
  const v = c.request.viewer;
  const request = structuredClone(fromViewer);
  const headers = request.headers;
  headers.host = h('Host', 'example.org');
  headers['x-forwarded-for'] = h('X-Forwarded-For', request.clientIp);
  headers.via = h('Via', '2.0 2afae0d44e2540f472c0635ab62c232b.cloudfront.net (CloudFront)');
  if (v.lat !== undefined && v.lon !== undefined) {
    headers['cloudfront-viewer-latitude'] = h('CloudFront-Viewer-Latitude', String(v.lat));
    headers['cloudfront-viewer-longitude'] = h('CloudFront-Viewer-Longitude', String(v.lon));
  }
  request.origin = { custom: { customHeaders: {}, domainName: 'example.org', keepaliveTimeout: 5, path: '', port: 443, protocol: 'https', readTimeout: 30, sslProtocols: ['TLSv1.2'] } };
  return record('origin-request', c.name, request);
}

/** Run a trigger; the output must leave every header CloudFront restricts alone. */
function run(trigger, event, nowMs) {
  const out = lambda.invoke(trigger, structuredClone(event), nowMs, 7);
  const generated = out && typeof out.status === 'string';
  const before = generated ? {} : event.Records[0].cf.request.headers;
  assert.deepEqual(touchedRestricted(trigger, before, out.headers), [], `${trigger} touched restricted headers`);
  return out;
}

const header = (req, name) => req.headers?.[name]?.[0]?.value;

// ----- the cases -----

test('the shared decision table is well formed', () => {
  assert.ok(table.cases.length >= 12, `${table.cases.length} cases`);
  const names = new Set();
  for (const c of table.cases) {
    assert.ok(!names.has(c.name), `duplicate case ${c.name}`);
    names.add(c.name);
    for (const k of ['status', 'upstream', 'forwarded', 'origin_auth', 'bucket_sigv4']) assert.ok(k in c.expect, `${c.name}: expect.${k}`);
    assert.ok(c.expect.upstream === null || Object.values(UPSTREAMS).includes(c.expect.upstream), `${c.name}: unknown upstream ${c.expect.upstream}`);
  }
});

for (const c of table.cases) {
  test(`shared decision: ${c.name}`, async () => {
    const want = c.expect;
    const nowMs = Date.now();
    const nowS = Math.floor(nowMs / 1000);
    const target = fillTarget(c.request.target, nowS);

    const viewerEvent = viewerRequestEvent(c, target);
    const afterViewer = run('viewer-request', viewerEvent, nowMs);
    let out;
    if (typeof afterViewer.status === 'string') {
      out = afterViewer;
    } else {
      // Passed on: the same request, only the query may have changed.
      const { querystring: _q, ...rest } = afterViewer;
      const { querystring: _q0, ...restIn } = viewerEvent.Records[0].cf.request;
      assert.deepEqual(rest, restIn, 'viewer-request changed more than the query');
      out = run('origin-request', originRequestEvent(c, afterViewer), nowMs);
    }

    if (want.upstream === null) {
      // Answered at the edge.
      assert.equal(out.status, String(want.status), `expected a generated ${want.status}, got ${JSON.stringify(out).slice(0, 300)}`);
      assert.equal(JSON.parse(out.body).status, want.status, out.body);
      return;
    }
    assert.equal(typeof out.status, 'undefined', `expected a forwarded request, got a generated ${out.status}: ${out.body}`);

    // Routing: where the rewritten request goes.
    const custom = out.origin?.custom;
    assert.ok(custom, `no custom origin: ${JSON.stringify(out.origin)}`);
    const upstreamHost = `${custom.domainName}:${custom.port}`;
    assert.equal(UPSTREAMS[upstreamHost], want.upstream, `sent to ${upstreamHost}`);
    assert.equal(header(out, 'host'), upstreamHost);

    // Cache-key normalization and prefix stripping: what the upstream receives.
    const forwarded = out.querystring ? `${out.uri}?${out.querystring}` : out.uri;
    assert.equal(forwarded, want.forwarded, 'forwarded path and query');
    if (!want.upstream.startsWith('bucket:')) {
      // CloudFront's cache key sees the query the origin gets.
      assert.equal(afterViewer.querystring, out.querystring, 'viewer-request query (the CloudFront cache key)');
    }

    // Signing.
    const auth = header(out, ORIGIN_AUTH.header);
    if (want.origin_auth) {
      assert.equal(auth, originAuth(c.request.method, forwarded, upstreamHost, nowS), 'origin-auth header');
    } else {
      assert.equal(auth, undefined, 'origin-auth header on a request that should not carry one');
    }
    const authorization = header(out, 'authorization');
    if (want.bucket_sigv4) {
      const sdk = await sdkBucketAuthorization(c.request.method, custom.domainName, custom.port, out.uri, nowMs);
      assert.equal(authorization, sdk, 'SigV4 Authorization (AWS SDK signer)');
      assert.equal(header(out, 'x-amz-content-sha256'), EMPTY_SHA256);
    } else {
      assert.equal(authorization, undefined, 'Authorization on a request that should not carry one');
    }
  });
}
