// The page of GET /live: reads GET /v1/events with the token in the Authorization header (an
// EventSource cannot send one), so it parses the Server-Sent Events itself, and reconnects with
// Last-Event-ID when the stream ends.
"use strict";
const $ = (id) => document.getElementById(id);
let token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
let last = null;
let running = false;

function status(text) { $("status").textContent = text; }

function show(event) {
  if (!event.id) {
    if (event.event === "resync") status("resync: list your tasks again (" + JSON.parse(event.data).reason + ")");
    if (event.event === "expired") { status("the token expired: paste a new one"); running = false; }
    return;
  }
  last = event.id;
  const data = JSON.parse(event.data);
  const item = document.createElement("li");
  item.dataset.id = event.id;
  const what = event.event.replace(/^todo\./, "");
  const version = data.version === undefined ? "" : " v" + data.version;
  item.textContent = new Date().toLocaleTimeString() + " " + what + ": " + (data.title || data.task_id) + version;
  $("changes").prepend(item);
}

async function stream() {
  const headers = { Authorization: "Bearer " + token };
  if (last) headers["Last-Event-ID"] = last;
  const response = await fetch("/v1/events", { headers });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    status("refused (" + response.status + "): " + (body.error || response.statusText));
    if (response.status === 401) running = false;
    return;
  }
  status("connected");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: null, event: null, data: "" };
      let any = false;
      for (const line of block.split("\n")) {
        const at = line.indexOf(":");
        if (at <= 0) continue;
        const field = line.slice(0, at);
        const text = line.slice(at + 1).replace(/^ /, "");
        if (field === "id") { event.id = text; any = true; }
        if (field === "event") { event.event = text; any = true; }
        if (field === "data") { event.data += (event.data ? "\n" : "") + text; any = true; }
      }
      if (any) show(event);
    }
  }
}

async function run() {
  if (running) return;
  running = true;
  while (running) {
    try { await stream(); } catch (error) { status("disconnected: " + error.message); }
    if (running) { status("reconnecting…"); await new Promise((r) => setTimeout(r, 1000)); }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = token;
  $("connect").addEventListener("submit", (e) => { e.preventDefault(); token = $("token").value.trim(); run(); });
  if (token) run();
});
