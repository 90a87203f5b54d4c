// Lambda@Edge entry points for Offload (Node.js 20+ runtime).
//
// Handlers (set the function's handler to one of these):
//   index.viewerRequest   viewer-request trigger
//   index.originRequest   origin-request trigger
//   index.originResponse  origin-response trigger
//   index.handler         any of them, by Records[0].cf.config.eventType
//
// All logic is in the Wasm (offload-lambda-edge, built from the Offload
// core with the config bundled at build time). This file only loads it,
// passes the clock (Date.now()) and a random number, and hands the Lambda
// role's credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN, set by the Lambda runtime) to the Wasm once. The
// credentials are never logged.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const wasm = require('./offload_lambda_edge.js');

let configured = false;

function configureOnce() {
  if (configured) return;
  configured = true;
  const env = process.env;
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    wasm.configure(
      JSON.stringify({
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        sessionToken: env.AWS_SESSION_TOKEN ?? null,
      }),
    );
  }
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

export const viewerRequest = async (event) => invoke('viewer-request', event);
export const originRequest = async (event) => invoke('origin-request', event);
export const originResponse = async (event) => invoke('origin-response', event);
export const handler = async (event) => invoke(event?.Records?.[0]?.cf?.config?.eventType, event);

/** S3 presigned URL (see edge/lambda-edge/src/presign.rs for the input). */
export function presign(request) {
  return JSON.parse(wasm.presign(JSON.stringify(request)));
}

/** The raw Wasm bindings (benchmarks call `presign` on a JSON string). */
export const bindings = wasm;
