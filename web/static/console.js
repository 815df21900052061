// Staff console: a live board (server-sent events) and "Add approver" on the new-approval form.
// Everything works without this file; it only adds the live refresh and the tidier form.
"use strict";

function liveBoard() {
  const table = document.querySelector("table[data-live]");
  if (!table || !window.EventSource) return;
  const rows = new Map();
  for (const row of table.querySelectorAll("tr[data-approval-id]")) rows.set(row.dataset.approvalId, row);
  if (!rows.size) return;
  const note = document.getElementById("live-note");
  const source = new EventSource("/staff/events?ids=" + [...rows.keys()].join(","));
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    const row = rows.get(String(data.id));
    if (!row) return;
    const cell = row.querySelector("[data-status-for]");
    const badge = cell.querySelector(".badge");
    if (badge.textContent === data.label) return;
    badge.textContent = data.label;
    badge.className = "badge fresh badge-" + data.status;
    if (note) note.textContent = row.dataset.number + " is now " + data.label + ".";
  });
}

function addApprover() {
  const button = document.getElementById("add-approver");
  if (!button) return;
  const hidden = [...document.querySelectorAll(".approver:not([data-keep])")];
  if (!hidden.length) return;
  for (const row of hidden) row.hidden = true;
  button.hidden = false;
  button.addEventListener("click", () => {
    const next = hidden.shift();
    if (next) {
      next.hidden = false;
      next.querySelector("input").focus();
    }
    if (!hidden.length) button.hidden = true;
  });
}

liveBoard();
addApprover();
