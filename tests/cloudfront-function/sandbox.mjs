// The generated CloudFront Function in a sandbox offering only what
// cloudfront-js-2.0 offers (its `crypto` module), with a fixed clock.
// Shared by function.test.mjs and hostile.test.mjs.

import crypto from 'node:crypto';
import vm from 'node:vm';

/** { handler, canon, required }: the function's handler and its `canon()`, and the modules it required. */
export function loadFunction(code, nowMs) {
  const required = [];
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
  };
  const inner = vm.runInNewContext(`${code}\n;({ handler: handler, canon: canon })`, sandbox, { filename: 'offload.js' });
  // Plain objects of this realm, so that deepStrictEqual compares values.
  const handler = (event) => JSON.parse(JSON.stringify(inner.handler(event)));
  const canon = (s, isPath) => JSON.parse(JSON.stringify(inner.canon(s, isPath)));
  return { handler, canon, required };
}

/** The [links] key of offload.toml (the local stack's). */
export const LINK_KEY = { id: 'local-1', secret: 'offload-local-link-key-0123456789abcdef' };

/** A version 2 download link as offload-core issues it (sign/link.rs), made
 * here independently: audience `link`, domain-separated MAC. */
export function token(scope, expiresAt, ip = '', methods = 'GET,HEAD') {
  const escaped = scope.replace(/%/g, '%25').replace(/\|/g, '%7C');
  const payload = `v2|link|${LINK_KEY.id}|${expiresAt}|${ip}|${methods}|${escaped}`;
  const mac = crypto.createHmac('sha256', LINK_KEY.secret).update(`offload-link-v2\n${payload}`).digest('base64url');
  return `${Buffer.from(payload).toString('base64url')}.${mac}`;
}

