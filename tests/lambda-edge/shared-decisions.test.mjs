// The shared decision table (tests/shared-cases/decisions.json) against the
// Lambda@Edge build (`cargo xtask package lambda-edge`). The same table runs
// natively against the core (edge/core/tests/decisions.rs), end to end
// against the Workers build (tests/e2e/tests/edge.rs,
// shared_decision_table_matches_on_workers) and through the CloudFront
// Function: every target must route, key and sign every case the same way.
// Checked here: status, upstream, forwarded, origin_auth, bucket_sigv4,
// error (no body: no upstream is called; no region hint: the CloudFront
// Function's). A case under not_applicable.lambda is listed with its
// reason and not run.
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

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  root, UPSTREAMS, ORIGIN_AUTH, EMPTY_SHA256, fillTarget, originAuth, sdkBucketAuthorization,
  DIST, h, canonical, record, run,
} from './table.mjs';

const table = JSON.parse(readFileSync(join(root, 'tests/shared-cases/decisions.json'), 'utf8'));
assert.equal(table.config, 'offload.toml', 'the table is written for the bundled config (table.mjs reads it)');

// ----- CloudFront events from a table request -----

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

const header = (req, name) => req.headers?.[name]?.[0]?.value;

// ----- the cases -----

const TARGET = 'lambda';
const notApplicable = table.cases.filter((c) => c.not_applicable?.[TARGET]);
const n = table.cases.length;
console.log(`shared decisions (${TARGET}): ${n} cases, ${n - notApplicable.length} checked, ${notApplicable.length} not applicable (failures: the tests below)`);
for (const c of notApplicable) console.log(`  not applicable: ${c.name}: ${c.not_applicable[TARGET]}`);

test('the shared decision table is well formed', () => {
  assert.ok(table.cases.length >= 60, `${table.cases.length} cases`);
  const names = new Set();
  for (const c of table.cases) {
    assert.ok(!names.has(c.name), `duplicate case ${c.name}`);
    names.add(c.name);
    for (const k of ['status', 'upstream', 'forwarded', 'origin_auth', 'bucket_sigv4']) assert.ok(k in c.expect, `${c.name}: expect.${k}`);
    assert.ok(c.expect.upstream === null || Object.values(UPSTREAMS).includes(c.expect.upstream), `${c.name}: unknown upstream ${c.expect.upstream}`);
  }
});

for (const c of table.cases.filter((c) => !c.not_applicable?.[TARGET])) {
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
      // Passed on: the same request, only the URI (made canonical) and the
      // query may have changed.
      const { querystring: _q, uri: _u, ...rest } = afterViewer;
      const { querystring: _q0, uri: _u0, ...restIn } = viewerEvent.Records[0].cf.request;
      assert.deepEqual(rest, restIn, 'viewer-request changed more than the URI and the query');
      out = run('origin-request', originRequestEvent(c, afterViewer), nowMs);
    }

    if (want.upstream === null) {
      // Answered at the edge.
      assert.equal(out.status, String(want.status), `expected a generated ${want.status}, got ${JSON.stringify(out).slice(0, 300)}`);
      assert.equal(JSON.parse(out.body).status, want.status, out.body);
      if (want.error) assert.ok(JSON.parse(out.body).error.includes(want.error), `${out.body} lacks ${JSON.stringify(want.error)}`);
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
