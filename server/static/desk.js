// dashdesk desk: live updates (Server-Sent Events) and keyboard shortcuts. No framework.
(function () {
  "use strict";
  var page = document.body.dataset.page;
  var live = document.getElementById("live");

  function typing(e) {
    var t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  // ------------------------------------------------------------ the queue
  var table = document.getElementById("queue-table");
  var selectedId = null;

  function rows() { return table ? Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-id]")) : []; }
  function selectedRow() { return rows().filter(function (r) { return r.dataset.id === selectedId; })[0] || null; }

  function select(row, scroll) {
    rows().forEach(function (r) { r.setAttribute("aria-selected", r === row ? "true" : "false"); });
    selectedId = row ? row.dataset.id : null;
    if (row && scroll) { row.scrollIntoView({block: "nearest"}); var link = row.querySelector("a"); if (link) link.focus(); }
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var i = all.indexOf(selectedRow());
    i = i < 0 ? 0 : Math.max(0, Math.min(all.length - 1, i + step));
    select(all[i], true);
  }

  var refreshing = false, again = false;
  function refresh() {
    if (!table) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(table.dataset.partial, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) {
        if (r.status === 401) { location.reload(); throw new Error("signed out"); }
        if (!r.ok) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        table.innerHTML = html;
        var row = selectedRow();
        if (row) row.setAttribute("aria-selected", "true");
        table.dataset.updated = String(Date.now());
      })
      .catch(function () {})
      .then(function () { refreshing = false; if (again) { again = false; refresh(); } });
  }

  var pending = null;
  function soon() { if (!pending) pending = setTimeout(function () { pending = null; refresh(); }, 100); }

  if (table) {
    table.addEventListener("click", function (e) {
      var row = e.target.closest("tr[data-id]");
      if (row && !e.target.closest("a, button")) select(row, false);
    });
    // The SLA column counts down: refresh now and then even without news.
    setInterval(refresh, 30000);
  }

  // ------------------------------------------------------------ live updates
  if (window.EventSource && (page === "queue" || page === "ticket")) {
    var ticketEl = document.querySelector("[data-ticket-id]");
    var es = new EventSource("/events/stream");
    es.onopen = function () { document.body.dataset.live = "on"; };
    es.onerror = function () { document.body.dataset.live = "reconnecting"; };
    es.addEventListener("ticket", function (e) {
      var data = {};
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (page === "queue") { soon(); }
      else if (ticketEl && String(data.ticket_id) === ticketEl.dataset.ticketId && live && !live.firstChild) {
        live.innerHTML = 'This ticket has changed. <a href="">Reload</a>';
      }
    });
  }

  // ------------------------------------------------------------ keys
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    var row;
    if (page === "queue") {
      if (e.key === "j") { move(1); e.preventDefault(); }
      else if (e.key === "k") { move(-1); e.preventDefault(); }
      else if (e.key === "Enter" && (row = selectedRow()) && !e.target.closest("a, button")) { location.href = row.dataset.href; }
      else if (e.key === "a" && (row = selectedRow())) {
        var take = row.querySelector("form.take"); if (take) { e.preventDefault(); take.submit(); }
      } else if (e.key === "r" && (row = selectedRow())) { location.href = row.dataset.href + "#resolve"; }
    } else if (page === "ticket") {
      if (e.key === "a") { var f = document.getElementById("take-form"); if (f) { e.preventDefault(); f.submit(); } }
      else if (e.key === "r") { if (openResolve()) e.preventDefault(); }
    }
  });

  function openResolve() {
    var d = document.getElementById("resolve");
    if (!d) return false;
    d.open = true;
    var t = document.getElementById("resolution");
    if (t) t.focus();
    return true;
  }
  if (page === "ticket" && location.hash === "#resolve") openResolve();
})();
