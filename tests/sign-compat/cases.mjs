// Random presign cases, the same for Offload's Wasm presigner and the AWS
// SDK for JavaScript v3, from a seeded generator (reproducible: pass the
// seed the run printed).

import { S3Client, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl, S3RequestPresigner } from '@aws-sdk/s3-request-presigner';
// Dependencies of the two pinned SDK packages above (package-lock.json):
// `@smithy/core/serde`'s `Hash` is `@smithy/hash-node` (node:crypto),
// merged into @smithy/core in this SDK generation.
import { formatUrl } from '@aws-sdk/core/util';
import { HttpRequest } from '@smithy/core/protocols';
import { Hash } from '@smithy/core/serde';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '../..');

const PKG = process.env.OFFLOAD_LAMBDA_PKG ?? join(ROOT, '.offload/lambda-edge/pkg');

function pkgFile(name) {
  const file = join(PKG, name);
  if (!existsSync(file)) {
    console.error(`${file} is missing: run \`cargo xtask package lambda-edge\` first`);
    process.exit(2);
  }
  return file;
}

/** The Lambda@Edge build's raw Wasm bindings (`cargo xtask package lambda-edge`). */
export function loadWasm() {
  return createRequire(import.meta.url)(pkgFile('offload_lambda_edge.js'));
}

/** The Lambda@Edge package's JS module (`index.mjs`: `S3Presigner`, `presign`, …). */
export function loadPackage() {
  return import(pathToFileURL(pkgFile('index.mjs')).href);
}

/**
 * Offload's presigners for the cases, one per bucket and credentials
 * (endpoint, bucket, region, style, key pair), made once as a user makes
 * them: `signer(c.ours)` gives the case's, `signer.id(c.ours)` the key to
 * look it up by (computed once per case, as the SDK side's presigners and
 * endpoints are looked up by a ready key).
 */
export function offloadSigners(S3Presigner) {
  const made = new Map();
  const id = (o) => `${o.endpoint}|${o.bucket}|${o.region}|${o.style}|${o.accessKeyId}`;
  const byId = (key, o) => {
    let s = made.get(key);
    if (!s) {
      s = new S3Presigner(o);
      made.set(key, s);
    }
    return s;
  };
  const signer = (o) => byId(id(o), o);
  signer.id = id;
  signer.byId = byId;
  return signer;
}

