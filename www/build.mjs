#!/usr/bin/env node
// Builds the static site from www/ into OUT (no framework):
//   node www/build.mjs --out DIR --pkg DIR [--config offload.toml]
// - pages/*.html are put into layout.html (title, description and scripts
//   from their leading <!-- name: value --> comments; {{config}} is the
//   config's text, which holds secret references only);
// - assets/*.js and the browser package from wasm-pack (--pkg: the
//   offload_browser.js glue and its .wasm) get a content hash in their
//   names (name.<hash>.ext), and every reference to them is rewritten, so
//   `cargo xtask publish` marks them immutable;
// - every other file (style.css, app.js, private/...) is copied as is.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  if (i === -1) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing ${name}\nusage: node www/build.mjs --out DIR --pkg DIR [--config offload.toml]`);
  }
  const v = args[i + 1];
  if (!v || v.startsWith("--")) throw new Error(`${name} needs a value`);
  return resolve(v);
};
const out = opt("--out");
const pkg = opt("--pkg");
const configPath = opt("--config", join(here, "..", "offload.toml"));
const SOURCE_ONLY = new Set(["build.mjs", "layout.html", "pages", "assets", "README.md"]);

// A deterministic 8-character window of the SHA-256 with a letter and a
// digit in it (how `cargo xtask publish` recognizes a content hash).
function fingerprint(bytes) {
  const hex = createHash("sha256").update(bytes).digest("hex");
  for (let i = 0; i + 8 <= hex.length; i++) {
    const w = hex.slice(i, i + 8);
    if (/[a-f]/.test(w) && /[0-9]/.test(w)) return w;
  }
  return hex.slice(0, 8) + "a0";
}

const escapeHtml = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

// 1. Files copied as they are.
for (const name of readdirSync(here)) {
  if (SOURCE_ONLY.has(name) || name.startsWith(".")) continue;
  cpSync(join(here, name), join(out, name), { recursive: true });
}

// 2. Fingerprinted assets, leaves first: the wasm, the glue, the pages' scripts.
const renamed = new Map(); // "/assets/x.js" -> "/assets/x.<hash>.js"
function emit(source, bytes, url) {
  let text = null;
  if (url.endsWith(".js")) {
    text = bytes.toString("utf8");
    for (const [from, to] of renamed) {
      text = text.split(from).join(to);
      text = text.split(`'${basename(from)}'`).join(`'${basename(to)}'`);
    }
    bytes = Buffer.from(text, "utf8");
  }
  const ext = extname(url);
  const hashed = `${url.slice(0, -ext.length)}.${fingerprint(bytes)}${ext}`;
  writeFileSync(join(out, hashed), bytes);
  renamed.set(url, hashed);
  console.log(`site: ${relative(process.cwd(), source)} -> ${hashed} (${bytes.length} bytes)`);
}
for (const f of ["offload_browser_bg.wasm", "offload_browser.js"]) {
  const p = join(pkg, f);
  if (!statSync(p, { throwIfNoEntry: false })) throw new Error(`${p}: missing (run wasm-pack build edge/browser --target web first)`);
  emit(p, readFileSync(p), `/assets/${f}`);
}
for (const f of readdirSync(join(here, "assets")).sort()) {
  emit(join(here, "assets", f), readFileSync(join(here, "assets", f)), `/assets/${f}`);
}

// 3. Pages.
const layout = readFileSync(join(here, "layout.html"), "utf8");
const config = readFileSync(configPath, "utf8");
for (const f of readdirSync(join(here, "pages")).sort()) {
  let body = readFileSync(join(here, "pages", f), "utf8");
  const meta = {};
  for (;;) {
    const m = body.match(/^<!-- (\w+): (.*?) -->\n/);
    if (!m) break;
    meta[m[1]] = m[2];
    body = body.slice(m[0].length);
  }
  for (const k of ["title", "description"]) if (!meta[k]) throw new Error(`pages/${f}: no <!-- ${k}: ... --> line`);
  const scripts = (meta.scripts ?? "").split(/\s+/).filter(Boolean).map((s) => {
    const module = s.startsWith("module:");
    const src = module ? s.slice(7) : s;
    const url = renamed.get(src) ?? src;
    return module ? `  <script type="module" src="${url}"></script>` : `  <script src="${url}" defer></script>`;
  });
  const html = layout
    .replace("{{title}}", escapeHtml(meta.title))
    .replace("{{description}}", escapeHtml(meta.description))
    .replace("{{page}}", basename(f, ".html"))
    .replace("{{content}}", body.replace("{{config}}", escapeHtml(config)).trimEnd())
    .replace("{{scripts}}", scripts.join("\n"));
  writeFileSync(join(out, f), html);
  console.log(`site: pages/${f} -> /${f} (${html.length} bytes)`);
}
