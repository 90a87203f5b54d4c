// Lambda@Edge handlers (the packaged build: `cargo xtask package
// lambda-edge`) driven with CloudFront events: the AWS SAM CLI sample
// events (fixtures/sam, Apache-2.0, see fixtures/sam/NOTICE) and our own
// per trigger (fixtures/own). Outputs are compared exactly; signatures and
// tokens are recomputed independently (the AWS SDK's SigV4 signer, the AWS
// SDK presigner, node:crypto HMAC). Every output is also checked against
// CloudFront's read-only/disallowed header lists (restricted.mjs).
//
//   node --test tests/lambda-edge/

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { touchedRestricted } from './restricted.mjs';
import { PKG, ROLE, importLambda, startAws } from './aws.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const lambda = await importLambda();
const require = createRequire(join(root, 'package.json'));
// The package reads its secrets from Secrets Manager / SSM (moto here).
const aws = await startAws();
after(() => aws.stop());
lambda.setOptions({ endpoint: aws.endpoint });
await lambda.loadSecrets();

process.removeAllListeners('warning');

// The bundled config is offload.toml; its secrets' local values are the
// .dev.vars bindings (what moto was seeded with); buckets use the role.
const NOW_MS = 1_700_000_000_000; // 2023-11-14T22:13:20Z
const NOW = NOW_MS / 1000;
const B = aws.secrets.bindings;
const LINK_KEY = { id: 'local-1', secret: B.OFFLOAD_LINK_KEY_LOCAL_1 };
const ORIGIN_AUTH = { kid: 'local', secret: B.OFFLOAD_ORIGIN_AUTH_SECRET };
const BUCKET_CREDS = ROLE;
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

const clone = (x) => JSON.parse(JSON.stringify(x));
const h = (key, value) => [{ key, value }];
const b64url = (b) => Buffer.from(b).toString('base64url');

/** Run a trigger; assert the output leaves every restricted header alone. */
function run(trigger, event, rand = 7) {
  const input = clone(event);
  const out = lambda.invoke(trigger, event, NOW_MS, rand);
  assert.deepEqual(event, input, 'the handler must not mutate its input');
  const cf = input.Records[0].cf;
  const generated = out && typeof out.status === 'string' && trigger !== 'origin-response';
  const before = generated ? {} : trigger === 'origin-response' ? cf.response?.headers : cf.request.headers;
  assert.deepEqual(touchedRestricted(trigger, before, out.headers), [], `${trigger} touched restricted headers`);
  if (generated) {
    const size = (out.body ?? '').length + JSON.stringify(out.headers ?? {}).length;
    assert.ok(size <= (trigger === 'viewer-request' ? 40 * 1024 : 1024 * 1024), 'generated response over quota');
  }
  return out;
}

/** The SAM template events, rendered with the defaults of event-mapping (as `sam local generate-event` does). */
function samEvents() {
  const dir = join(here, 'fixtures/sam');
  const mapping = JSON.parse(readFileSync(join(dir, 'event-mapping.cloudfront.json'), 'utf8'));
  return Object.values(mapping).map(({ filename, tags }) => {
    let text = readFileSync(join(dir, `${filename}.json`), 'utf8');
    for (const [tag, { default: value }] of Object.entries(tags)) text = text.replaceAll(`{{{${tag}}}}`, value);
    assert.ok(!text.includes('{{{'), `${filename}: unrendered placeholder`);
    return { name: filename, event: JSON.parse(text) };
  });
}

const own = (name) => JSON.parse(readFileSync(join(here, 'fixtures/own', `${name}.json`), 'utf8'));

/** A token field escaped as offload-core does (sign/link.rs): `%`, `|`,
 * space, control and non-ASCII bytes as %XX. */
function esc(s) {
  return [...Buffer.from(s, 'utf8')].map((b) => (b === 0x25 || b === 0x7c || b <= 0x20 || b >= 0x7f
    ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b))).join('');
}

/** A version 2 token of `audience`, MAC'd under its own prefix. */
function sealToken(audience, payload) {
  const mac = createHmac('sha256', LINK_KEY.secret).update(`offload-${audience}-v2\n${payload}`).digest();
  return `${b64url(payload)}.${b64url(mac)}`;
}

