// The upload page: presign at the edge, PUT straight to the bucket.
import init, { presignAndUpload } from "/assets/offload_browser.js";

const $ = (id) => document.getElementById(id);
const status = $("upload-status");
const bar = $("progress");

function say(text, state) {
  status.textContent = text;
  status.dataset.state = state;
}

$("upload-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("file").files[0];
  if (!file) return say("Choose a file first.", "error");
  let key = $("key").value.trim();
  if (key === "" || key.endsWith("/")) key += file.name;
  bar.value = 0;
  say(`Uploading ${file.name} (${file.size} bytes)…`, "uploading");
  try {
    const done = await presignAndUpload(
      { edge: location.origin, grant: $("grant").value.trim(), bucket: $("bucket").value.trim(), key, expires: 300 },
      file,
      (sent, total) => { bar.value = total ? (100 * sent) / total : 0; status.dataset.sent = String(sent); },
    );
    bar.value = 100;
    say(`Uploaded ${file.size} bytes to ${done.url} (ETag ${done.etag ?? "?"}).`, "done");
    status.dataset.key = key;
  } catch (err) {
    say(`Upload failed: ${err.message ?? err}`, "error");
  }
});

try {
  await init({ module_or_path: "/assets/offload_browser_bg.wasm" });
  document.body.dataset.wasm = "ready";
} catch (err) {
  document.body.dataset.wasm = "error";
  say(`The WebAssembly core did not load: ${err.message ?? err}`, "error");
}
