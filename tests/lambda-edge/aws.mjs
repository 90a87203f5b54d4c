// A local AWS for the Lambda@Edge secrets: moto (PyPI `moto[server]`,
// pinned in tests/lambda-edge/requirements.txt, installed into
// .offload/venv by `cargo xtask setup`) on 127.0.0.1, behind a small proxy
// that checks every request's SigV4 signature with the AWS SDK's own
// signer (@smithy/signature-v4) before passing it on (moto accepts any
// signature; it only reads the credential scope to pick the service).
//
//   const aws = await startAws({ seed: true });   // seeded from $OFFLOAD_TEST_AWS_SECRETS
//   ... aws.endpoint, aws.requests, aws.secrets ...
//   await aws.stop();

import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const require = createRequire(join(root, 'package.json'));

/** The role credentials the tests give the function (any values do). */
export const ROLE = { accessKeyId: 'AKIDOFFLOADTESTROLE', secretAccessKey: 'offload-test-role-secret-key' };
export const REGION = 'us-east-1';

/** The local secret values, by Secrets Manager / SSM name and by binding:
 * handed over in the environment by `cargo xtask test` / `package check`
 * (never written to a file, so no build output holds them). */
export function localSecrets() {
  const doc = process.env.OFFLOAD_TEST_AWS_SECRETS;
  if (!doc) throw new Error('OFFLOAD_TEST_AWS_SECRETS is not set: run the tests with `cargo xtask package check` (or xtask test)');
  return JSON.parse(doc);
}

/** Where the packaged function is (`cargo xtask package lambda-edge`). */
export const PKG = process.env.OFFLOAD_LAMBDA_PKG ?? join(root, '.offload/lambda-edge/pkg');

/** The packaged function, imported with the role's environment set. */
export async function importLambda() {
  if (!existsSync(join(PKG, 'index.mjs'))) throw new Error(`${PKG}/index.mjs missing: run \`cargo xtask package lambda-edge\``);
  useRoleEnv();
  return import(join(PKG, 'index.mjs'));
}

/** Set the role's credentials as the Lambda runtime does (before importing the package). */
export function useRoleEnv() {
  process.env.AWS_ACCESS_KEY_ID = ROLE.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = ROLE.secretAccessKey;
  delete process.env.AWS_SESSION_TOKEN;
  process.env.AWS_REGION = REGION;
}

/** A loopback port nothing listens on (for "wrong endpoint" tests too). */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

class Sha256 {
  constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(data) { this.h.update(data); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

/** Whether `req` (with `body`) carries a valid SigV4 signature by ROLE. */
async function verifySigV4(req, body, port) {
  const auth = req.headers.authorization ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return `malformed Authorization: ${auth.slice(0, 40)}`;
  const [, akid, , region, service, signedHeaders, signature] = m;
  if (akid !== ROLE.accessKeyId) return `unexpected access key id ${akid}`;
  const { SignatureV4 } = require('@smithy/signature-v4');
  const signer = new SignatureV4({ service, region, credentials: ROLE, sha256: Sha256, applyChecksum: false });
  const headers = {};
  for (const h of signedHeaders.split(';')) headers[h] = req.headers[h];
  const amzDate = req.headers['x-amz-date'];
  const date = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const signed = await signer.sign(
    { method: req.method, protocol: 'http:', hostname: '127.0.0.1', port, path: req.url, query: {}, headers, body },
    { signingDate: date },
  );
  const want = /Signature=([0-9a-f]{64})/.exec(signed.headers.authorization)?.[1];
  return want === signature ? null : 'signature mismatch';
}

async function call(endpoint, service, target, body) {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': target,
      // moto picks the service from the credential scope.
      authorization: `AWS4-HMAC-SHA256 Credential=${ROLE.accessKeyId}/20240101/${REGION}/${service}/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`,
    },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`seeding ${target}: HTTP ${res.status}`);
}

/**
 * Start moto and the verifying proxy. `seed`: put the local secrets
 * (localSecrets()) into Secrets Manager and SSM.
 */
export async function startAws({ seed = true } = {}) {
  const motoBin = join(root, '.offload/venv/bin/moto_server');
  if (!existsSync(motoBin)) throw new Error(`${motoBin} missing: run \`cargo xtask setup\``);
  const motoPort = await freePort();
  const moto = spawn(motoBin, ['-H', '127.0.0.1', '-p', String(motoPort)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let motoErr = '';
  moto.stderr.on('data', (d) => { motoErr = (motoErr + d).slice(-2000); });
  const motoUrl = `http://127.0.0.1:${motoPort}/`;
  for (let i = 0; ; i++) {
    try { await fetch(motoUrl); break; } catch {
      if (i > 150 || moto.exitCode !== null) { moto.kill(); throw new Error(`moto did not start: ${motoErr}`); }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const requests = [];
  const proxyPort = await freePort();
  const proxy = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const problem = await verifySigV4(req, body, proxyPort).catch((e) => `verifier: ${e.message}`);
      requests.push({ target: req.headers['x-amz-target'], body, sigv4: problem ?? 'ok' });
      if (problem) {
        res.writeHead(403, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'InvalidSignatureException', message: problem }));
        return;
      }
      const up = await fetch(motoUrl, { method: 'POST', headers: req.headers, body });
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
      res.end(await up.text());
    });
  });
  await new Promise((ok) => proxy.listen(proxyPort, '127.0.0.1', ok));
  const secrets = localSecrets();
  if (seed) {
    for (const [name, value] of Object.entries(secrets.secretsManager)) {
      const SecretString = typeof value === 'string' ? value : JSON.stringify(value);
      await call(motoUrl, 'secretsmanager', 'secretsmanager.CreateSecret', { Name: name, SecretString });
    }
    for (const [name, value] of Object.entries(secrets.ssm)) {
      await call(motoUrl, 'ssm', 'AmazonSSM.PutParameter', { Name: name, Value: value, Type: 'SecureString' });
    }
  }
  return {
    endpoint: `http://127.0.0.1:${proxyPort}`,
    motoEndpoint: `http://127.0.0.1:${motoPort}`,
    requests,
    secrets,
    async stop() {
      await new Promise((ok) => proxy.close(ok));
      moto.kill('SIGTERM');
      await new Promise((ok) => (moto.exitCode !== null ? ok() : moto.once('exit', ok)));
    },
  };
}
