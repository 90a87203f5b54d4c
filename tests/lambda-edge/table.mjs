// What the Lambda@Edge tables (shared-decisions.test.mjs, hostile.test.mjs)
// share: the packaged build, the bundled offload.toml's values, tokens and
// signatures computed independently of the Wasm, and CloudFront event
// records.

import assert from 'node:assert/strict';
import { createHmac, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { touchedRestricted } from './restricted.mjs';
import { ROLE, importLambda, startAws } from './aws.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../..');
export const lambda = await importLambda();
const require = createRequire(join(root, 'package.json'));
// The package reads its secrets from Secrets Manager / SSM (moto here).
const aws = await startAws();
after(() => aws.stop());
lambda.setOptions({ endpoint: aws.endpoint });
await lambda.loadSecrets();
const BINDINGS = aws.secrets.bindings;

// ----- what the bundled offload.toml says (only the fields used here) -----

/** `[section]` → { key: raw value } for the top-level tables of a TOML file (comments dropped). */
export function tomlSections(text) {
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
export const toml = tomlSections(readFileSync(join(root, 'offload.toml'), 'utf8'));
export const unquote = (v) => JSON.parse(v);
export const hostPort = (url) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
};
/** host:port of each upstream, as the table names them. */
export const UPSTREAMS = {};
for (const [name, sec] of Object.entries(toml)) {
  const region = name.match(/^regions\.(.+)$/);
  if (region) UPSTREAMS[hostPort(sec.origins.match(/url\s*=\s*"([^"]+)"/)[1])] = region[1];
  const bucket = name.match(/^buckets\.(.+)$/);
  if (bucket) UPSTREAMS[hostPort(unquote(sec.endpoint))] ??= `bucket:${bucket[1]}`;
}
const links = toml.links;
export const LINK_KEY_ID = unquote(links.current);
// Secrets are references ({ binding = "NAME", ... }); the local values are
// the bindings' (.dev.vars), which are what moto was seeded with.
const bindingOf = (ref) => ref.match(/binding\s*=\s*"([^"]+)"/)[1];
export const LINK_SECRET = BINDINGS[bindingOf(links.keys.match(new RegExp(`id\\s*=\\s*"${LINK_KEY_ID}"\\s*,\\s*secret\\s*=\\s*(\\{[^}]*\\})`))[1])];
const AUTH = toml['routing.origin_auth'];
export const ORIGIN_AUTH = { kid: unquote(AUTH.key_id), secret: BINDINGS[bindingOf(AUTH.secret)], header: AUTH.header ? unquote(AUTH.header) : 'x-offload-auth' };
export const WWW = toml['buckets.www'];
// Lambda@Edge signs bucket requests with its role.
export const BUCKET_CREDS = ROLE;
export const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

// ----- tokens and signatures, computed independently of the Wasm -----

export const b64url = (b) => Buffer.from(b).toString('base64url');

/** A signed-link token as offload-core issues it (sign/link.rs). */
export function linkToken(scope, expiresAt) {
  // Version 2, audience `link`, GET and HEAD; the table's scopes need no escapes.
  assert.ok(!/[%|\s]/.test(scope), scope);
  const payload = `v2|link|${LINK_KEY_ID}|${expiresAt}||GET,HEAD|${scope}`;
  const mac = createHmac('sha256', LINK_SECRET).update(`offload-link-v2\n${payload}`).digest();
  return `${b64url(payload)}.${b64url(mac)}`;
}

/** The table's `{{link:SCOPE}}`, `{{link-expired:SCOPE}}`, `{{link-tampered:SCOPE}}` placeholders filled in. */
export function fillTarget(target, nowS) {
  return target.replace(/\{\{(link|link-expired|link-tampered):([^}]*)\}\}/g, (_, kind, scope) => {
    const token = linkToken(scope, kind === 'link-expired' ? nowS - 60 : nowS + 300);
    if (kind !== 'link-tampered') return token;
    // Change the MAC's first character (all of its bits count).
    const at = token.indexOf('.') + 1;
    return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
  });
}

/** The origin-auth header as offload-core signs it (route/auth.rs). */
export function originAuth(method, pathAndQuery, host, ts) {
  const sig = createHmac('sha256', ORIGIN_AUTH.secret).update(`${ts}\n${method}\n${pathAndQuery}\n${host.toLowerCase()}`).digest();
  return `v1,ts=${ts},kid=${ORIGIN_AUTH.kid},sig=${b64url(sig)}`;
}

/** SigV4 header auth of a bucket GET, by the AWS SDK's own signer. */
export async function sdkBucketAuthorization(method, host, port, path, nowMs) {
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

export const DIST = 'd111111abcdef8.cloudfront.net';
export const h = (key, value) => [{ key, value }];
export const canonical = (n) => n.replace(/(^|-)([a-z])/g, (_, d, c) => d + c.toUpperCase());

export function record(eventType, name, request) {
  return { Records: [{ cf: { config: { distributionDomainName: DIST, distributionId: 'EDFDVBD6EXAMPLE', eventType, requestId: `shared-${name}` }, request } }] };
}

/** Run a trigger; the output must leave every header CloudFront restricts alone. */
export function run(trigger, event, nowMs) {
  const out = lambda.invoke(trigger, structuredClone(event), nowMs, 7);
  const generated = out && typeof out.status === 'string';
  const before = generated ? {} : event.Records[0].cf.request.headers;
  assert.deepEqual(touchedRestricted(trigger, before, out.headers), [], `${trigger} touched restricted headers`);
  return out;
}

