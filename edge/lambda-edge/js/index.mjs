// Lambda@Edge entry points for Offload (Node.js 20+ runtime).
//
// Handlers (set the function's handler to one of these):
//   index.viewerRequest   viewer-request trigger
//   index.originRequest   origin-request trigger
//   index.originResponse  origin-response trigger
//   index.handler         any of them, by Records[0].cf.config.eventType
//
// All logic is in the Wasm (offload-lambda-edge, built from the Offload
// core with the config bundled at build time; the config holds secret
// references, never values). This file only loads it, passes the clock
// (Date.now()) and a random number, hands the Lambda role's credentials
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, set by
// the Lambda runtime) to the Wasm, and performs the I/O the Wasm asks for
// at cold start: the signed Secrets Manager / SSM reads of the config's
// secrets (re-read after SECRETS_TTL_MS). Until they are loaded the edge
// answers 500. Neither credentials nor secret values are ever logged.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const wasm = require('./offload_lambda_edge.js');

/** How long secrets read from AWS are used before they are read again. */
export const SECRETS_TTL_MS = 5 * 60 * 1000;

let configured = false;
let loadedAt = -Infinity;
let loading = null;
let options = {};

function roleCredentials() {
  const env = process.env;
  if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) return null;
  return {
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    sessionToken: env.AWS_SESSION_TOKEN ?? null,
  };
}

function configureOnce() {
  if (configured) return;
  configured = true;
  const creds = roleCredentials();
  if (creds) wasm.configure(JSON.stringify(creds));
}

/**
 * Read the config's secrets from AWS (Secrets Manager / SSM) with the
 * role's credentials and hand them to the Wasm. Throws an Error naming the
 * secret (never a value) on failure. `opts.endpoint` replaces the AWS
 * endpoints (tests), `opts.region` the function's region.
 */
export async function loadSecrets(opts = options, nowMs = Date.now()) {
  configureOnce();
  const creds = roleCredentials() ?? {};
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? '';
  const plan = JSON.parse(wasm.secret_requests(JSON.stringify({ ...creds, region, endpoint: opts.endpoint ?? null }), nowMs));
  if (plan.error) throw new Error(plan.error);
  const answers = [];
  for (const r of plan.requests) {
    let res;
    try {
      res = await fetch(r.url, { method: 'POST', headers: r.headers, body: r.body, signal: AbortSignal.timeout(opts.timeoutMs ?? 3000) });
    } catch (e) {
      throw new Error(`secrets: ${r.headers['x-amz-target']} at ${r.url}: ${e?.cause?.code ?? e?.cause?.message ?? e?.message}`);
    }
    answers.push({ status: res.status, body: await res.text() });
  }
  const err = wasm.apply_secrets(JSON.stringify(answers));
  if (err) throw new Error(err);
  loadedAt = nowMs;
}

/** Secrets loaded and fresh (reads them at cold start and after the TTL). */
export async function ready(nowMs = Date.now()) {
  if (nowMs - loadedAt < SECRETS_TTL_MS) return;
  if (!loading) {
    const cold = loadedAt === -Infinity;
    loading = loadSecrets(options, nowMs)
      .catch((e) => {
        // Cold: the edge stays closed (500). Warm: keep the previous keys.
        console.error(`offload: ${e.message}${cold ? '' : ' (keeping the previous secrets)'}`);
        if (!cold) loadedAt = nowMs;
      })
      .finally(() => { loading = null; });
  }
  await loading;
}

/** Options for the secret reads (tests: `{ endpoint, region }`). */
export function setOptions(opts) {
  options = { ...opts };
}

const randomU32 = () => Math.floor(Math.random() * 0x100000000) >>> 0;

const failure = {
  status: '502',
  statusDescription: 'Bad Gateway',
  headers: { 'content-type': [{ key: 'Content-Type', value: 'application/json' }] },
  body: '{"error":"edge function failed","status":502}',
  bodyEncoding: 'text',
};

/**
 * Run one trigger. `nowMs` and `rand` are for tests; Lambda uses the clock
 * and Math.random().
 */