/** mulberry32: a small seeded PRNG. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = (xs) => xs[int(0, xs.length - 1)];
  return { next, int, pick, chance: (p) => next() < p };
}

// Pieces keys are made of: the characters S3 and the encoders treat
// specially (space, +, ~, %, //, ?, #, =, &), reserved and unreserved
// ASCII, dot segments, Latin-1, CJK, combining marks, RTL, astral emoji,
// and control characters.
const PIECES = [
  ' ', '+', '~', '%', '//', '/', '%2F', '%20', '?', '#', '=', '&', ';', ':', '@', '$', ',', '!', "'", '(', ')',
  '*', '[', ']', '{', '}', '"', '<', '>', '\\', '^', '`', '|', '-', '_', '.', '..', './', '../', 'é', 'ß', 'ñ',
  'Ω', 'Ж', '中文', '日本語', 'e\u0301', 'ع', '😀', '👍🏽', '𝄞', '\t', '\n', '\u007f', '\u00a0', '\u2028', '\ufeff',
];
const WORD = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function key(r) {
  let k = '';
  const parts = r.int(1, 12);
  for (let i = 0; i < parts; i++) {
    if (r.chance(0.45)) {
      let w = '';
      const n = r.int(1, 10);
      for (let j = 0; j < n; j++) w += WORD[r.int(0, WORD.length - 1)];
      k += w;
    } else {
      k += r.pick(PIECES);
    }
  }
  if (r.chance(0.03)) k = '/' + k;
  if (r.chance(0.01)) k = 'x'.repeat(r.int(900, 1000)) + k;
  // Cut whole code points: slicing UTF-16 units could leave half of an
  // astral character, a lone surrogate no URL can carry (URIError).
  while (Buffer.byteLength(k) > 1024) k = Array.from(k).slice(0, -1).join('');
  return k || 'k';
}

const HEADERISH = ['no-cache', 'max-age=60, public', 'attachment; filename="a b.txt"', "inline; filename*=UTF-8''%E2%82%AC.pdf",
  'text/plain; charset=utf-8', 'gzip', 'en-US, de;q=0.8', 'image/png', 'x+y=z&w', 'résumé ~ 100%'];

const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-2', 'sa-east-1'];
const CREDENTIALS = Array.from({ length: 6 }, (_, i) => ({
  accessKeyId: `AKIA${String(i).repeat(4)}EXAMPLE${i}`,
  secretAccessKey: `wJalrXUtnFEMI/K7MDENG+bPxRfiCY${i}EXAMPLEKEY/+=`.slice(0, 40),
  sessionToken: i % 2 ? `IQoJb3JpZ2luX2VjE${i}+/token=with/odd+chars==` : undefined,
}));
// [sdk endpoint or undefined (AWS default), Offload endpoint, style]
const ENDPOINTS = [
  [undefined, (region) => `https://s3.${region}.amazonaws.com`, 'virtual'],
  ['http://127.0.0.1:9000', () => 'http://127.0.0.1:9000', 'path'],
  ['https://minio.example.com:9443', () => 'https://minio.example.com:9443', 'path'],
  ['http://localhost:4566', () => 'http://localhost:4566', 'path'],
  ['https://storage.example.com', () => 'https://storage.example.com', 'virtual'],
];

/** One random case: the Offload request and the SDK's inputs. */
export function makeCase(r) {
  const [sdkEndpoint, ourEndpoint, style] = r.pick(ENDPOINTS);
  const region = r.pick(REGIONS);
  const credentials = r.pick(CREDENTIALS);
  const method = r.pick(['GET', 'GET', 'HEAD', 'PUT']);
  let bucket = r.pick(['my-bucket', 'examplebucket', 'offload-uploads-123', 'a1b', 'logs-2024']);
  if (style === 'path' && r.chance(0.2)) bucket = 'with.dots.bucket';
  const k = key(r);
  const expires = r.chance(0.1) ? r.pick([1, 604800]) : r.int(1, 604800);
  const now = r.int(946684800, 2208988800); // 2000 .. 2040
  const response = {};
  let versionId;
  if (method !== 'PUT') {
    for (const f of ['cacheControl', 'contentDisposition', 'contentEncoding', 'contentLanguage', 'contentType']) {
      if (r.chance(0.15)) response[f] = r.pick(HEADERISH);
    }
    if (r.chance(0.1)) response.expires = new Date(r.int(0, 2208988800) * 1000).toUTCString();
    if (r.chance(0.15)) versionId = r.pick(['v1', '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo', 'null', 'a b/c']);
  }
  return {
    ours: {
      endpoint: ourEndpoint(region), bucket, region, style,
      accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey,
      ...(credentials.sessionToken ? { sessionToken: credentials.sessionToken } : {}),
      key: k, method, expires, now, ...(versionId ? { versionId } : {}), response,
    },
    sdk: { sdkEndpoint, style, region, credentials, method, bucket, key: k, expires, now, versionId, response },
  };
}

const clients = new Map();

