// The baseline of `cargo xtask bench sign`'s workerd part: what a Workers
// user writes with npm `aws4fetch` (the common SigV4 signer in Workers) to
// hand out a presigned GET URL. One `AwsClient` per isolate (it keeps its
// own day-key cache); per request it presigns
// `https://offload-bench-uploads.s3.us-east-1.amazonaws.com/<key>` for
// `expires` seconds (query signing, like Offload's presign endpoint) and
// answers `{"url": ...}`.
//
//   GET /presign?key=<key>&expires=<s>
//
// Bound by tests/bench/sign/workerd.capnp with aws4fetch's ESM build as
// the module `aws4fetch.mjs`.

import { AwsClient } from './aws4fetch.mjs';

let client;

export default {
  async fetch(request, env) {
    client ??= new AwsClient({
      accessKeyId: env.OFFLOAD_S3_ACCESS_KEY_ID,
      secretAccessKey: env.OFFLOAD_S3_SECRET_ACCESS_KEY,
      service: 's3',
      region: 'us-east-1',
    });
    const params = new URL(request.url).searchParams;
    const key = params.get('key');
    if (!key) return Response.json({ error: 'key is required' }, { status: 400 });
    const url = new URL(`https://offload-bench-uploads.s3.us-east-1.amazonaws.com/${key}`);
    url.searchParams.set('X-Amz-Expires', params.get('expires') ?? '900');
    const signed = await client.sign(url, { method: 'GET', aws: { signQuery: true } });
    return Response.json({ url: signed.url });
  },
};
