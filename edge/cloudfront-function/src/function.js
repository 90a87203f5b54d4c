// The fixed part of Offload's viewer-request CloudFront Function
// (cloudfront-js-2.0: ES5 plus `async`/`await` for the KeyValueStore; no
// timers, network or promise chains). offload-cloudfront-function's
// `generate` puts the data before it, from offload-core's own items:
//   R         routes, most specific first: {p: pattern, x: exact, l: signed
//             links, k: key rules {t: drop tracking, s: sort, d: deny,
//             a: allow}, b: bucket}
//   T, TP     tracking parameters and prefix (cache::key)
//   K         link key id -> KeyValueStore key ([links], no values)
//   H         country -> region hint (route::select::region_for_country)
//   TRUST_GEO [routing] trust_test_header; GEO, HINT: the header names
//   C, MAXT   canonical byte classes and length limit (proxy::canonical)
//   TK, TMAX, MACL, XD, NF, V, V1, AL, AP, MP, M, E: the link token format
//             (sign::link: query parameter, limits, version, audiences,
//             MAC prefix, methods, refusal reasons)
// It is minified when generated: every statement ends with `;` (no
// reliance on automatic semicolon insertion), comments go.

// Country -> region hint, from HS (region -> space-separated countries).
var H = {};
Object.keys(HS).forEach(function (r) { HS[r].split(' ').forEach(function (c) { H[c] = r; }); });
var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function route(uri) {
    for (var i = 0; i < R.length; i++) {
        var r = R[i];
        if (r.x ? uri === r.p : uri.indexOf(r.p) === 0) return r;
    }
    return null;
}

function matches(p, n) {
    return p.charAt(p.length - 1) === '*' ? n.indexOf(p.slice(0, -1)) === 0 : p === n;
}

function keep(k, n) {
    var l = n.toLowerCase(), i;
    if (k.t && (l.indexOf(TP) === 0 || T.indexOf(l) >= 0)) return false;
    for (i = 0; k.d && i < k.d.length; i++) if (matches(k.d[i], n)) return false;
    if (!k.a) return true;
    for (i = 0; i < k.a.length; i++) if (matches(k.a[i], n)) return true;
    return false;
}

// Canonical base64url (no padding, no stray bits) to a string of bytes;
// null otherwise.
function unb64(s) {
    var out = '', bits = 0, n = 0;
    for (var i = 0; i < s.length; i++) {
        var v = B64.indexOf(s.charAt(i));
        if (v < 0) return null;
        bits = ((bits << 6) | v) & 0xffffff;
        n += 6;
        if (n >= 8) { n -= 8; out += String.fromCharCode((bits >> n) & 255); }
    }
    return n > 4 || (bits & ((1 << n) - 1)) ? null : out;
}

