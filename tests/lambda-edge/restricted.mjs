// Headers a Lambda@Edge function must never add, remove or change.
// Source: Amazon CloudFront Developer Guide, "Restrictions on all edge
// functions" -> "HTTP headers", and "Restrictions on Lambda@Edge" ->
// "CloudFront headers":
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html#function-restrictions-headers
// The same lists are in edge/core/src/cloudfront/restricted.rs (a Rust unit
// test checks both copies agree). Entries ending in '*' are prefixes.

export const DISALLOWED = [
  'connection', 'expect', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection',
  'trailer', 'upgrade', 'x-accel-buffering', 'x-accel-charset', 'x-accel-limit-rate', 'x-accel-redirect',
  'x-amz-cf-*', 'x-amzn-auth', 'x-amzn-cf-billing', 'x-amzn-cf-id', 'x-amzn-cf-xff', 'x-amzn-errortype',
  'x-amzn-fle-profile', 'x-amzn-header-count', 'x-amzn-header-order', 'x-amzn-lambda-integration-tag',
  'x-amzn-requestid', 'x-cache', 'x-edge-*', 'x-forwarded-proto', 'x-real-ip',
];

export const READ_ONLY_VIEWER_REQUEST = ['content-length', 'host', 'transfer-encoding', 'via', 'cloudfront-viewer-country'];

export const READ_ONLY_ORIGIN_REQUEST = [
  'accept-encoding', 'content-length', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'transfer-encoding', 'via',
];

export const READ_ONLY_ORIGIN_RESPONSE = ['transfer-encoding', 'via'];

export const READ_ONLY_VIEWER_RESPONSE = ['content-encoding', 'content-length', 'transfer-encoding', 'warning', 'via'];

const READ_ONLY = {
  'viewer-request': READ_ONLY_VIEWER_REQUEST,
  'origin-request': READ_ONLY_ORIGIN_REQUEST,
  'origin-response': READ_ONLY_ORIGIN_RESPONSE,
  'viewer-response': READ_ONLY_VIEWER_RESPONSE,
};

const listed = (list, name) => list.some((e) => (e.endsWith('*') ? name.startsWith(e.slice(0, -1)) : e === name));

export function isRestricted(trigger, name) {
  const n = name.toLowerCase();
  return listed(DISALLOWED, n) || listed(READ_ONLY[trigger], n);
}

// Every restricted header whose entries differ between the event's header
/// map (`before`) and the function's output (`after`): added, removed or
// changed. For a generated response `before` is `{}`: none may appear.
export function touchedRestricted(trigger, before, after) {
  const names = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})].map((n) => n.toLowerCase()));
  const touched = [];
  for (const n of names) {
    if (!isRestricted(trigger, n)) continue;
    const a = JSON.stringify((before ?? {})[n] ?? null);
    const b = JSON.stringify((after ?? {})[n] ?? null);
    if (a !== b) touched.push(n);
  }
  return touched;
}
