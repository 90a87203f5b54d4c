// The hostile-input suite (tests/shared-cases/hostile.json) against the
// Lambda@Edge build (`cargo xtask package lambda-edge`), as CloudFront runs
// it: a viewer-request event made from the raw request (the target split
// into `uri` and `querystring` as sent, every header pair kept, the body
// as the "include body" option gives it), then, unless that answered, an
// origin-request event from its output (CloudFront's Via, X-Forwarded-For
// appended to the viewer's, host = the default origin's).
//
// Checked per case: the status of a generated answer (and a part of its
// error message), or where the request goes (origin.custom host:port) and
// what it asks for (uri + querystring). The status of a forwarded request
// is the upstream's, checked end to end on Workers. For `clean` cases the
// origin-request output (uri, query, origin, every header the function
// controls) equals the clean request's; headers CloudFront owns in
// origin-request (restricted.mjs) are CloudFront's business and left out.
// For `cache` cases: origin-response gives CloudFront no freshness to
// keep (CloudFront's cache is the platform's; Offload only expresses the
// route's rules as Cache-Control there).
// And: no answer to a request without a valid token carries the private file.
//
//   node --test tests/lambda-edge/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRestricted } from './restricted.mjs';
import { root, UPSTREAMS, fillTarget, DIST, h, canonical, record, run } from './table.mjs';

const table = JSON.parse(readFileSync(join(root, 'tests/shared-cases/hostile.json'), 'utf8'));
assert.equal(table.config, 'offload.toml', 'the table is written for the bundled config (table.mjs reads it)');
const PRIVATE = readFileSync(join(root, 'www/private/report.txt'));
const CLIENT_IP = '203.0.113.178';

/** The table's non-token placeholders ({{host}}, {{HOST}}, {{host-dot}}, {{run}}, {{X*N}}). */
function expand(s, nowS) {
  const out = s.replace(/\{\{(host|HOST|host-dot|run|(.)\*(\d+))\}\}/g, (_, k, c, n) => {
    if (k === 'host') return DIST;
    if (k === 'HOST') return DIST.toUpperCase();
    if (k === 'host-dot') return `${DIST}.`;
    if (k === 'run') return 'lambda';
    return c.repeat(Number(n));
  });
  return fillTarget(out, nowS);
}

function viewerRequestEvent(name, req, nowS) {
  let target = expand(req.target, nowS);
  const headers = {};
  const add = (n, v) => (headers[n.toLowerCase()] ??= []).push({ key: canonical(n.toLowerCase()), value: v });
  const pairs = (req.headers ?? []).map(([n, v]) => [n, expand(v, nowS)]);
  // Absolute-form: CloudFront gives functions the path; the host is the Host.
  const abs = target.match(/^https?:\/\/([^/]*)(\/.*)$/);
  if (abs) target = abs[2];
  if (!pairs.some(([n]) => n.toLowerCase() === 'host')) add('host', abs ? abs[1] : DIST);
  for (const [n, v] of pairs) add(n, v);
  add('cloudfront-viewer-country', req.viewer?.country ?? 'US');
  const at = target.indexOf('?');
  const request = {
    clientIp: CLIENT_IP, headers, method: req.method,
    querystring: at < 0 ? '' : target.slice(at + 1), uri: at < 0 ? target : target.slice(0, at),
  };
  if (req.body !== undefined) {
    request.body = { action: 'read-only', data: Buffer.from(req.body).toString('base64'), encoding: 'base64', inputTruncated: false };
  }
  return record('viewer-request', name, request);
}

/** The origin-request event CloudFront makes from the viewer-request's output. */
function originRequestEvent(name, fromViewer) {
  const request = structuredClone(fromViewer);
  const headers = request.headers;
  headers.host = h('Host', 'example.org');
  const xff = headers['x-forwarded-for']?.map((e) => e.value).join(', ');
  headers['x-forwarded-for'] = h('X-Forwarded-For', xff ? `${xff}, ${request.clientIp}` : request.clientIp);
  headers.via = h('Via', '2.0 2afae0d44e2540f472c0635ab62c232b.cloudfront.net (CloudFront)');
  request.origin = { custom: { customHeaders: {}, domainName: 'example.org', keepaliveTimeout: 5, path: '', port: 443, protocol: 'https', readTimeout: 30, sslProtocols: ['TLSv1.2'] } };
  return record('origin-request', name, request);
}