/** The SDK client for a case, cached by (endpoint, style, region, credentials). */
function client({ sdkEndpoint, style, region, credentials }) {
  const id = JSON.stringify([sdkEndpoint, style, region, credentials.accessKeyId]);
  let c = clients.get(id);
  if (!c) {
    c = new S3Client({
      region,
      endpoint: sdkEndpoint,
      forcePathStyle: style === 'path',
      credentials: { ...credentials },
      // Presigned URLs without flexible-checksum extras: the SDK would
      // otherwise add `x-amz-checksum-mode=ENABLED` to GET and a CRC32 of
      // the empty body to PUT (Offload signs checksums only when asked).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    clients.set(id, c);
  }
  return c;
}

/** The SDK's presigned URL for a case (same clock: `signingDate`). */
export function sdkPresign(s) {
  const input = { Bucket: s.bucket, Key: s.key };
  if (s.versionId) input.VersionId = s.versionId;
  const o = s.response;
  if (o.cacheControl) input.ResponseCacheControl = o.cacheControl;
  if (o.contentDisposition) input.ResponseContentDisposition = o.contentDisposition;
  if (o.contentEncoding) input.ResponseContentEncoding = o.contentEncoding;
  if (o.contentLanguage) input.ResponseContentLanguage = o.contentLanguage;
  if (o.contentType) input.ResponseContentType = o.contentType;
  if (o.expires) input.ResponseExpires = new Date(o.expires);
  const Command = { GET: GetObjectCommand, HEAD: HeadObjectCommand, PUT: PutObjectCommand }[s.method];
  return getSignedUrl(client(s), new Command(input), { expiresIn: s.expires, signingDate: new Date(s.now * 1000) });
}

// The fastest SDK v3 entry point a user would pick: `S3RequestPresigner`
// constructed once per credentials with node:crypto SHA-256 and static
// credentials, presigning an `HttpRequest` built directly (no client, no
// middleware stack). The request is what GetObject/HeadObject/PutObject
// serialize to: the same URL, so the same work as Offload's `presign`.
const presigners = new Map();
const sha256 = Hash.bind(null, 'sha256');

function presigner(credentials, region) {
  let p = presigners.get(credentials.accessKeyId);
  if (!p) {
    p = new S3RequestPresigner({ credentials: { ...credentials }, region, sha256 });
    presigners.set(credentials.accessKeyId, p);
  }
  return p;
}

/** `encodeURIComponent` plus `!'()*` (the SDK's label encoder), per path segment. */
function encodeKey(key) {
  return key
    .split('/')
    .map((seg) =>
      /^[\w.~-]*$/.test(seg) ? seg : encodeURIComponent(seg).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()),
    )
    .join('/');
}

// HeadObject's URL has no `x-id`.
const ID = { GET: 'GetObject', PUT: 'PutObject' };
const RESPONSE = [
  ['cacheControl', 'response-cache-control'],
  ['contentDisposition', 'response-content-disposition'],
  ['contentEncoding', 'response-content-encoding'],
  ['contentLanguage', 'response-content-language'],
  ['contentType', 'response-content-type'],
  ['expires', 'response-expires'],
];

const endpoints = new Map();

/** An endpoint's parts, parsed once (as a client would at construction). */
function endpointOf(url) {
  let e = endpoints.get(url);
  if (!e) {
    const u = new URL(url);
    e = { protocol: u.protocol, hostname: u.hostname, port: u.port ? Number(u.port) : undefined };
    endpoints.set(url, e);
  }
  return e;
}

/**
 * How many HMACs (keyed SHA-256 instances) the SDK computes for the
 * case's URL, on a presigner of its own with a counting `sha256` (the
 * SDK's `signingKeyCache` is module-wide, so it sees the keys the kept
 * presigners derived): 2 when the day's signing key is cached (the cache
 * key's hash of the credentials, the signature), 6 when it is derived.
 */
export async function sdkHmacsPerUrl(s) {
  let hmacs = 0;
  function counting(secret) {
    if (secret !== undefined) hmacs++;
    return new Hash('sha256', secret);
  }
  const p = new S3RequestPresigner({ credentials: { ...s.credentials }, region: s.region, sha256: counting });
  await directPresign(s, p);
  return hmacs;
}

/**
 * The case's URL from `S3RequestPresigner.presign` on a hand-built
 * `HttpRequest`; `p` the presigner (default: the one kept per credentials).
 */
export async function directPresign(s, p = presigner(s.credentials, s.region)) {
  const endpoint = endpointOf(s.sdkEndpoint ?? `https://s3.${s.region}.amazonaws.com`);
  const key = encodeKey(s.key);
  const virtual = s.style === 'virtual';
  const query = ID[s.method] ? { 'x-id': ID[s.method] } : {};
  for (const [field, param] of RESPONSE) {
    const v = s.response[field];
    if (v) query[param] = field === 'expires' ? new Date(v).toUTCString() : v;
  }
  if (s.versionId) query.versionId = s.versionId;
  const request = new HttpRequest({
    method: s.method,
    protocol: endpoint.protocol,
    hostname: virtual ? `${s.bucket}.${endpoint.hostname}` : endpoint.hostname,
    port: endpoint.port,
    path: virtual ? `/${key}` : `/${s.bucket}/${key}`,
    query,
    headers: {},
  });
  const signed = await p.presign(request, {
    expiresIn: s.expires,
    signingDate: new Date(s.now * 1000),
    signingRegion: s.region,
  });
  return formatUrl(signed);
}
