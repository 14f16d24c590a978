// dashdesk desk: live updates (Server-Sent Events), priority-1 alerts and keyboard shortcuts. No framework.
(function () {
  "use strict";
  var page = document.body.dataset.page;
  // What the desk's tabs of this browser tell each other (live updates below).
  var channel = window.BroadcastChannel && (page === "queue" || page === "ticket") ? new BroadcastChannel("dashdesk.live") : null;
  var live = document.getElementById("live");
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  // Keys typed into a field are text: no single-key shortcut fires while the focus is in one.
  function typing(e) {
    return [e.target, document.activeElement].some(function (t) {
      return t && t.nodeType === 1 && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    }) || e.isComposing;
  }

  function say(html, ms) {
    if (!live) return;
    live.innerHTML = html;
    clearTimeout(say.timer);
    if (ms) say.timer = setTimeout(function () { live.innerHTML = ""; }, ms);
  }

  function escape(text) {
    var d = document.createElement("div");
    d.textContent = text == null ? "" : String(text);
    return d.innerHTML;
  }

  // ------------------------------------------------------------ signed out while the page is open
  // The page stays, and so does whatever was typed in it: a banner says to sign in in another tab, then go on.
  // Every form asks first whether the session still holds (and takes its current form token: a new sign-in
  // changes it), so that a form sent while signed out is not lost on the way to the sign-in page.
  var banner = document.getElementById("signed-out");
  var recheck = null;

  function signedOut(out) {
    if (!banner || banner.hidden === !out) return;
    banner.hidden = !out;
    clearInterval(recheck);
    if (out) recheck = setInterval(checkSession, 5000);
  }

  // true: signed in (the forms now carry the session's token); false: signed out; null: no answer.
  function checkSession() {
    return fetch("/session", {credentials: "same-origin", cache: "no-store"}).then(function (r) {
      if (r.status === 401) { signedOut(true); return false; }
      if (!r.ok) return null;
      var token = r.headers.get("X-CSRF-Token");
      if (token) {
        each(document.querySelectorAll("input[name=csrf_token]"), function (input) { input.value = token; });
        var meta = document.querySelector("meta[name=csrf-token]");
        if (meta) meta.content = token;
      }
      signedOut(false);
      return true;
    }, function () { return null; });
  }

  if (banner) {
    document.addEventListener("submit", function (e) {
      var form = e.target;
      if (e.defaultPrevented || (form.method || "").toLowerCase() !== "post" || form.closest(".who")) return;
      e.preventDefault();
      if (form.dataset.sending) return;
      form.dataset.sending = "1";
      checkSession().then(function (ok) {
        delete form.dataset.sending;
        if (ok === false) { banner.scrollIntoView({block: "nearest"}); return; }
        form.submit();
      });
    });
    document.addEventListener("visibilitychange", function () { if (!document.hidden) checkSession(); });
  }

  // Fetch a fragment of this page and hand it to apply(); one at a time, a burst of events costs one fetch.
  function refresher(url, apply) {
    var busy = false, again = false, pending = null;
    function now() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (r) {
          if (r.status === 401) { signedOut(true); throw new Error("signed out"); }
          if (!r.ok) throw new Error(r.status);
          signedOut(false);
          return r.text();
        })
        .then(apply)
        .catch(function () {})
        .then(function () { busy = false; if (again) { again = false; now(); } });
    }
    now.soon = function () { if (!pending) pending = setTimeout(function () { pending = null; now(); }, 100); };
    return now;
  }

  // ------------------------------------------------------------ the queue
  var table = document.getElementById("queue-table");
  var selectedId = null;
  // The priority of each ticket as the page last heard it: a merged press that raises one to P1 alerts too.
  // Learnt from the table as the page loads, then from the events alone: a refreshed table may already
  // show what an event on its way has yet to tell.
  var known = {};

  function rows() { return table ? Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-id]")) : []; }
  function selectedRow() { return rows().filter(function (r) { return r.dataset.id === selectedId; })[0] || null; }
  function learnPriorities() {
    rows().forEach(function (r) { var m = /\bprio-(\d)\b/.exec(r.className); if (m) known[r.dataset.id] = +m[1]; });
  }

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

  var refreshQueue = table && refresher(table.dataset.partial, function (html) {
    table.innerHTML = html;
    var row = selectedRow();
    if (row) row.setAttribute("aria-selected", "true");
    table.dataset.updated = String(Date.now());
  });

  if (table) {
    learnPriorities();
    table.addEventListener("click", function (e) {
      var row = e.target.closest("tr[data-id]");
      if (row && !e.target.closest("a, button")) select(row, false);
    });
    // The SLA column counts down: refresh now and then even without news.
    setInterval(refreshQueue, 30000);
  }

  // ------------------------------------------------------------ priority-1 alerts (the queue)
  // Opt-in: "P1 alerts" asks for the browser's permission to notify (it must come from a click), "Sound" adds
  // a beep. Both choices stay in localStorage, per browser.
  var alertsBox = document.getElementById("alerts");
  var alertsButton = document.getElementById("alerts-toggle");
  var soundButton = document.getElementById("sound-toggle");
  var alertsNote = document.getElementById("alerts-note");
  var audio = null;

  function stored(key, fallback) {
    try { var v = localStorage.getItem(key); return v === null ? fallback : v === "on"; } catch (e) { return fallback; }
  }
  function store(key, on) { try { localStorage.setItem(key, on ? "on" : "off"); } catch (e) { /* private mode */ } }
  function alertsOn() { return stored("dashdesk.alerts", false); }
  function soundOn() { return stored("dashdesk.sound", true); }
  function permission() { return window.Notification ? Notification.permission : "unsupported"; }

  function showAlertState() {
    if (!alertsBox) return;
    alertsBox.dataset.alerts = alertsOn() ? "on" : "off";
    [[alertsButton, alertsOn()], [soundButton, soundOn()]].forEach(function (pair) {
      pair[0].setAttribute("aria-pressed", pair[1] ? "true" : "false");
      pair[0].querySelector(".state").textContent = pair[1] ? "on" : "off";
    });
    var p = permission(), note = "";
    if (alertsOn() && p === "denied") note = "Notifications are blocked for this site in the browser's settings.";
    else if (alertsOn() && p === "unsupported") note = "This browser cannot show notifications.";
    else if (alertsOn() && p === "default") note = "Turn P1 alerts off and on to allow notifications.";
    alertsNote.textContent = note;
  }

  // The page may only start sound after a click or key press on it: make (or wake) the audio then.
  function wakeAudio() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!audio) { try { audio = new Ctx(); } catch (e) { return null; } }
    if (audio.state === "suspended" && audio.resume) audio.resume().catch(function () {});
    return audio;
  }

  function beep() {
    var ctx = wakeAudio();
    if (!ctx) return;
    // Two short high tones: noticeable across a room, over before anyone has to look for the tab.
    [0, 0.22].forEach(function (at) {
      var osc = ctx.createOscillator(), gain = ctx.createGain(), t0 = ctx.currentTime + at;
      osc.type = "sine";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, t0);
      gain.gain.exponentialRampToValueAtTime(0.3, t0 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.18);
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(t0);
      osc.stop(t0 + 0.2);
    });
  }

  function notify(d) {
    var url = "/tickets/" + d.ticket_id;
    say('New priority-1 ticket <a href="' + url + '">' + escape(d.number) + "</a>: " + escape(d.title), 15000);
    if (permission() === "granted") {
      try {
        var n = new Notification("P1 ticket " + d.number, {body: d.title || "", tag: "dashdesk-" + d.ticket_id});
        n.onclick = function () { window.focus(); location.href = url; n.close(); };
      } catch (e) { /* a browser that only notifies from a service worker: the page's message remains */ }
    }
    if (soundOn()) beep();
  }

  // A new priority-1 ticket: created or reopened at P1, or raised to P1 by an agent or a long press.
  // Never a test ticket (a device in test mode): the stream marks each of its events "test".
  function newP1(d) {
    if (d.priority !== 1 || d.test) return false;
    if (d.kind === "ticket.created" || d.kind === "ticket.reopened") return true;
    if (d.kind === "ticket.updated") return d.priority_was !== undefined && d.priority_was !== 1;
    if (d.kind === "ticket.merged") return known[d.ticket_id] !== undefined && known[d.ticket_id] !== 1;
    return false;
  }

  // Every open queue page of the browser hears each event: one of them alerts, the others stay quiet. Web Locks
  // pick it (the lock stays taken a minute); without them, each waits a moment and the first tells the others.
  var alerted = {};
  function alertOnce(eventId, fn) {
    if (navigator.locks) {
      navigator.locks.request("dashdesk.alert." + eventId, {ifAvailable: true}, function (lock) {
        if (!lock) return null;
        fn();
        return new Promise(function (done) { setTimeout(done, 60000); });
      });
      return;
    }
    setTimeout(function () {
      if (alerted[eventId]) return;
      alerted[eventId] = true;
      if (channel) channel.postMessage({t: "alerted", id: eventId});
      fn();
    }, Math.random() * 300);
  }

  function onQueueEvent(d) {
    if (d.ticket_id == null) return;
    if (newP1(d) && alertsOn()) alertOnce(d.id, function () { notify(d); });
    if (d.priority) known[d.ticket_id] = d.priority;
  }

  if (alertsBox && page === "queue") {
    alertsBox.hidden = false;
    alertsButton.addEventListener("click", function () {
      var on = !alertsOn();
      store("dashdesk.alerts", on);
      if (on) {
        wakeAudio();
        if (permission() === "default") {
          Notification.requestPermission().then(showAlertState, showAlertState);
        }
      }
      showAlertState();
      say(on ? "P1 alerts are on." : "P1 alerts are off.", 4000);
    });
    soundButton.addEventListener("click", function () {
      var on = !soundOn();
      store("dashdesk.sound", on);
      showAlertState();
      if (on) beep();  // what a new P1 ticket will sound like
    });
    // Another tab of the desk changed the choice.
    window.addEventListener("storage", function (e) { if (/^dashdesk\./.test(e.key || "")) showAlertState(); });
    ["pointerdown", "keydown"].forEach(function (type) {
      document.addEventListener(type, function () { if (alertsOn() && soundOn()) wakeAudio(); }, {once: true});
    });
    showAlertState();
  }

  // ------------------------------------------------------------ the ticket page, live
  var ticketEl = document.querySelector("article[data-ticket-id]");

  // Has the agent typed or chosen something in this form block that is not sent yet?
  function changed(el) {
    if (el.tagName === "SELECT") {
      // Unchanged: the option the page gave selected, or (none given) the first one.
      var given = Array.prototype.filter.call(el.options, function (o) { return o.defaultSelected; })[0];
      return el.selectedIndex !== (given ? given.index : 0);
    }
    return el.value !== el.defaultValue;
  }
  function unsent(block) {
    return Array.prototype.some.call(block.querySelectorAll("textarea, input:not([type=hidden]), select"), changed);
  }

  // A select follows the ticket (assignee, priority) unless the agent has chosen something else in it.
  function follow(selectEl, value) {
    if (!selectEl) return;
    var mine = changed(selectEl);
    each(selectEl.options, function (o) { o.defaultSelected = o.value === value; });
    if (!mine) selectEl.value = value;
  }

  // Show the forms the ticket takes now; one it no longer takes but that holds unsent text stays, its button off.
  function showForms(state) {
    var allowed = (state.dataset.forms || "").split(" ");
    each(document.querySelectorAll("[data-form]"), function (block) {
      var ok = allowed.indexOf(block.dataset.form) >= 0;
      var stale = block.querySelector(".stale");
      var submit = block.querySelector("button[type=submit]");
      if (ok) {
        block.hidden = false;
        if (stale) stale.remove();
        if (submit) submit.disabled = false;
      } else if (!block.hidden && unsent(block)) {
        if (!stale) {
          stale = document.createElement("p");
          stale.className = "stale";
          if (submit) submit.parentNode.insertBefore(stale, submit); else block.appendChild(stale);
        }
        stale.textContent = "The ticket is " + state.dataset.statusLabel.toLowerCase() +
          " now: this can no longer be sent. What you typed stays here.";
        if (submit) submit.disabled = true;
      } else {
        block.hidden = true;
      }
    });
    follow(document.getElementById("assignee-select"), state.dataset.assignee);
    follow(document.getElementById("priority-select"), state.dataset.priority);
  }

  // Where the focus was, to put it back on the new version of the same control.
  function focusKey(el) {
    if (el.id) return "#" + el.id;
    var form = el.closest("form[id]");
    return form ? "#" + form.id + " " + el.tagName.toLowerCase() : null;
  }

  function applyTicket(html) {
    var fresh = document.createElement("template");
    fresh.innerHTML = html;
    var focused = document.activeElement, refocus = null;
    each(fresh.content.querySelectorAll("[data-region]"), function (part) {
      var old = document.querySelector('[data-region="' + part.dataset.region + '"]');
      if (!old) return;
      if (focused && focused !== document.body && old.contains(focused)) refocus = focusKey(focused);
      // A confirmation the agent opened stays open.
      each(old.querySelectorAll("details[id][open]"), function (d) {
        var again = part.querySelector("#" + d.id);
        if (again) again.open = true;
      });
      old.replaceWith(part);
    });
    if (refocus) { var el = document.querySelector(refocus); if (el) el.focus({preventScroll: true}); }
    var state = document.getElementById("ticket-state");
    if (state) showForms(state);
    ticketEl.dataset.updated = String(Date.now());
  }

  var refreshTicket = ticketEl && refresher(ticketEl.dataset.partial, applyTicket);
  if (ticketEl) setInterval(refreshTicket, 30000);  // the SLA counts down

  // ------------------------------------------------------------ live updates, one stream for all the desk's tabs
  // A browser opens at most six connections to one server (HTTP/1.1), and a stream holds one for as long as it
  // is open: a stream per tab would leave the seventh tab, and every form sent, waiting. So one tab of the
  // browser, the leader, holds the stream and passes each event on to the others (BroadcastChannel); when it
  // closes, another takes over from the last event it passed on. The leader is the holder of a Web Lock, or
  // where the browser has none (an http page away from the server's machine), the tabs agree on it over the
  // channel: the oldest tab that answers leads.
  function onEvent(data) {
    if (page === "queue") {
      onQueueEvent(data);
      if (refreshQueue) refreshQueue.soon();
    } else if (ticketEl && String(data.ticket_id) === ticketEl.dataset.ticketId) {
      refreshTicket.soon();
      say("This ticket was updated.", 5000);
    }
  }

  function startLive() {
    var me = String(Date.now() + 1e13) + Math.random().toString(36).slice(2, 10);  // older tabs sort first
    var es = null, leading = false, heard = false, lastId = 0, retry = null;

    function post(message) { if (channel) channel.postMessage(message); }
    function state(s) {
      document.body.dataset.live = s;
      if (leading) post({t: "state", state: s, last: lastId});
    }
    function handle(data) {
      if (typeof data.id !== "number" || data.id <= lastId) return;  // seen already (two leaders for a moment)
      lastId = data.id;
      onEvent(data);
    }
    function open() {
      if (es || !leading) return;
      es = new EventSource("/events/stream" + (lastId ? "?after=" + lastId : ""));
      es.onopen = function () { state("on"); };
      es.onerror = function () {
        state("reconnecting");
        if (es && es.readyState === EventSource.CLOSED) {  // refused, not dropped: try again in a while
          es = null;
          state("off");
          checkSession();
          clearTimeout(retry);
          retry = setTimeout(open, 10000);
        }
      };
      es.addEventListener("ticket", function (e) {
        var data;
        try { data = JSON.parse(e.data); } catch (err) { return; }
        if (typeof data.id !== "number" || data.id <= lastId) return;
        post({t: "event", data: data});
        handle(data);
      });
    }
    function lead() {
      if (leading) return;
      leading = true;
      post({t: "leader", id: me, state: document.body.dataset.live || "", last: lastId});
      open();
    }
    function stepDown() {
      leading = false;
      clearTimeout(retry);
      if (es) { es.close(); es = null; }
    }
    // Without Web Locks: ask who leads; nobody answering in a while, lead.
    function ask() {
      heard = false;
      post({t: "who"});
      setTimeout(function () { if (!heard && !leading) lead(); }, 400 + Math.random() * 400);
    }

    if (channel) {
      channel.onmessage = function (m) {
        var d = m.data || {};
        if (d.t === "event") { heard = true; if (!leading) handle(d.data || {}); }
        else if (d.t === "state") {
          heard = true;
          if (!leading) document.body.dataset.live = d.state;
          if (d.state === "off") checkSession();  // the stream was refused: signed out?
        }
        else if (d.t === "alerted") { alerted[d.id] = true; }
        else if (d.t === "who") { if (leading) post({t: "leader", id: me, state: document.body.dataset.live || "", last: lastId}); }
        else if (d.t === "leader") {
          heard = true;
          if (leading && d.id < me) stepDown();  // two leaders: the older one goes on
          else if (leading) { post({t: "leader", id: me, state: document.body.dataset.live || "", last: lastId}); return; }
          if (d.state) document.body.dataset.live = d.state;
          if (d.last > lastId) lastId = d.last;  // what came before this page was loaded is in it already
        } else if (d.t === "bye" && !leading && !navigator.locks) {
          if (d.last > lastId) lastId = d.last;
          ask();
        }
      };
    }
    if (channel && navigator.locks) {
      // Held until the page goes; the browser then hands it to the next tab that asked.
      navigator.locks.request("dashdesk.live", function () { lead(); return new Promise(function () {}); });
      post({t: "who"});
    } else if (channel) {
      ask();
      setInterval(function () { if (!leading) ask(); }, 20000);  // a leader that went without a word
    } else {
      lead();  // nobody to share with
    }
    window.addEventListener("pagehide", function () {
      if (leading) { post({t: "bye", id: me, last: lastId}); stepDown(); }
    });
  }

  if (window.EventSource && (page === "queue" || page === "ticket")) startLive();

  // ------------------------------------------------------------ keys
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    var row;
    if (page === "queue") {
      if (e.key === "j") { move(1); e.preventDefault(); }
      else if (e.key === "k") { move(-1); e.preventDefault(); }
      else if (e.key === "Enter" && (row = selectedRow()) && !e.target.closest("a, button")) { location.href = row.dataset.href; }
      else if (e.key === "a" && (row = selectedRow())) {
        var take = row.querySelector("form.take"); if (take) { e.preventDefault(); send(take); }
      } else if (e.key === "r" && (row = selectedRow())) { location.href = row.dataset.href + "#resolve"; }
    } else if (page === "ticket") {
      if (e.key === "a") { var f = document.getElementById("take-form"); if (f) { e.preventDefault(); send(f); } }
      else if (e.key === "r") { if (openResolve()) e.preventDefault(); }
    }
  });

  // As its button would: through the submit event (and so the check above).
  function send(form) { if (form.requestSubmit) form.requestSubmit(); else form.submit(); }

  function openResolve() {
    var d = document.getElementById("resolve-box");
    if (!d || d.hidden) return false;
    d.open = true;
    var t = document.getElementById("resolution");
    if (t) t.focus();
    return true;
  }
  // The queue's r key: the ticket opens at #resolve (no element has that id, so the browser leaves the focus be).
  if (page === "ticket" && location.hash === "#resolve") openResolve();
})();
