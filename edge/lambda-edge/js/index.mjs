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

/** S3 presigned URL (see edge/core/src/sign/presign_json.rs for the input). */
export function presign(request) {
  return JSON.parse(wasm.presign(JSON.stringify(request)));
}

/** The raw Wasm bindings (benchmarks call `presign` on a JSON string). */
export const bindings = wasm;
