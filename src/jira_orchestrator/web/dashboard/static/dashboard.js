// The dashboard works without this file; with it, pages update live from /api/events
// (server-sent events). Values from the server are only ever set as text, never as HTML.
"use strict";

(function () {
  function cell(text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function badge(value) {
    var span = document.createElement("span");
    var text = value == null || value === "" ? "–" : String(value);
    span.className = "badge b-" + (value ? String(value).toLowerCase().replace(/[^a-z0-9-]/g, "-") : "none");
    span.textContent = text;
    return span;
  }

  function percent(value) {
    return value == null ? "–" : Math.round(value * 100) + "%";
  }

  function pluginCells(p) {
    var success = percent(p.successRate);
    if (p.completed || p.failed) success += " (" + p.completed + "/" + (p.completed + p.failed) + ")";
    return {
      status: badge(p.status),
      health: badge(p.health),
      breaker: badge(p.breaker),
      inFlight: String(p.inFlight),
      successRate: success,
      p50Ms: p.p50Ms == null ? "–" : p.p50Ms.toFixed(1) + " ms",
      lastSeen: p.lastSeen ? p.lastSeen.replace("T", " ").slice(0, 19) : "never",
    };
  }

  function onPlugin(p) {
    var table = document.getElementById("plugins");
    if (!table) return;
    var body = table.tBodies[0];
    var row = null;
    for (var i = 0; i < body.rows.length; i++) {
      if (body.rows[i].dataset.plugin === p.id) row = body.rows[i];
    }
    var values = pluginCells(p);
    if (!row) {
      var empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      row = document.createElement("tr");
      row.dataset.plugin = p.id;
      row.appendChild(cell(p.id, "name"));
      ["status", "health", "breaker", "inFlight", "successRate", "p50Ms", "lastSeen"].forEach(function (field) {
        var td = cell("", /inFlight|successRate|p50Ms/.test(field) ? "num" : "");
        td.dataset.field = field;
        row.appendChild(td);
      });
      body.appendChild(row);
    }
    Object.keys(values).forEach(function (field) {
      var td = row.querySelector('[data-field="' + field + '"]');
      if (!td) return;
      td.textContent = "";
      if (values[field] instanceof Node) td.appendChild(values[field]);
      else td.textContent = values[field];
    });
    row.classList.remove("flash-row");
    void row.offsetWidth;
    row.classList.add("flash-row");
  }

  function onDecision(d) {
    var table = document.getElementById("decisions");
    if (!table || table.dataset.feed !== "on" || /[?&]below=/.test(location.search)) return;
    var body = table.tBodies[0];
    var empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    var row = document.createElement("tr");
    row.dataset.id = d.id;
    row.className = "new flash-row";
    row.appendChild(cell(d.createdAt ? d.createdAt.replace("T", " ").slice(0, 19) : "", "when"));
    var link = document.createElement("a");
    link.href = "/decisions/" + encodeURIComponent(d.id);
    link.textContent = d.id;
    var idCell = document.createElement("td");
    idCell.appendChild(link);
    row.appendChild(idCell);
    row.appendChild(cell(d.text || "", "text"));
    row.appendChild(cell(d.primaryPlugin || "none"));
    row.appendChild(cell(percent(d.confidence), "num"));
    row.appendChild(cell((d.fallbackPlugins || []).join(", ")));
    row.appendChild(cell(""));
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
    // The event carries no request text: the stored decision has it.
    fetch("/api/decisions/" + encodeURIComponent(d.id), { headers: { accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (stored) {
        if (!stored) return;
        row.cells[2].textContent = stored.text || "";
        row.cells[6].textContent = stored.correctedTo || "";
      })
      .catch(function () {});
  }

  function onDeadLetter(letter) {
    var table = document.getElementById("letters");
    if (!table) return;
    var notice = document.getElementById("new-letters");
    if (!notice) {
      notice = document.createElement("p");
      notice.id = "new-letters";
      notice.className = "flash";
      notice.dataset.count = "0";
      var link = document.createElement("a");
      link.href = location.pathname + location.search;
      notice.appendChild(link);
      table.parentNode.insertBefore(notice, table);
    }
    var count = Number(notice.dataset.count) + 1;
    notice.dataset.count = String(count);
    notice.firstChild.textContent = count + " new dead letter(s) — reload";
  }

  function connect() {
    if (document.body.dataset.live !== "on" || !window.EventSource) return;
    var status = document.getElementById("live-status");
    var source = new EventSource("/api/events");
    source.addEventListener("open", function () { if (status) status.hidden = false; });
    source.addEventListener("error", function () { if (status) status.hidden = true; });
    source.addEventListener("plugin", function (e) { onPlugin(JSON.parse(e.data)); });
    source.addEventListener("decision", function (e) { onDecision(JSON.parse(e.data)); });
    source.addEventListener("dead-letter", function (e) { onDeadLetter(JSON.parse(e.data)); });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function confirmDangerous() {
    document.querySelectorAll("button.danger").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm("Delete? This cannot be undone.")) event.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    confirmDangerous();
  });
})();
