// The generated CloudFront Function in a sandbox offering only what
// cloudfront-js-2.0 offers (its `crypto` module and the `cloudfront`
// module's KeyValueStore, here a stand-in), with a fixed clock.
// Also the CloudFront viewer-request event made from a shared table's
// request (tests/shared-cases/). Shared by function.test.mjs,
// hostile.test.mjs and shared-decisions.test.mjs.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import vm from 'node:vm';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The one ES import the function has; vm runs scripts, so it becomes a binding to the stand-in. */
export const IMPORT = "import cf from 'cloudfront';";

// The current link key's id, its store key (offload.toml's `kvs`) and a
// random test value, written with tokens.json by the package step (no
// local secret: the stand-in store is the test's).
const keyFile = join(root, '.offload/cloudfront-function/test-key.json');
if (!existsSync(keyFile)) throw new Error(`${keyFile} missing: run \`cargo xtask package cloudfront-function\``);
export const LINK_KEY = JSON.parse(readFileSync(keyFile, 'utf8'));

/**
 * { handler, canon, required, reads }: the function's (async) handler and
 * its `canon()`, the modules it required and the store keys it read.
 * `store` is the KeyValueStore's content (default: the test link key).
 */
export function loadFunction(code, nowMs, store = { [LINK_KEY.kvs]: LINK_KEY.secret }) {
  const required = [];
  const reads = [];
  class FixedDate extends Date {
    static now() { return nowMs; }
  }
  const sandbox = {
    require: (m) => {
      required.push(m);
      if (m === 'crypto') return { createHmac: crypto.createHmac, createHash: crypto.createHash };
      throw new Error(`cloudfront-js-2.0 has no module ${m}`);
    },
    Date: FixedDate,
    // cloudfront-js-2.0's `cloudfront` module: kvs().get() rejects for a
    // key the store lacks.
    __cloudfront: {
      kvs: () => ({
        get: async (k) => {
          reads.push(k);
          if (!Object.prototype.hasOwnProperty.call(store, k)) throw new Error(`key not found: ${k}`);
          return store[k];
        },
      }),
    },
  };
  const script = code.replace(IMPORT, 'var cf = __cloudfront;');
  const inner = vm.runInNewContext(`${script}\n;({ handler: handler, canon: canon })`, sandbox, { filename: 'offload.js' });
  // Plain objects of this realm, so that deepStrictEqual compares values.
  const handler = async (event) => JSON.parse(JSON.stringify(await inner.handler(event)));
  const canon = (s, isPath) => JSON.parse(JSON.stringify(inner.canon(s, isPath)));
  return { handler, canon, required, reads };
}

/** A version 2 download link as offload-core issues it (sign/link.rs), made
 * here independently: audience `link`, domain-separated MAC. */
export function token(scope, expiresAt, ip = '', methods = 'GET,HEAD') {
  const escaped = scope.replace(/%/g, '%25').replace(/\|/g, '%7C');
  const payload = `v2|link|${LINK_KEY.id}|${expiresAt}|${ip}|${methods}|${escaped}`;
  const mac = crypto.createHmac('sha256', LINK_KEY.secret).update(`offload-link-v2\n${payload}`).digest('base64url');
  return `${Buffer.from(payload).toString('base64url')}.${mac}`;
}

/** The host the events carry. */
export const HOST = 'www.example.com';

/** A table's placeholders filled in (see tests/shared-cases/*.json "about"). */
export function expand(s, nowS) {
  return s.replace(/\{\{(link|link-expired|link-tampered):([^}]*)\}\}/g, (_, kind, scope) => {
    const t = token(scope, kind === 'link-expired' ? nowS - 60 : nowS + 300);
    if (kind !== 'link-tampered') return t;
    const at = t.indexOf('.') + 1;
    return t.slice(0, at) + (t[at] === 'A' ? 'B' : 'A') + t.slice(at + 1);
  }).replace(/\{\{(host|HOST|host-dot|run|(.)\*(\d+))\}\}/g, (_, k, c, n) => {
    if (k === 'host') return HOST;
    if (k === 'HOST') return HOST.toUpperCase();
    if (k === 'host-dot') return `${HOST}.`;
    if (k === 'run') return 'cf';
    return c.repeat(Number(n));
  });
}

/**
 * The viewer-request event CloudFront makes from a table request: `uri` as
 * sent, the query split into an object by name (raw names and values; a
 * repeated name gets `multiValue`), one value per header name (headers as
 * [name, value] pairs or an object), CloudFront-Viewer-Country.
 */
export function viewerEvent(req, nowS) {
  let target = expand(req.target, nowS);
  const abs = target.match(/^https?:\/\/([^/]*)(\/.*)$/);
  if (abs) target = abs[2];
  const at = target.indexOf('?');
  const querystring = {};
  for (const pair of at < 0 ? [] : target.slice(at + 1).split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const [n, v] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
    const prev = querystring[n];
    if (!prev) querystring[n] = { value: v };
    else querystring[n] = { value: prev.value, multiValue: [...(prev.multiValue ?? [{ value: prev.value }]), { value: v }] };
  }
  const headers = { host: { value: abs ? abs[1] : HOST } };
  const pairs = Array.isArray(req.headers) ? req.headers : Object.entries(req.headers ?? {});
  for (const [n, v] of pairs) headers[n.toLowerCase()] ??= { value: expand(v, nowS) };
  headers['cloudfront-viewer-country'] = { value: req.viewer?.country ?? 'US' };
  return {
    version: '1.0', context: { eventType: 'viewer-request' }, viewer: { ip: '203.0.113.178' },
    request: { method: req.method, uri: at < 0 ? target : target.slice(0, at), querystring, headers, cookies: {} },
  };
}

/** Percent-decoded, so a path the bucket gets SigV4-encoded compares with the canonical one. */
const decoded = (p) => p.replace(/%([0-9A-F]{2})/gi, (_, x) => String.fromCharCode(parseInt(x, 16)));

/**
 * Whether the function's output URI leads to the table's forwarded path:
 * the upstream path derives from it by the bucket's `/www` prefix and
 * index, or the `/eu` route's stripped prefix (both behind the function).
 */
export function leadsTo(uri, upstream, forwarded) {
  const fwd = decoded(forwarded.split('?')[0]);
  const u = decoded(uri);
  const candidates = upstream.startsWith('bucket:') ? [`/www${u}`, `/www${u}index.html`] : [u, u.replace(/^\/eu(?=\/)/, '')];
  return candidates.includes(fwd);
}

/**
 * The function's answer against a table expectation: for an edge refusal
 * the function gives (status 400 or 403, no upstream) that status and a
 * body whose error contains `want.error`; otherwise the request passed on.
 * Returns whether the function answered.
 */
export function assertAnswer(out, want) {
  const answered = out.statusCode !== undefined;
  if (want.upstream === null && (want.status === 400 || want.status === 403)) {
    assert.ok(answered, `passed on (${out.uri}), want ${want.status}`);
    assert.equal(out.statusCode, want.status, out.body);
    if (want.error) assert.ok(JSON.parse(out.body).error.includes(want.error), `${out.body} lacks ${JSON.stringify(want.error)}`);
    return true;
  }
  assert.ok(!answered, `answered ${out.statusCode} ${out.body}, want it passed on`);
  return false;
}
