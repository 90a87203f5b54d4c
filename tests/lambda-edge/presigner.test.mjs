// The Lambda@Edge package's `S3Presigner` (a presigner kept per bucket,
// positional arguments to the Wasm) against its JSON `presign`, byte for
// byte, on the sign-compat generator's random cases plus the options
// those cases never use (PUT's signed content type and length, the S3
// docs layout); the same presigners over URLs on several days (the day
// signing key each keeps); and its errors (thrown, never quoting the
// secret).
//
//   node --test tests/lambda-edge/presigner.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importLambda } from './aws.mjs';
import { makeCase, offloadSigners, rng } from '../sign-compat/cases.mjs';

const lambda = await importLambda();
const { S3Presigner, presign } = lambda;

test('S3Presigner gives the JSON presign URL for 3000 random cases', () => {
  const r = rng(11);
  const signer = offloadSigners(S3Presigner);
  for (let i = 0; i < 3000; i++) {
    const o = makeCase(r).ours;
    if (o.method === 'PUT' && r.chance(0.5)) {
      o.contentType = r.pick(['image/png', 'text/plain; charset=utf-8']);
      o.contentLength = r.int(0, 5_000_000_000);
    }
    if (r.chance(0.2)) o.format = 'docs';
    const json = presign(o);
    assert.ok(json.url, `case ${i}: ${json.error}`);
    assert.equal(signer(o).presign(o.key, o), json.url, `case ${i}`);
  }
});

// A presigner keeps the day signing key it derived last (one entry: UTC
// date, region, s3). The same presigners, kept for the whole run, sign
// runs of URLs on three neighbouring days in a random order (day 1, 2, 1,
// 0, ..., with the days' first and last seconds), and every URL must be the
// one the JSON export and a presigner made for that URL alone give. A kept
// key of the wrong day would sign with the wrong key and fail here.
test('S3Presigner keeps its day key correctly across days going back and forth', () => {
  const r = rng(12);
  const signer = offloadSigners(S3Presigner);
  // Four buckets (endpoint, bucket, region, style, credentials): each
  // presigner signs ~375 URLs.
  const ID = ['endpoint', 'bucket', 'region', 'style', 'accessKeyId', 'secretAccessKey', 'sessionToken'];
  const buckets = Array.from({ length: 4 }, () => makeCase(r).ours);
  const DAY = 86_400;
  const day0 = 1_700_006_400; // 2023-11-15T00:00:00Z
  let changes = 0;
  let lastDay;
  for (let i = 0; i < 1500; i++) {
    // Runs of 1..20 URLs on one day, as a live presigner signs them.
    const day = i === 0 || r.chance(0.15) ? r.int(0, 2) : lastDay;
    if (lastDay !== undefined && day !== lastDay) changes++;
    lastDay = day;
    const o = makeCase(r).ours;
    const b = r.pick(buckets);
    for (const f of ID) {
      if (b[f] === undefined) delete o[f];
      else o[f] = b[f];
    }
    o.now = day0 + day * DAY + r.pick([0, 1, DAY - 1, r.int(0, DAY - 1)]);
    if (r.chance(0.2)) o.format = 'docs';
    const json = presign(o);
    assert.ok(json.url, `case ${i}: ${json.error}`);
    assert.equal(signer(o).presign(o.key, o), json.url, `case ${i} (day ${day})`);
    const fresh = new S3Presigner(o);
    assert.equal(fresh.presign(o.key, o), json.url, `case ${i}: a new presigner`);
    fresh.free();
  }
  assert.ok(changes > 100, `${changes} day changes`);
  assert.equal(new Set(buckets.map((b) => signer.id(b))).size, 4);
});

test('S3Presigner defaults: GET, 900 s, the clock', () => {
  const o = { endpoint: 'https://s3.eu-west-1.amazonaws.com', bucket: 'b-1', region: 'eu-west-1', accessKeyId: 'AKID', secretAccessKey: 'sekrit/key+' };
  const s = new S3Presigner(o);
  const before = Math.floor(Date.now() / 1000);
  const url = s.presign('a/b.txt');
  const after = Math.floor(Date.now() / 1000);
  const now = [before, after].find((t) => presign({ ...o, key: 'a/b.txt', method: 'GET', expires: 900, now: t }).url === url);
  assert.ok(now !== undefined, url);
  assert.match(url, /^https:\/\/b-1\.s3\.eu-west-1\.amazonaws\.com\/a\/b\.txt\?.*X-Amz-Expires=900&/);
  s.free();
});

test('S3Presigner refuses bad input with an Error that never quotes the secret', () => {
  const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzEXAMPLEKEY';
  const o = { endpoint: 'https://s3.amazonaws.com', bucket: 'bucket', region: 'us-east-1', accessKeyId: 'AKID', secretAccessKey: secret };
  const bad = (f, pattern) => {
    assert.throws(f, (e) => e instanceof Error && pattern.test(e.message) && !e.message.includes(secret));
  };
  bad(() => new S3Presigner({ ...o, bucket: 'Not_DNS' }), /virtual-hosted style/);
  bad(() => new S3Presigner({ ...o, endpoint: 'ftp://x' }), /endpoint/);
  bad(() => new S3Presigner({ ...o, style: 'sideways' }), /style must be virtual or path/);
  const s = new S3Presigner(o);
  bad(() => s.presign('k', { method: 'DELETE' }), /method must be GET, HEAD or PUT/);
  bad(() => s.presign('k', { format: 'xml' }), /format must be js or docs/);
  bad(() => s.presign('k', { expires: 0 }), /expires_in 0 s is out of range/);
  bad(() => s.presign('k', { expires: 1.5 }), /expires must be a whole number/);
  bad(() => s.presign('k', { expires: NaN }), /expires must be a whole number/);
  bad(() => s.presign('k', { now: -1 }), /now must be a whole number/);
  bad(() => s.presign('', {}), /key: must not be empty/);
  bad(() => s.presign('k', { method: 'GET', contentLength: 5 }), /content_length cannot be used with GET/);
  bad(() => s.presign('k', { method: 'PUT', contentLength: -5 }), /contentLength must be a whole number/);
  bad(() => s.presign('k', { method: 'PUT', response: { contentType: 'x' } }), /response overrides cannot be used with PUT/);
  bad(() => s.presign('k', { response: { cacheControl: 'a\nb' } }), /control character/);
  // Still usable after refusals.
  assert.match(s.presign('k', { now: 1_700_000_000 }), /X-Amz-Date=20231114T221320Z/);
});