// The link check of offload-core (sign/link.rs): token =
// b64url(payload) "." b64url(HMAC-SHA256(key, MP payload)),
// payload = "V|AL|kid|expires_at|client ip or empty|methods|scope", the
// scope with '%' and '|' written %25 and %7C. Same checks in the same order
// and the same reasons as verify_link (LinkError::reason, in E).
async function verify(token, path, method, ip, now) {
    var dot = token.indexOf('.'), bad = E.m, i;
    if (dot < 0 || token.length > TMAX) return bad;
    var payload = unb64(token.slice(0, dot)), given = token.slice(dot + 1);
    if (payload === null || given.length !== MACL || unb64(given) === null || /[^\x20-\x7e]/.test(payload)) return bad;
    var f = payload.split('|');
    if (f[0] === V1) return E.v1;
    if (f[0] !== V || (f[1] !== AL && f[1] !== AP)) return bad;
    if (f[1] !== AL) return E.a;
    if (f.length !== NF || f[3].length > XD || !/^[0-9]+$/.test(f[3]) || (f[4] && !/^[0-9a-f.:]+$/.test(f[4])) || /%(?!25|7C)/.test(f[6])) return bad;
    var ms = f[5].split(',');
    for (i = 0; i < ms.length; i++) if (M.indexOf(ms[i]) < 0 || ms.indexOf(ms[i]) !== i) return bad;
    var scope = f[6].replace(/%(25|7C)/g, function (m, c) { return c === '25' ? '%' : '|'; });
    if (scope.charAt(0) !== '/' || /[\\ ]|%2f|%5c|[\/?](\.|%2e){1,2}([\/?]|$)/i.test(scope)) return bad;
    var name = Object.prototype.hasOwnProperty.call(K, f[2]) ? K[f[2]] : null;
    if (name === null) return E.k;
    var key;
    try { key = await kvs.get(name); } catch (e) { return 'key unavailable'; }
    var mac = crypto.createHmac('sha256', key).update(MP + payload).digest('base64url');
    var diff = 0;
    for (i = 0; i < mac.length; i++) diff |= mac.charCodeAt(i) ^ given.charCodeAt(i);
    if (diff !== 0) return E.s;
    if (now >= Number(f[3])) return E.x;
    if (ms.indexOf(method) < 0) return E.me;
    if (scope.charAt(scope.length - 1) === '/' ? path.indexOf(scope) !== 0 : path !== scope) return E.o;
    if (f[4] && f[4] !== ip) return E.ip;
    return null;
}

// The edge's JSON error answers (the core's shape), never stored.
function answer(status, text, body) {
    return {
        statusCode: status,
        statusDescription: text,
        headers: { 'content-type': { value: 'application/json' }, 'cache-control': { value: 'no-store' } },
        body: JSON.stringify(body)
    };
}
function refuse(message) { return answer(403, 'Forbidden', { error: message, field: TK, status: 403 }); }
function bad(message) { return answer(400, 'Bad Request', { error: 'bad request: ' + message, status: 400 }); }

// The canonical request of offload-core (proxy/canonical.rs), from its
// byte-class table C: the same refusals with the same messages.
var HX = '0123456789ABCDEF';
function esc(b) { return '%' + HX.charAt(b >> 4) + HX.charAt(b & 15); }
function utf8ok(a) {
    for (var i = 0; i < a.length;) {
        var b = a[i], n = b < 128 ? 0 : b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : -1;
        if (n < 0) return false;
        var lo = b === 0xE0 ? 0xA0 : b === 0xF0 ? 0x90 : 0x80, hi = b === 0xED ? 0x9F : b === 0xF4 ? 0x8F : 0xBF;
        for (var j = 1; j <= n; j++) {
            var c = a[i + j];
            if (c === undefined || c < lo || c > hi) return false;
            lo = 0x80; hi = 0xBF;
        }
        i += n + 1;
    }
    return true;
}
function bytesOf(s) {
    var a = [];
    for (var i = 0; i < s.length; i++) {
        var c = s.charCodeAt(i);
        if (c < 0x80) a.push(c);
        else if (c < 0x800) a.push(0xC0 | c >> 6, 0x80 | c & 63);
        else a.push(0xE0 | c >> 12, 0x80 | c >> 6 & 63, 0x80 | c & 63);
    }
    return a;
}
// The canonical form of a path (isPath) or query string, or {e: message}.
function canon(s, isPath) {
    var part = isPath ? 'path' : 'query', out = '', seg = [], start = 0, a = bytesOf(s);
    function no(what, at) { return { e: 'request target: ' + part + ': ' + what + ' at byte ' + at + ' is not allowed' }; }
    function segment(at, last) {
        if (seg.length === 1 && seg[0] === 46 || seg.length === 2 && seg[0] === 46 && seg[1] === 46) return no("dot segment ('.' or '..')", at);
        if (!seg.length && !last) return no("empty segment ('//')", at);
        if (!utf8ok(seg)) return { e: 'request target: path: segment at byte ' + at + ' decodes to invalid UTF-8' };
        return null;
    }
    if (a.length > MAXT) return { e: 'request target: ' + part + ': longer than ' + MAXT + ' bytes' };
    if (isPath && a[0] !== 47) return { e: "request target: path: must start with '/'" };
    for (var i = 0; i < a.length; i++) {
        var b = a[i], k = C.charAt(b), r;
        if (isPath && b === 47) {
            if (i > 0 && (r = segment(start, false))) return r;
            seg = []; start = i + 1; out += '/'; continue;
        }
        if (k === '%') {
            var hh = String.fromCharCode(a[i + 1] || 0, a[i + 2] || 0);
            if (!/^[0-9A-Fa-f]{2}$/.test(hh)) return { e: 'request target: ' + part + ': malformed percent-encoding at byte ' + i };
            var x = parseInt(hh, 16), kd = C.charAt(x);
            if (kd === 'u') out += String.fromCharCode(x);
            else if (isPath && x === 47) return no("encoded '/' (%2F)", i);
            else if (isPath && kd === 'b') return no("encoded '\\' (%5C)", i);
            else if (x === 0) return no('NUL byte', i);
            else if (isPath && kd === 'c') return no('encoded control byte ' + esc(x), i);
            else out += esc(x);
            seg.push(x); i += 2; continue;
        }
        if (k === 'c') return no(b === 0 ? 'NUL byte' : 'control byte 0x' + HX.charAt(b >> 4) + HX.charAt(b & 15), i);
        if (k === 'b' && isPath) return no("'\\'", i);
        out += k === 'u' || k === 'r' ? String.fromCharCode(b) : esc(b);
        seg.push(b);
    }
    if (isPath && (r = segment(start, true))) return r;
    if (out.length > MAXT) return { e: 'request target: ' + part + ': longer than ' + MAXT + ' bytes' };
    return out;
}


