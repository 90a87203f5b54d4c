// The generated CloudFront Function in a sandbox offering only what
// cloudfront-js-2.0 offers (its `crypto` module and the `cloudfront`
// module's KeyValueStore, here a stand-in), with a fixed clock.
// Shared by function.test.mjs and hostile.test.mjs.

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
