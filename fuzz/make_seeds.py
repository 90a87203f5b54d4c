#!/usr/bin/env python3
"""Writes the committed seed corpora under seeds/<target>/ from the
project's own fixtures (offload.toml, tests/*/*.toml, the Lambda@Edge event
fixtures) and header samples. Run from fuzz/: python3 make_seeds.py"""
import base64, hashlib, hmac, json, pathlib, shutil, tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = pathlib.Path(__file__).resolve().parent / "seeds"
LINK_KEY_ID = "fuzz-1"
LINK_SECRET = b"fuzz-link-key-0123456789abcdef-0123456789"


def write(target, items):
    d = SEEDS / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for i, data in enumerate(items):
        (d / f"seed-{i:03}").write_bytes(data if isinstance(data, bytes) else data.encode())


def fields(*parts):
    return b"\0".join(p if isinstance(p, bytes) else p.encode() for p in parts)


def token(exp, scope, ip="", kid=LINK_KEY_ID, secret=LINK_SECRET, methods="GET,HEAD"):
    """A v2 link token (sign/link.rs): MAC over "offload-link-v2\n" + payload."""
    payload = f"v2|link|{kid}|{exp}|{ip}|{methods}|{scope}".encode()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    mac = hmac.new(secret, b"offload-link-v2\n" + payload, hashlib.sha256).digest()
    return f"{b64(payload)}.{b64(mac)}"


# config: every committed config, as TOML and as JSON.
tomls = [ROOT / "offload.toml", *sorted(ROOT.glob("tests/*/*.toml"))]
configs = []
for p in tomls:
    text = p.read_text()
    configs.append(text)
    configs.append(json.dumps(tomllib.loads(text)))
configs.append((ROOT / "fuzz/src/lib.rs").read_text().split('pub const CONFIG: &str = r#"')[1].split('"#;')[0])
write("config", configs)

# cache_control: response header sets (status byte first).
headers = [
    ["cache-control: public, max-age=300"],
    ["cache-control: max-age=60, stale-while-revalidate=30, stale-if-error=600", "etag: \"v1\""],
    ["cache-control: no-store"],
    ["cache-control: private=\"set-cookie\", max-age=10", "set-cookie: s=1"],
    ["cache-control: no-cache=\"Set-Cookie, X-A\"", "cache-control: s-maxage=5"],
    ["cdn-cache-control: max-age=600", "cache-control: max-age=0"],
    ["cdn-cache-control: max-age=60, stale-while-revalidate=10", "cache-control: no-store"],
    ["surrogate-control: max-age=3600;edge, no-store;browser", "cache-control: max-age=1"],
    ["surrogate-control: no-store"],
    ["date: Tue, 14 Nov 2023 22:13:20 GMT", "last-modified: Mon, 13 Nov 2023 22:13:20 GMT"],
    ["expires: Tue, 14 Nov 2023 23:13:20 GMT", "date: Tue, 14 Nov 2023 22:13:20 GMT", "age: 100"],
    ["cache-control: max-age=\"60\", must-revalidate, immutable", "vary: Accept-Encoding"],
    ["cache-control: max-age=99999999999999999999, s-maxage=-1", "vary: *"],
]
write("cache_control", [fields(bytes([i * 37 % 256]), *h) for i, h in enumerate(headers)])

# cache_key: scheme, host, target, request headers.
keys = [
    ("https", "www.example.com", "/a%7eb?x=1&utm_source=mail"),
    ("HTTP", "WWW.Example.com.:80", "/%7euser/%2f%41?b=2&a=1&a=0"),
    ("https", "[2001:DB8::1]:8443", "/api/list?page=2&id=7&session=x&x-y=z#frag"),
    ("https", "example.com", "/private/report.txt?token=abc&lang=en"),
    ("http", "a.b.c:8080", "/eu/path/../x/./y//z?q=%zz&%e2%82%ac=1"),
    ("https", "example.com", ""),
]
write("cache_key", [fields(bytes([i]), s, h, t, "accept-language: en-US,  en", "cookie: lang=de; a=b", "x-device: mobile")
                    for i, (s, h, t) in enumerate(keys)])

