// MSPclaw console: small progressive enhancements. Every page works without this file; with it,
// deadlines count down, the ticket timeline updates live, approvals take the a and d keys, and a
// decision form is sent once however often it is clicked.
"use strict";

function countdowns() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time.countdown")) {
    const left = Math.floor((Date.parse(el.getAttribute("datetime")) - now) / 1000);
    el.textContent = left <= 0 ? "past the deadline"
      : `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left`;
  }
}

function decisionForm() {
  const form = document.getElementById("decide");
  if (!form) return;
  let sent = false;
  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (sent) { event.preventDefault(); return; }
    const reason = document.getElementById("reason");
    if (button && button.value === "deny" && !reason.value.trim()) {
      event.preventDefault();
      reason.focus();
      reason.setAttribute("placeholder", "Say why you deny it");
      return;
    }
    sent = true;
    const decision = document.createElement("input");
    decision.type = "hidden"; decision.name = "decision"; decision.value = button ? button.value : "";
    form.appendChild(decision);
    // disabled after the form data is taken: the hidden field carries the choice
    setTimeout(() => { for (const b of form.querySelectorAll("button")) b.disabled = true; }, 0);
  });
  document.addEventListener("keydown", (event) => {
    const tag = (event.target && event.target.tagName) || "";
    if (event.ctrlKey || event.metaKey || event.altKey || tag === "INPUT" || tag === "TEXTAREA") return;
    if (event.key === "a") { event.preventDefault(); document.getElementById("approve").click(); }
    if (event.key === "d") { event.preventDefault(); document.getElementById("deny").click(); }
  });
}

function liveTimeline() {
  const card = document.getElementById("ticket");
  const list = document.getElementById("timeline");
  if (!card || !list || card.dataset.finished === "true" || !window.EventSource) return;
  const live = document.getElementById("live");
  const source = new EventSource(
    `/tickets/${encodeURIComponent(card.dataset.ticket)}/events?after=${encodeURIComponent(list.dataset.after)}`);
  let reload = null;
  source.addEventListener("timeline", (message) => {
    const item = JSON.parse(message.data);
    if (list.querySelector(`li[data-seq="${item.seq}"]`)) return;
    list.insertAdjacentHTML("beforeend", item.html);  // rendered and escaped by the server
    if (live) live.textContent = "live";
    if (item.reload && reload === null) {
      reload = setTimeout(() => { source.close(); window.location.reload(); }, 400);
    }
  });
  source.addEventListener("error", () => { if (live) live.textContent = "reconnecting…"; });
}

async function apiDocs() {
  const holder = document.getElementById("operations");
  if (!holder) return;
  try {
    const response = await fetch(holder.dataset.src);
    const doc = await response.json();
    holder.textContent = "";
    for (const [path, operations] of Object.entries(doc.paths || {})) {
      for (const [method, op] of Object.entries(operations)) {
        const row = document.createElement("div");
        row.className = "op";
        const m = document.createElement("span"); m.className = "method"; m.textContent = method.toUpperCase();
        const p = document.createElement("code"); p.textContent = path;
        const s = document.createElement("span"); s.className = "hint";
        s.textContent = op.summary ? ` — ${op.summary}` : "";
        row.append(m, p, s);
        if (op.description) {
          const d = document.createElement("div"); d.className = "hint"; d.textContent = op.description;
          row.append(d);
        }
        holder.append(row);
      }
    }
  } catch (err) {
    holder.textContent = `Could not read ${holder.dataset.src}: ${err}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  countdowns();
  setInterval(countdowns, 1000);
  decisionForm();
  liveTimeline();
  apiDocs();
});