/** A download link as offload-core issues it (sign/link.rs). */
function linkToken(scope, expiresAt, ip = '', methods = 'GET,HEAD') {
  return sealToken('link', `v2|link|${LINK_KEY.id}|${expiresAt}|${ip}|${methods}|${esc(scope)}`);
}

/** A presign grant as offload-core issues it (sign/link.rs). */
function grantToken({ bucket = 'uploads', prefix = 'user-42/', methods = 'GET,HEAD,PUT', maxLength = '1000', types = 'image/*', maxExpires = 300, expiresAt = NOW + 60 } = {}) {
  return sealToken('presign', `v2|presign|${LINK_KEY.id}|${expiresAt}||${methods}|${esc(bucket)}|prefix|${esc(prefix)}|${maxLength}|${types}|${maxExpires}`);
}

/** The origin-auth header as offload-core signs it (route/auth.rs). */
function originAuth(method, pathAndQuery, host, ts = NOW) {
  const sig = createHmac('sha256', ORIGIN_AUTH.secret).update(`${ts}\n${method}\n${pathAndQuery}\n${host.toLowerCase()}`).digest();
  return `v1,ts=${ts},kid=${ORIGIN_AUTH.kid},sig=${b64url(sig)}`;
}

/** SigV4 header auth of a bucket GET, by the AWS SDK's own signer. */
async function sdkSignedBucketHeaders(path) {
  const { SignatureV4 } = require('@smithy/signature-v4');
  // The Sha256 constructor the SDK's signer takes, over node:crypto.
  class Sha256 {
    constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
    update(data) { this.h.update(data); }
    async digest() { return new Uint8Array(this.h.digest()); }
  }
  const signer = new SignatureV4({
    service: 's3', region: 'us-east-1', credentials: BUCKET_CREDS,
    sha256: Sha256, uriEscapePath: false, applyChecksum: false,
  });
  const signed = await signer.sign(
    { method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: 18703, path, query: {},
      headers: { host: '127.0.0.1:18703', 'x-amz-content-sha256': EMPTY_SHA256 } },
    { signingDate: new Date(NOW_MS) },
  );
  return signed.headers;
}

test('the SAM sample events render and are CloudFront events', () => {
  const events = samEvents();
  assert.equal(events.length, 12);
  for (const { name, event } of events) assert.ok(event.Records[0].cf, name);
});

test('viewer-request: SAM events pass through, the query normalized by the route\'s cache-key rules', () => {
  for (const { name, event } of samEvents()) {
    const cf = event.Records[0].cf;
    if (!cf.request || cf.response) continue;
    const out = run('viewer-request', event);
    // Route `/*` (bucket www, cached): nothing to drop in these queries.
    assert.deepEqual(out, cf.request, name);
  }
  const e = samEvents().find((x) => x.name === 'CloudFrontNormalizeQuerystringToImproveCacheHit').event;
  e.Records[0].cf.request.querystring = 'size=LARGE&utm_source=mail&color=RED&fbclid=abc';
  const out = run('viewer-request', e);
  assert.deepEqual(out, { ...e.Records[0].cf.request, querystring: 'size=LARGE&color=RED' });
});

