// Fetch the origin's clock through the edge and show which region answered.
(async () => {
  const el = document.getElementById("live");
  try {
    const resp = await fetch("/api/time", { headers: { accept: "application/json" } });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const data = await resp.json();
    el.textContent = `region ${data.region}, origin time ${new Date(data.now).toISOString()}, cache: ${resp.headers.get("cache-status")}`;
    el.dataset.state = "ok";
  } catch (err) {
    el.textContent = `could not reach the origin: ${err.message}`;
    el.dataset.state = "error";
  }
})();
