// The web app's few behaviours, plain JavaScript (no build step, nothing from a CDN).
"use strict";

// Dates in the user's own time zone and language.
function localTimes(root) {
  const lang = document.documentElement.lang || undefined;
  root.querySelectorAll("time[datetime]").forEach((el) => {
    const d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) return;
    const dateOnly = el.getAttribute("datetime").length <= 10;
    el.textContent = dateOnly
      ? d.toLocaleDateString(lang)
      : d.toLocaleString(lang, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  });
}

// The language switch submits itself.
function autosubmit() {
  document.querySelectorAll("select[data-autosubmit]").forEach((el) =>
    el.addEventListener("change", () => el.form.submit()));
}

// Live changes of the account's tickets (SSE). The browser reconnects by itself.
function liveStream(onTicket) {
  const badge = document.getElementById("live");
  const source = new EventSource("/tickets/live");
  source.addEventListener("open", () => badge && (badge.dataset.state = "on", badge.textContent = badge.dataset.on));
  source.addEventListener("error", () => badge && (badge.dataset.state = "off", badge.textContent = badge.dataset.off));
  source.addEventListener("ticket", (ev) => onTicket(JSON.parse(ev.data)));
  return source;
}

// The list: new and changed tickets show without a reload (first page only).
function liveList() {
  const table = document.getElementById("tickets");
  if (!table) return;
  let pending = null;
  const reload = async () => {
    const response = await fetch(table.dataset.rows, { credentials: "same-origin" });
    if (!response.ok) return;
    const known = new Set([...table.querySelectorAll("tbody tr")].map((tr) => tr.dataset.ticketId));
    const body = table.querySelector("tbody");
    body.innerHTML = await response.text();
    body.querySelectorAll("tr").forEach((tr) => { if (!known.has(tr.dataset.ticketId)) tr.classList.add("fresh"); });
    localTimes(body);
    const empty = document.getElementById("empty");
    if (empty && body.children.length) { empty.remove(); table.classList.remove("is-empty"); }
  };
  liveStream(() => {
    if (table.dataset.live !== "1") return;
    clearTimeout(pending);
    pending = setTimeout(reload, 150);  // a burst of changes is one reload
  });
}

// The ticket page: a change by someone else is announced; the comment draft survives a reload,
// a failed send and an ended session (kept in this browser until it is sent).
function ticketPage() {
  const head = document.getElementById("ticket");
  if (!head) return;
  const id = Number(head.dataset.ticketId);
  const form = document.getElementById("comment-form");
  const key = form && "hub-draft:" + form.dataset.draft;
  if (form) {
    const body = form.querySelector("textarea[name=body]");
    if (head.dataset.done === "comment") localStorage.removeItem(key);
    const saved = localStorage.getItem(key);
    if (saved && !body.value) {
      body.value = saved;
      document.getElementById("draft-restored").hidden = false;
    }
    body.addEventListener("input", () => localStorage.setItem(key, body.value));
  }
  // What someone else changed (a colleague, the client, a partner) shows in place; the form
  // being written is left alone. A status change also announces itself: the actions offered
  // on this page may be out of date.
  const refresh = async (frame) => {
    const response = await fetch(location.pathname, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const selector of ["#comment-list", "#history", ".facts", "#badges"]) {
      const now = document.querySelector(selector);
      const next = fresh.querySelector(selector);
      if (now && next) { now.replaceWith(next); localTimes(next); }
    }
    if (frame.change === "status") document.getElementById("changed").hidden = false;
  };
  let submitting = false;
  document.querySelectorAll("form").forEach((f) => f.addEventListener("submit", () => { submitting = true; }));
  liveStream((frame) => { if (frame.ticket_id === id && !submitting) refresh(frame); });
}

// The browser's offset from UTC goes with a "pending until" time.
function timeZones() {
  const offset = String(new Date().getTimezoneOffset());
  document.querySelectorAll("input[data-tz-offset]").forEach((el) => { el.value = offset; });
}

// On a phone the filters fold away unless some are in use.
function foldFilters() {
  const box = document.getElementById("filter-box");
  if (box && box.dataset.active !== "1" && matchMedia("(max-width: 760px)").matches) box.open = false;
}

document.addEventListener("DOMContentLoaded", () => {
  foldFilters();
  localTimes(document);
  autosubmit();
  timeZones();
  liveList();
  ticketPage();
});