test('origin-request: SAM events become SigV4-signed requests to the www bucket', async () => {
  for (const { name, event } of samEvents()) {
    const cf = event.Records[0].cf;
    if (!cf.request || cf.response) continue;
    // The object key as S3 wants it in the path (reserved characters escaped).
    const path = '/www' + cf.request.uri.replace(/[^A-Za-z0-9\-._~/%]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
    const sdk = await sdkSignedBucketHeaders(path);
    const out = run('origin-request', event);
    assert.deepEqual(out, {
      ...cf.request,
      uri: path,
      querystring: '',
      headers: {
        host: h('Host', '127.0.0.1:18703'),
        'x-amz-date': h('X-Amz-Date', '20231114T221320Z'),
        'x-amz-content-sha256': h('X-Amz-Content-Sha256', EMPTY_SHA256),
        authorization: h('Authorization', sdk.authorization),
        'x-offload-route': h('X-Offload-Route', '4'),
      },
      origin: { custom: { customHeaders: {}, domainName: '127.0.0.1', keepaliveTimeout: 5, path: '', port: 18703, protocol: 'http', readTimeout: 30, sslProtocols: ['TLSv1.2'] } },
    }, name);
  }
});

test('origin-response: SAM events get the route\'s cache policy; disallowed headers stay as they were', () => {
  const withRequest = samEvents().find((x) => x.name === 'CloudFrontAccessRequestInResponse').event;
  const out = run('origin-response', withRequest);
  const resp = withRequest.Records[0].cf.response;
  // `/*`: default_ttl = 60 for a response without freshness information.
  assert.deepEqual(out, { ...resp, headers: { ...resp.headers, 'cache-control': h('Cache-Control', 's-maxage=60') } });
  // No request in the event (a viewer-response sample): passed through.
  const noRequest = samEvents().find((x) => x.name === 'CloudFrontModifyResponseHeader').event;
  assert.deepEqual(run('origin-response', noRequest), noRequest.Records[0].cf.response);
});

test('origin-request: a German viewer goes to eu-west-1, with origin auth, only allowlisted headers', () => {
  const event = own('origin-request-api');
  const req = event.Records[0].cf.request;
  const out = run('origin-request', event);
  assert.deepEqual(out, {
    ...req,
    // `/api/*` is cached: the query its key sees (utm_* dropped).
    querystring: 'id=7',
    origin: { custom: { ...req.origin.custom, domainName: '127.0.0.1', port: 18702, protocol: 'http', path: '' } },
    // GET on a cached route: the viewer headers the cache accounts for,
    // nothing unkeyed (User-Agent and the CloudFront-Viewer-* geo headers
    // stay at the edge unless the route forwards and keys them).
    headers: {
      via: req.headers.via,
      host: h('Host', '127.0.0.1:18702'),
      'accept-encoding': req.headers['accept-encoding'],
      'cache-control': req.headers['cache-control'],
      // The viewer's host: the host header is the origin's, so the distribution's.
      'x-forwarded-host': h('X-Forwarded-Host', 'd111111abcdef8.cloudfront.net'),
      'x-offload-auth': h('X-Offload-Auth', originAuth('GET', '/api/time?id=7', '127.0.0.1:18702')),
      'x-offload-route': h('X-Offload-Route', '0'),
    },
  });
});

test('origin-request: a US viewer goes to us-east-1; /eu/* strips its prefix and pins eu-west-1', () => {
  const us = own('origin-request-api');
  const hs = us.Records[0].cf.request.headers;
  hs['cloudfront-viewer-country'] = h('CloudFront-Viewer-Country', 'US');
  hs['cloudfront-viewer-latitude'] = h('CloudFront-Viewer-Latitude', '40.71');
  hs['cloudfront-viewer-longitude'] = h('CloudFront-Viewer-Longitude', '-74.01');
  const out = run('origin-request', us);
  assert.equal(out.origin.custom.port, 18701);
  assert.deepEqual(out.headers.host, h('Host', '127.0.0.1:18701'));
  assert.deepEqual(out.headers['x-offload-auth'], h('X-Offload-Auth', originAuth('GET', '/api/time?id=7', '127.0.0.1:18701')));

  const eu = own('origin-request-api');
  eu.Records[0].cf.request.uri = '/eu/api/time';
  eu.Records[0].cf.request.headers['cloudfront-viewer-country'] = h('CloudFront-Viewer-Country', 'US');
  const outEu = run('origin-request', eu);
  assert.equal(outEu.uri, '/api/time');
  // Not cached: the query goes as it came.
  assert.equal(outEu.querystring, 'id=7&utm_source=news');
  assert.equal(outEu.origin.custom.port, 18702);
  assert.deepEqual(outEu.headers['x-offload-route'], h('X-Offload-Route', '1'));
});

test('viewer-request: signed-link routes need a valid token, which origin-request checks again and strips', () => {
  const noToken = own('viewer-request-private');
  const refused = run('viewer-request', noToken);
  assert.deepEqual(refused, {
    status: '403',
    statusDescription: 'Forbidden',
    headers: { 'content-type': h('Content-Type', 'application/json'), 'cache-control': h('Cache-Control', 'no-store') },
    body: JSON.stringify({ error: 'this path needs a signed link', field: 'token', status: 403 }),
    bodyEncoding: 'text',
  });

  const token = linkToken('/private/report.txt', NOW + 60);
  const ok = own('viewer-request-private');
  ok.Records[0].cf.request.querystring = `a=1&token=${token}&utm_source=x`;
  const passed = run('viewer-request', ok);
  // Not a cached route: the query is not normalized; the token moves last.
  assert.deepEqual(passed, { ...ok.Records[0].cf.request, querystring: `a=1&utm_source=x&token=${token}` });

  const origin = clone(ok);
  origin.Records[0].cf.request = { ...passed, origin: { s3: { authMethod: 'origin-access-identity', customHeaders: {}, domainName: 'www.s3.amazonaws.com', path: '', region: 'us-east-1' } } };
  const fwd = run('origin-request', origin);
  assert.equal(fwd.uri, '/www/private/report.txt');
  assert.equal(fwd.querystring, '');
  // The local bucket is plain HTTP on a port: a custom origin.
  assert.deepEqual(fwd.origin, { custom: { customHeaders: {}, domainName: '127.0.0.1', keepaliveTimeout: 5, path: '', port: 18703, protocol: 'http', readTimeout: 30, sslProtocols: ['TLSv1.2'] } });

  const expired = own('viewer-request-private');
  expired.Records[0].cf.request.querystring = `token=${linkToken('/private/report.txt', NOW)}`;
  assert.equal(JSON.parse(run('viewer-request', expired).body).error, 'signed link refused: token: expired at 1700000000');
  const grant = own('viewer-request-private');
  grant.Records[0].cf.request.querystring = `token=${grantToken({ prefix: '' })}`;
  assert.equal(JSON.parse(run('viewer-request', grant).body).error, 'signed link refused: token: wrong audience: this is a presign token, link expected');
  const post = own('viewer-request-private');
  post.Records[0].cf.request.method = 'POST';
  post.Records[0].cf.request.querystring = `token=${token}`;
  assert.equal(JSON.parse(run('viewer-request', post).body).error, 'signed link refused: token: method POST is not allowed (allowed: GET,HEAD)');
  const tampered = own('viewer-request-private');
  tampered.Records[0].cf.request.querystring = `token=${linkToken('/private/', NOW + 60).slice(0, -2)}xx`;
  assert.equal(run('viewer-request', tampered).status, '403');
});

test('viewer-request: the presign endpoint answers with a URL the AWS SDK would make', async () => {
  const event = own('viewer-request-presign');
  const req = event.Records[0].cf.request;
  req.headers.authorization = h('Authorization', `Bearer ${grantToken()}`);
  const body = JSON.stringify({ bucket: 'uploads', key: 'user-42/photo 1.jpg', method: 'PUT', expires: 300, content_length: 1000, content_type: 'image/jpeg' });
  req.body.data = Buffer.from(body).toString('base64');
  const out = run('viewer-request', event);
  assert.equal(out.status, '200', out.body);
  assert.deepEqual(out.headers, { 'content-type': h('Content-Type', 'application/json'), 'cache-control': h('Cache-Control', 'no-store') });

  // The SDK signs Content-Length and Content-Type as headers when told to:
  // the bucket then refuses an upload of another size or type.
  const { S3Client, PutObjectCommand } = require('@aws-sdk/client-s3');
  const { getSignedUrl } = require('@aws-sdk/s3-request-presigner');
  const client = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:18703', forcePathStyle: true, credentials: BUCKET_CREDS, requestChecksumCalculation: 'WHEN_REQUIRED' });
  const url = await getSignedUrl(client, new PutObjectCommand({ Bucket: 'uploads', Key: 'user-42/photo 1.jpg', ContentLength: 1000, ContentType: 'image/jpeg' }),
    { expiresIn: 300, signingDate: new Date(NOW_MS), signableHeaders: new Set(['content-length', 'content-type']) });
  assert.match(url, /X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost/);
  assert.deepEqual(JSON.parse(out.body), { url, method: 'PUT', expires_at: NOW + 300, headers: { 'content-length': '1000', 'content-type': 'image/jpeg' } });

  const refusals = [
    [grantToken({ prefix: 'user-43/' }), body, 'key'],
    [grantToken({ maxLength: '999' }), body, 'content_length'],
    [grantToken({ types: 'text/plain' }), body, 'content_type'],
    [grantToken({ methods: 'GET,HEAD', maxLength: '', types: '' }), body, 'method'],
    [grantToken({ maxExpires: 299 }), body, 'expires'],
    [linkToken('/_presign/uploads/user-42/', NOW + 60), body, 'authorization'],
  ];
  for (const [grant, b, field] of refusals) {
    const refused = own('viewer-request-presign');
    refused.Records[0].cf.request.headers.authorization = h('Authorization', `Bearer ${grant}`);
    refused.Records[0].cf.request.body.data = Buffer.from(b).toString('base64');
    const r = run('viewer-request', refused);
    assert.equal(r.status, '403', `${field}: ${r.body}`);
    assert.equal(JSON.parse(r.body).field, field, r.body);
  }

  const truncated = own('viewer-request-presign');
  truncated.Records[0].cf.request.body.inputTruncated = true;
  truncated.Records[0].cf.request.headers.authorization = req.headers.authorization;
  assert.equal(run('viewer-request', truncated).status, '413');
});

test('viewer-request: methods a bucket route refuses are answered at the edge', () => {
  const event = own('viewer-request-private');
  event.Records[0].cf.request.uri = '/index.html';
  event.Records[0].cf.request.method = 'DELETE';
  const out = run('viewer-request', event);
  assert.equal(out.status, '405');
  assert.deepEqual(out.headers.allow, h('Allow', 'GET, HEAD'));
  assert.equal(JSON.parse(out.body).status, 405);
});

test('origin-response: cache rules as Cache-Control; restricted headers untouched', () => {
  const event = own('origin-response-api');
  const resp = event.Records[0].cf.response;
  const out = run('origin-response', event);
  // `/api/*`: stale_if_error = 300; the origin's max-age becomes s-maxage.
  assert.deepEqual(out, { ...resp, headers: { ...resp.headers, 'cache-control': h('Cache-Control', 'public, max-age=5, s-maxage=5, stale-if-error=300') } });

  const cookie = own('origin-response-api');
  cookie.Records[0].cf.response.headers['set-cookie'] = h('Set-Cookie', 'sid=1');
  const outCookie = run('origin-response', cookie);
  assert.deepEqual(outCookie.headers['cache-control'], h('Cache-Control', 'private, max-age=5'));
});

test('origin-response: bucket responses lose x-amz-* fields; a forged route header is not believed', () => {
  const event = own('origin-response-api');
  const cf = event.Records[0].cf;
  cf.request.uri = '/private/report.txt';
  cf.request.headers['x-offload-route'] = h('X-Offload-Route', '4'); // `/*`, cached: not this path's route
  cf.response.headers['x-amz-request-id'] = h('x-amz-request-id', 'EXAMPLE');
  cf.response.headers['x-amz-meta-owner'] = h('x-amz-meta-owner', 'me');
  const out = run('origin-response', event);
  const { 'x-amz-request-id': _a, 'x-amz-meta-owner': _b, ...rest } = cf.response.headers;
  // `/private/*` is not cached: Cache-Control unchanged; X-Amz-Cf-Pop is CloudFront's and stays.
  assert.deepEqual(out, { ...cf.response, headers: rest });
});

test('the Node wrapper: handler dispatches by eventType; garbage in, 502 or pass-through out', async () => {
  const event = own('viewer-request-private');
  const out = await lambda.handler(event);
  assert.equal(out.status, '403');
  assert.equal((await lambda.handler({ Records: [] })).status, '502');
  assert.equal(lambda.invoke('viewer-request', { nope: 1 }, NOW_MS, 1).status, '500');
  const files = readdirSync(PKG).sort();
  assert.deepEqual(files, ['index.mjs', 'offload_lambda_edge.js', 'offload_lambda_edge_bg.wasm']);
});
