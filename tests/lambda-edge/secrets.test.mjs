// Lambda@Edge secrets at cold start: the packaged function reads the
// config's `aws_secret` / `ssm` references from AWS Secrets Manager and SSM
// Parameter Store (moto on 127.0.0.1, see aws.mjs) with the role's
// credentials, signed by Offload's SigV4 signer (checked by the AWS SDK's
// signer in the proxy), caches them for SECRETS_TTL_MS, and stays closed
// (500) when they cannot be read. Errors name the secret, never a value.
//
//   node --test tests/lambda-edge/

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { freePort, importLambda, startAws } from './aws.mjs';

const lambda = await importLambda();

const NOW_MS = Date.now();
const CLOSED = `http://127.0.0.1:${await freePort()}`;
const b64url = (b) => Buffer.from(b).toString('base64url');

function privateEvent(token) {
  return { Records: [{ cf: { config: { eventType: 'viewer-request' }, request: {
    clientIp: '203.0.113.9', method: 'GET', uri: '/private/report.txt', querystring: token ? `token=${token}` : '',
    headers: { host: [{ key: 'Host', value: 'd111111abcdef8.cloudfront.net' }] } } } }] };
}

/** A version 2 download link (sign/link.rs): audience `link`, GET/HEAD. */
function linkToken(secret, scope = '/private/', expiresAt = Math.floor(NOW_MS / 1000) + 60) {
  const payload = `v2|link|local-1|${expiresAt}||GET,HEAD|${scope}`;
  return `${b64url(payload)}.${b64url(createHmac('sha256', secret).update(`offload-link-v2\n${payload}`).digest())}`;
}

const errors = [];
const consoleError = console.error;
console.error = (...a) => { errors.push(a.join(' ')); };
after(() => { console.error = consoleError; });

test('cold, before any secret is read: the edge is closed (500), not open', () => {
  const out = lambda.invoke('viewer-request', privateEvent(null), NOW_MS, 1);
  assert.equal(out.status, '500');
  assert.equal(JSON.parse(out.body).error, 'edge misconfigured');
  const plan = JSON.parse(lambda.bindings.describe());
  assert.deepEqual(plan.secretReads, ['SSM parameter "/offload/origin-auth-secret"', 'Secrets Manager secret "offload/edge"']);
});

test('a wrong endpoint: a clear error naming the request, the edge stays closed', async () => {
  await assert.rejects(
    lambda.loadSecrets({ endpoint: CLOSED }),
    { message: `secrets: AmazonSSM.GetParameter at ${CLOSED}/: ECONNREFUSED` },
  );
  assert.equal(lambda.invoke('viewer-request', privateEvent(null), NOW_MS, 1).status, '500');
});

test('missing secrets: the AWS error names the secret; no value leaks', async () => {
  const empty = await startAws({ seed: false });
  try {
    await assert.rejects(lambda.loadSecrets({ endpoint: empty.endpoint }), {
      message: 'secrets: SSM parameter "/offload/origin-auth-secret": HTTP 400: ParameterNotFound',
    });
    // The requests were well-formed SigV4 by the role (checked by the AWS SDK signer).
    assert.deepEqual(empty.requests.map((r) => [r.target, r.sigv4]), [
      ['AmazonSSM.GetParameter', 'ok'], ['secretsmanager.GetSecretValue', 'ok'],
    ]);
    // Only the SSM parameter seeded: Secrets Manager's answer names the missing secret.
    await fetch(empty.motoEndpoint, { method: 'POST', headers: {
      'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AmazonSSM.PutParameter',
      authorization: `AWS4-HMAC-SHA256 Credential=X/20240101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`,
    }, body: JSON.stringify({ Name: '/offload/origin-auth-secret', Value: 'x'.repeat(32), Type: 'SecureString' }) });
    // (moto answers 404 here where AWS answers 400; the type is what counts.)
    await assert.rejects(lambda.loadSecrets({ endpoint: empty.endpoint }), {
      message: /^secrets: Secrets Manager secret "offload\/edge": HTTP 4\d\d: ResourceNotFoundException$/,
    });
  } finally {
    await empty.stop();
  }
  assert.equal(lambda.invoke('viewer-request', privateEvent(null), NOW_MS, 1).status, '500');
});

test('seeded: read once at cold start, signed links verify with the AWS value, re-read after the TTL', async () => {
  const aws = await startAws();
  try {
    lambda.setOptions({ endpoint: aws.endpoint });
    await lambda.ready(NOW_MS);
    assert.deepEqual(aws.requests.map((r) => [r.target, r.sigv4, JSON.parse(r.body)]), [
      ['AmazonSSM.GetParameter', 'ok', { Name: '/offload/origin-auth-secret', WithDecryption: true }],
      ['secretsmanager.GetSecretValue', 'ok', { SecretId: 'offload/edge' }],
    ]);
    const key = aws.secrets.bindings.OFFLOAD_LINK_KEY_LOCAL_1;
    const ok = lambda.invoke('viewer-request', privateEvent(linkToken(key)), NOW_MS, 1);
    assert.equal(ok.status, undefined, JSON.stringify(ok)); // the request continues
    const wrong = lambda.invoke('viewer-request', privateEvent(linkToken('x'.repeat(48))), NOW_MS, 1);
    assert.equal(wrong.status, '403');
    // Cached: no read within the TTL; one more set of reads after it.
    await lambda.ready(NOW_MS + lambda.SECRETS_TTL_MS - 1);
    assert.equal(aws.requests.length, 2);
    await lambda.ready(NOW_MS + lambda.SECRETS_TTL_MS + 1);
    assert.equal(aws.requests.length, 4);
    // A failed refresh keeps the previous keys (logged, not fatal).
    lambda.setOptions({ endpoint: CLOSED });
    await lambda.ready(NOW_MS + 3 * lambda.SECRETS_TTL_MS);
    assert.equal(errors.at(-1), `offload: secrets: AmazonSSM.GetParameter at ${CLOSED}/: ECONNREFUSED (keeping the previous secrets)`);
    assert.equal(lambda.invoke('viewer-request', privateEvent(linkToken(key)), NOW_MS, 1).status, undefined);
  } finally {
    await aws.stop();
  }
  // No secret value in anything logged.
  const values = Object.values((await import('./aws.mjs')).localSecrets().bindings);
  for (const line of errors) for (const v of values) assert.ok(!line.includes(v), 'a secret value was logged');
});