// [error message or null, the query object with every name and value canonical].
function canonQuery(q) {
    var out = {}, names = Object.keys(q);
    for (var i = 0; i < names.length; i++) {
        var n = canon(names[i], false);
        if (typeof n !== 'string') return [n.e, null];
        var e = q[names[i]], vals = e.multiValue ? e.multiValue : [e], mv = [];
        for (var j = 0; j < vals.length; j++) {
            var v = canon(vals[j].value, false);
            if (typeof v !== 'string') return [v.e, null];
            mv.push({ value: v });
        }
        // Names that differ only in spelling (`%74oken`, `token`) are one
        // name, values in order, as in the core's canonical query.
        if (out[n]) mv = (out[n].multiValue || [out[n]]).concat(mv);
        out[n] = mv.length > 1 ? { value: mv[0].value, multiValue: mv } : { value: mv[0].value };
    }
    return [null, out];
}

async function handler(event) {
    var req = event.request, h = req.headers;
    if (/[a-z]/.test(req.method)) return bad('request target: method: must be upper-case (methods are case-sensitive)');
    var cu = canon(req.uri, true);
    if (typeof cu !== 'string') return bad(cu.e);
    req.uri = cu;
    var cq = canonQuery(req.querystring);
    if (cq[0] !== null) return bad(cq[0]);
    var q = req.querystring = cq[1];
    if (!TRUST_GEO) delete h[GEO];
    var country = h['cloudfront-viewer-country'];
    if (country && H[country.value]) h[HINT] = { value: H[country.value] };
    else delete h[HINT];
    var r = route(req.uri);
    if (!r) return req;
    if (r.l) {
        if (!q[TK]) return refuse('this path needs a signed link');
        var err = await verify(q[TK].value, req.uri, req.method, event.viewer.ip, Math.floor(Date.now() / 1000));
        if (err) return refuse('signed link refused: ' + err);
    }
    if (r.k && (req.method === 'GET' || req.method === 'HEAD')) {
        var names = Object.keys(q), out = {};
        if (r.k.s) names.sort();
        for (var i = 0; i < names.length; i++) {
            if ((r.l && names[i] === TK) || keep(r.k, names[i])) out[names[i]] = q[names[i]];
        }
        req.querystring = out;
    }
    return req;
}