/** Both request triggers: { status, error, body } when answered, else { upstream, forwarded, out }. */
function through(name, req, nowMs) {
  const viewer = viewerRequestEvent(name, req, Math.floor(nowMs / 1000));
  let out = run('viewer-request', viewer, nowMs);
  if (typeof out.status !== 'string') out = run('origin-request', originRequestEvent(name, out), nowMs);
  if (typeof out.status === 'string') {
    const body = out.bodyEncoding === 'base64' ? Buffer.from(out.body, 'base64') : Buffer.from(out.body ?? '');
    let error = null;
    try { error = JSON.parse(body.toString()).error ?? null; } catch { /* not the edge's JSON */ }
    return { status: Number(out.status), error, body, upstream: null, forwarded: null };
  }
  const custom = out.origin?.custom;
  const upstream = custom ? UPSTREAMS[`${custom.domainName}:${custom.port}`] ?? `unknown ${custom.domainName}:${custom.port}` : 'no origin';
  return { upstream, forwarded: out.querystring ? `${out.uri}?${out.querystring}` : out.uri, out };
}

/** What the function decides about the upstream request (CloudFront-owned headers left out). */
function controlled(out) {
  const headers = Object.fromEntries(Object.entries(out.headers).filter(([n]) => !isRestricted('origin-request', n)));
  return { uri: out.uri, querystring: out.querystring, origin: out.origin, headers };
}

function expectation(c) {
  const { reason: _r, ...over } = c.platforms?.lambda ?? {};
  return { ...c.expect, ...over };
}

function check(c, nowMs) {
  const want = expectation(c);
  const got = through(c.name, c.request, nowMs);
  if (!c.request.target.includes('{{link:') && got.body) {
    assert.ok(!got.body.includes(PRIVATE), 'THE PRIVATE FILE WAS SERVED WITHOUT A VALID TOKEN');
  }
  assert.equal(got.upstream, want.upstream, `upstream (answered ${got.status ?? '-'}: ${got.error ?? ''})`);
  if (want.upstream === null) {
    assert.equal(got.status, want.status, `status (${got.error})`);
    if (want.error) assert.ok((got.error ?? '').includes(want.error), `error ${JSON.stringify(got.error)} lacks ${JSON.stringify(want.error)}`);
    return;
  }
  assert.equal(got.forwarded, want.forwarded, 'forwarded');
  if (c.clean) {
    const clean = through(`${c.name}-clean`, c.clean, nowMs);
    assert.ok(clean.out, 'the clean request was answered at the edge');
    assert.deepEqual(controlled(got.out), controlled(clean.out), 'the upstream request differs from the clean one');
  }
  const credentials = ['cookie', 'authorization'].filter((n) => got.out.headers[n]);
  if (c.cache && !credentials.length) {
    // The credentials never reached the upstream (a bucket gets neither
    // Cookie nor Authorization), so its answer cannot be personal and
    // CloudFront may keep it: what matters is that they stayed behind.
    assert.ok(want.upstream.startsWith('bucket:'), 'credentials dropped on the way to a web origin');
  } else if (c.cache) {
    // origin-response: the bucket answers without cache headers; the
    // route's default_ttl must not become freshness for CloudFront's cache.
    const response = { status: '200', statusDescription: 'OK', headers: { 'content-type': h('Content-Type', 'text/plain') } };
    const event = record('origin-response', c.name, got.out);
    event.Records[0].cf.response = response;
    const resp = run('origin-response', event, nowMs);
    const cc = resp.headers?.['cache-control']?.[0]?.value ?? '';
    assert.ok(!/max-age=[1-9]/.test(cc), `origin-response gives CloudFront freshness: ${cc}`);
  }
}

test('the hostile table', () => {
  const names = new Set();
  const failures = [];
  const nowMs = Date.now();
  for (const c of table.cases) {
    assert.ok(!names.has(c.name), `duplicate case ${c.name}`);
    names.add(c.name);
    try {
      check(c, nowMs);
    } catch (e) {
      failures.push(`${c.name}: ${e.message.split('\n').slice(0, 6).join(' ')}`);
    }
  }
  assert.ok(table.cases.length >= 60, `${table.cases.length} cases`);
  console.log(`hostile: ${table.cases.length} cases, ${table.cases.length - failures.length} held (Lambda@Edge)`);
  assert.deepEqual(failures, []);
});