# link_token: valid tokens (mode 0) and edit instructions (odd modes).
exp = 1_700_000_000 + 3600
now = (1_700_000_000).to_bytes(8, "big")
links = [
    fields(b"\x00", token(exp, "/media/"), "/media/a.mp4", "", now),
    fields(b"\x00", token(exp, "/private/report.txt", "203.0.113.9"), "/private/report.txt", "203.0.113.9", now),
    fields(b"\x00", token(exp, "/private/", "2001:db8::1"), "/private/x/y", "2001:db8::1", now),
    fields(b"\x00", token(exp, "/a", kid="old", secret=b"an-older-fuzz-key-0123456789abcdefghij"), "/a", "", now),
    fields(b"\x00", token(exp, "/up/", methods="GET,HEAD,PUT,DELETE"), "/up/x", "", now, "DELETE"),
    fields(b"\x00", "djF8ZnV6ei0xfDF8fC8.AAAA", "/", "", now),
    fields(b"\x00", token(10, "/media/"), "/media/a.mp4", "", now),
    fields(b"\x00", "djF8ZnV6ei0xfDF8fC8.AAAA", "/", "", now),
]
links += [fields(bytes([m]), bytes([0, p, 0x41]), "/private/report.txt", "198.51.100.7", now) for m, p in [(1, 3), (3, 40), (5, 70), (7, 90)]]
write("link_token", links)

# presign_endpoint: raw Authorization (mode 0) or a grant the target mints
# (mode 1; bits 2-3 pick GET,HEAD / PUT / both, bit 4 an exact key).
body = lambda **kw: json.dumps({"bucket": "uploads", "key": "user-42/photo.jpg", "method": "PUT", "expires": 600,
                                "content_length": 1000, "content_type": "image/jpeg", **kw})
presign = [
    fields(b"\x05", "user-42/", body()),
    fields(b"\x01", "user-42/", body(method="GET", response_content_disposition="attachment")),
    fields(b"\x0d", "", body(key="../etc/passwd")),
    fields(b"\x15", "user-42/photo.jpg", body(method="put", content_type="image/png; q=1")),
    fields(b"\x05", "user-42/", body(content_length=99999999, content_type="text/html")),
    fields(b"\x00", "Bearer " + token(exp, "/_presign/uploads/user-42/"), body()),
    fields(b"\x00", "Bearer nope", body(bucket="other")),
    fields(b"\x02", "", "{}", "GET"),
    fields(b"\x09", "k", body(key="k", expires=99999)),
]
write("presign_endpoint", presign)

# purge: bodies with the right token (mode 1) and wrong ones.
purge = [
    fields(b"\x01", "", json.dumps({"urls": ["/api/a?b=1&utm_source=x", "https://www.example.com/x%7ey"], "tags": ["t1"]}), "www.example.com"),
    fields(b"\x01", "", json.dumps({"urls": ["/eu/a", "http://EXAMPLE.com:80/a?z=1&a=2"], "soft": True}), "example.com"),
    fields(b"\x01", "", json.dumps({"tags": ["a", "b"], "soft": False}), "h"),
    fields(b"\x01", "", json.dumps({"urls": [], "tags": []}), "h"),
    fields(b"\x01", "", json.dumps({"urls": ["ftp://x/y", "no-slash", ""]}), "h"),
    fields(b"\x00", "Bearer fuzz-purge-token ", json.dumps({"urls": ["/a"]}), "example.com"),
    fields(b"\x00", "bearer wrong", json.dumps({"urls": ["/a"]}), "example.com"),
    fields(b"\x03", "", "{}", "example.com"),
    fields(b"\x05", "", json.dumps({"urls": ["/a"]}), ""),
]
write("purge", purge)

# sigv4: requests from the AWS SigV4/S3 documentation examples.
sig = [
    fields(b"\x02", "GET", "https://examplebucket.s3.amazonaws.com/test.txt", "Range: bytes=0-9"),
    fields(b"\x0a", "PUT", "https://examplebucket.s3.amazonaws.com/test$file.text", "x-amz-storage-class: REDUCED_REDUNDANCY", "Date: Fri, 24 May 2013 00:00:00 GMT", b"Welcome to Amazon S3."),
    fields(b"\x02", "GET", "https://examplebucket.s3.amazonaws.com/?lifecycle"),
    fields(b"\x03", "GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J"),
    fields(b"\x06", "GET", "https://examplebucket.s3.amazonaws.com/test.txt"),
    fields(b"\x00", "GET", "https://example.amazonaws.com/a/./b/../c//d?Param2=value2&Param1=value1&a=%20b", "My-Header1:  a   b   c ", "X-Amz-Date: x"),
    fields(b"\x01", "POST", "http://[::1]:9000/k%2Fey/%e2%82%ac?x&y=&z=1#frag", "host: [::1]:9000", "content-type: text/plain"),
]
write("sigv4", sig)

# lambda_event: the Lambda@Edge fixtures (ours and the SAM samples).
events = sorted((ROOT / "tests/lambda-edge/fixtures").rglob("*.json"))
write("lambda_event", [p.read_bytes() for p in events if p.name != "event-mapping.cloudfront.json"])