export function invoke(trigger, event, nowMs = Date.now(), rand = randomU32()) {
  configureOnce();
  const json = JSON.stringify(event);
  try {
    switch (trigger) {
      case 'viewer-request':
        return JSON.parse(wasm.viewer_request(json, nowMs, rand));
      case 'origin-request':
        return JSON.parse(wasm.origin_request(json, nowMs, rand));
      case 'origin-response':
        return JSON.parse(wasm.origin_response(json, nowMs));
      default:
        throw new Error(`unsupported trigger ${JSON.stringify(trigger)}`);
    }
  } catch (e) {
    // A trap in the Wasm: log the message (never the event or credentials).
    console.error(`offload ${trigger}: ${e && e.message}`);
    if (trigger === 'origin-response') return event?.Records?.[0]?.cf?.response ?? failure;
    return failure;
  }
}

export const viewerRequest = async (event) => { await ready(); return invoke('viewer-request', event); };
export const originRequest = async (event) => { await ready(); return invoke('origin-request', event); };
export const originResponse = async (event) => { await ready(); return invoke('origin-response', event); };
export const handler = async (event) => { await ready(); return invoke(event?.Records?.[0]?.cf?.config?.eventType, event); };

/**
 * S3 presigned URL from one request object (see
 * edge/core/src/sign/presign_json.rs for the fields): `{url, expiresAt,
 * headers}` or `{error}`. Every call checks the endpoint and bucket and
 * derives the day's signing key again; `S3Presigner` is the fast path.
 */
export function presign(request) {
  return JSON.parse(wasm.presign(JSON.stringify(request)));
}

const METHODS = { GET: 0, HEAD: 1, PUT: 2, get: 0, head: 1, put: 2 };
const FORMATS = { js: 0, docs: 1 };
const NO_OVERRIDES = {};

/**
 * An S3 presigner for one bucket and one set of credentials: make it once
 * (per bucket, per credentials) and call `presign` for each URL. The same
 * URLs as `presign(request)`, byte for byte, without the JSON round trip
 * (about 2x faster; `cargo xtask bench sign --only node`), and it keeps the
 * day signing key it derived last (in the Wasm, never readable): URLs on
 * the same UTC day reuse it. Throws an `Error` (never containing the secret)
 * for a bad endpoint or bucket, and from `presign` for a bad request.
 *
 *   const s3 = new S3Presigner({ endpoint: 'https://s3.us-east-1.amazonaws.com',
 *     bucket: 'my-bucket', region: 'us-east-1', accessKeyId, secretAccessKey, sessionToken });
 *   const url = s3.presign('photos/a b.jpg', { expires: 900 });
 *   const put = s3.presign('uploads/x.bin', { method: 'PUT', contentType: 'image/png', contentLength: 1234 });
 *
 * Constructor: `endpoint`, `bucket`, `region`, `style` ('virtual', the
 * default, or 'path'), `accessKeyId`, `secretAccessKey`, `sessionToken`.
 * `presign(key, options)`: `method` ('GET' default, 'HEAD', 'PUT'),
 * `expires` (seconds, 1..604800, default 900), `now` (unix seconds,
 * default the clock), `versionId`, `contentType` and `contentLength` (PUT:
 * signed headers the uploader must send), `response` (GET/HEAD:
 * `{cacheControl, contentDisposition, contentEncoding, contentLanguage,
 * contentType, expires}`), `format` ('js', the AWS SDK v3 layout, default;
 * 'docs', the S3 docs layout). Returns the URL. `free()` releases the Wasm
 * memory now (otherwise when the object is collected).
 */
export class S3Presigner {
  #signer;

  constructor({ endpoint, bucket, region, style = 'virtual', accessKeyId, secretAccessKey, sessionToken }) {
    if (style !== 'virtual' && style !== 'path') throw new Error(`presign: style must be virtual or path, not ${JSON.stringify(style)}`);
    this.#signer = new wasm.Presigner(endpoint, bucket, region, style === 'path', accessKeyId, secretAccessKey, sessionToken);
  }

  presign(key, { method = 'GET', expires = 900, now, versionId, contentType, contentLength, response = NO_OVERRIDES, format = 'js' } = NO_OVERRIDES) {
    // undefined and null are both "absent" to the bindings.
    const r = response;
    return this.#signer.url(
      METHODS[method] ?? 255, key, expires, now ?? Math.floor(Date.now() / 1000), FORMATS[format] ?? 255,
      versionId, contentType, contentLength,
      r.cacheControl, r.contentDisposition, r.contentEncoding, r.contentLanguage, r.contentType, r.expires,
    );
  }

  free() {
    this.#signer.free();
  }
}

/** The raw Wasm bindings (benchmarks call `presign` on a JSON string). */
export const bindings = wasm;
