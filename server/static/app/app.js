/* dashdesk phone app: a virtual dash button.
 *
 * The phone publishes presses over MQTT over WebSockets exactly as a physical device does
 * (dashdesk/v1/devices/<id>/press, QoS 1, its own event_id per press) and reads its acks and
 * its retained `tickets` topic. A press is written to IndexedDB before it is sent and stays
 * there until the bridge has it (a `queued` or final ack): with no connection it waits and goes
 * out, with the same event_id, when the connection is back. The server counts an event_id once.
 *
 * No build step: plain JavaScript, with MQTT.js vendored in vendor/.
 */
"use strict";

(function () {
  const STORE = { phone: "dashdesk.phone", config: "dashdesk.config", last: "dashdesk.last", seq: "dashdesk.seq" };
  const DB_NAME = "dashdesk-phone";
  const OUTBOX = "outbox";
  // An ack normally comes within 2 s; past this, the press is said to wait for the connection.
  const ACK_PATIENCE_MS = 6000;
  // A second tap of the same button this soon is taken as the same report.
  const REPEAT_TAP_MS = 1200;
  // How often MQTT pings the broker: a connection lost without a word is noticed in 1.5 times this.
  const KEEPALIVE_S = 10;
  // While reports wait, the outbox is looked at this often, and a report the broker has not taken
  // (no PUBACK) this long after it was sent goes again, with the same event_id.
  const PUMP_MS = 2000;
  const RESEND_MS = 10000;
  // "unknown": the server no longer shows this phone the ticket (it stops asking about it).
  const FINAL_STATUSES = ["resolved", "closed", "cancelled", "unknown"];
  // A ticket look-up that failed (no network, the server busy or down) is tried again after this, twice as
  // long each time up to the last.
  const RECHECK_MS = [5000, 10000, 20000, 40000, 60000];
  // "Thank you!" stays this long, then the phone is back to its buttons alone.
  const THANKS_MS = 8000;
  const FADE_MS = 600;

  // ---------------------------------------------------------------- words, in English and Polish

  const TEXT = {
    en: {
      sending: "Sending…",
      saved_offline: "Saved — will send when online",
      saved_offline_detail: "No connection. The report is kept on this phone and goes out by itself.",
      still_sending: "Still sending… saved, will send when the connection is back",
      queued: "Sent — the ticket number follows shortly",
      reported: "Reported — ticket {n}",
      reported_detail: "Help is on its way.",
      merged_detail: "It was already reported: your report was added to it.",
      followed_detail: "Your report {old} is now part of ticket {n}, about the same problem.",
      lost: "Ticket {n}",
      lost_detail: "This phone can no longer follow this report: ask the service desk.",
      reopened: "Reopened — ticket {n}",
      reopened_detail: "The service desk knows it is not fixed.",
      cancelled: "Cancelled — ticket {n} withdrawn",
      cancelled_detail: "Nothing more will happen about this report.",
      withdrawn_mine: "Your report was withdrawn",
      withdrawn_open: "Ticket {n} stays open for its other reports.",
      withdrawn_resolved: "Ticket {n} is resolved again, as it was before your report.",
      not_reported: "Not reported",
      cancel_refused: "Could not cancel",
      progress_new: "Waiting for a technician.",
      progress_in_progress: "A technician is on it.",
      progress_on_hold: "On hold.",
      resolved: "Resolved — ticket {n}",
      closed: "Closed — ticket {n}",
      withdrawn: "Cancelled — ticket {n}",
      ask_working: "Is it working again?",
      yes: "Yes, it works",
      no: "No, still broken",
      thanks: "Thank you!",
      mistake: "I pressed by mistake",
      mistake_left: "{s} s left to cancel",
      cancelling: "Cancelling…",
      urgent: "Urgent",
      hint: "Tap to report a problem. Hold for a second if it is urgent.",
      buttons: "Report a problem",
      online: "Online",
      offline: "Offline — reports are saved",
      connecting: "Connecting…",
      refused: "The broker refused this phone",
      no_broker: "No broker address: ask your admin",
      pending_one: "1 report waiting to be sent",
      pending_many: "{n} reports waiting to be sent",
      not_set_up: "This phone is not set up yet",
      not_set_up_text: "Ask your admin for an enrolment link or QR code, and open it on this phone.",
      enrol_heading: "Set up this phone as a dash button",
      enrol_text: "It will report problems at {site}. The link works once, until {time}.",
      enrol_button: "Set up this phone",
      enrol_already: "This phone is already the button {device}; setting it up again replaces it.",
      setting_up: "Setting up…",
      link_refused: "This link cannot be used",
      enrolment_used: "This enrolment link was already used: a link sets up one phone. Ask your admin for a new one.",
      enrolment_expired: "This enrolment link has expired. Ask your admin for a new one.",
      enrolment_revoked: "This enrolment link was withdrawn. Ask your admin for a new one.",
      enrolment_unknown: "This enrolment link is not valid. Ask your admin for a new one.",
      too_many_requests: "Too many tries from here. Wait a minute, then try again.",
      setup_failed: "The phone could not be set up just now. Try the same link again in a minute.",
      offline_setup: "You are offline. Connect to the network and open the link again.",
      device_retired: "An admin retired this phone: it no longer reports. Ask for a new enrolment link.",
      unauthorized: "This phone's set-up is no longer valid. Open a new enrolment link.",
      no_buttons: "No buttons are mapped to this phone yet. Ask your admin.",
      install: "Add to home screen",
      other_window: "Open in another window",
      other_window_text: "This button is in use in another window or tab of this phone. Close that one and this one takes over by itself, or use it here.",
      use_here: "Use it here",
      // The server's reasons, as it words them (known ones are shown in the phone's language).
      reason_retired: "device retired",
      reason_rejected: "device rejected by an admin",
      reason_not_mapped: "button {button} is not mapped and there is no 'other' category",
      reason_nothing_to_cancel: "nothing to cancel: no report from this device in the last {s} s",
      reason_nothing_to_cancel_button: "nothing to cancel: no report from this button in the last {s} s",
      reason_handled: "the ticket is already being handled; it cannot be cancelled",
    },
    pl: {
      sending: "Wysyłanie…",
      saved_offline: "Zapisano — wyślemy po odzyskaniu połączenia",
      saved_offline_detail: "Brak połączenia. Zgłoszenie czeka w telefonie i zostanie wysłane samo.",
      still_sending: "Nadal wysyłam… zapisano, wyślemy po odzyskaniu połączenia",
      queued: "Wysłano — numer zgłoszenia za chwilę",
      reported: "Przyjęto zgłoszenie {n}",
      reported_detail: "Pomoc jest w drodze.",
      merged_detail: "To już było zgłoszone: dołączyliśmy Twoje zgłoszenie.",
      followed_detail: "Twoje zgłoszenie {old} jest teraz częścią zgłoszenia {n}, dotyczącego tego samego problemu.",
      lost: "Zgłoszenie {n}",
      lost_detail: "Ten telefon nie może już śledzić tego zgłoszenia: zapytaj serwis.",
      reopened: "Otwarto ponownie — zgłoszenie {n}",
      reopened_detail: "Serwis wie, że problem nie został usunięty.",
      cancelled: "Wycofano zgłoszenie {n}",
      cancelled_detail: "Nic więcej nie stanie się w tej sprawie.",
      withdrawn_mine: "Twoje zgłoszenie wycofano",
      withdrawn_open: "Sprawa {n} pozostaje otwarta, bo są też inne zgłoszenia tego problemu.",
      withdrawn_resolved: "Sprawa {n} znów jest rozwiązana, jak przed Twoim zgłoszeniem.",
      not_reported: "Nie zgłoszono",
      cancel_refused: "Nie udało się anulować",
      progress_new: "Czeka na technika.",
      progress_in_progress: "Technik już się tym zajmuje.",
      progress_on_hold: "Wstrzymane.",
      resolved: "Rozwiązane — zgłoszenie {n}",
      closed: "Zamknięte — zgłoszenie {n}",
      withdrawn: "Anulowane — zgłoszenie {n}",
      ask_working: "Czy już działa?",
      yes: "Tak, działa",
      no: "Nie, nadal nie działa",
      thanks: "Dziękujemy!",
      mistake: "To była pomyłka",
      mistake_left: "Zostało {s} s na anulowanie",
      cancelling: "Anulowanie…",
      urgent: "Pilne",
      hint: "Dotknij, aby zgłosić problem. Przytrzymaj sekundę, jeśli to pilne.",
      buttons: "Zgłoś problem",
      online: "Połączono",
      offline: "Brak połączenia — zgłoszenia są zapisywane",
      connecting: "Łączenie…",
      refused: "Broker odrzucił ten telefon",
      no_broker: "Brak adresu brokera: zapytaj administratora",
      pending_one: "1 zgłoszenie czeka na wysłanie",
      pending_many: "Zgłoszenia czekające na wysłanie: {n}",
      not_set_up: "Ten telefon nie jest jeszcze skonfigurowany",
      not_set_up_text: "Poproś administratora o link lub kod QR do rejestracji i otwórz go na tym telefonie.",
      enrol_heading: "Ustaw ten telefon jako przycisk zgłoszeń",
      enrol_text: "Będzie zgłaszać problemy w: {site}. Link działa raz, do {time}.",
      enrol_button: "Skonfiguruj ten telefon",
      enrol_already: "Ten telefon jest już przyciskiem {device}; ponowna konfiguracja go zastąpi.",
      setting_up: "Konfigurowanie…",
      link_refused: "Tego linku nie można użyć",
      enrolment_used: "Ten link został już użyty: jeden link konfiguruje jeden telefon. Poproś administratora o nowy.",
      enrolment_expired: "Ten link wygasł. Poproś administratora o nowy.",
      enrolment_revoked: "Ten link został wycofany. Poproś administratora o nowy.",
      enrolment_unknown: "Ten link jest nieprawidłowy. Poproś administratora o nowy.",
      too_many_requests: "Zbyt wiele prób. Odczekaj minutę i spróbuj ponownie.",
      setup_failed: "Nie udało się teraz skonfigurować telefonu. Otwórz ten sam link ponownie za minutę.",
      offline_setup: "Brak połączenia. Połącz się z siecią i otwórz link ponownie.",
      device_retired: "Administrator wyłączył ten telefon: nie wysyła już zgłoszeń. Poproś o nowy link.",
      unauthorized: "Konfiguracja tego telefonu jest nieaktualna. Otwórz nowy link rejestracji.",
      no_buttons: "Ten telefon nie ma jeszcze przypisanych przycisków. Zapytaj administratora.",
      install: "Dodaj do ekranu głównego",
      other_window: "Otwarte w innym oknie",
      other_window_text: "Ten przycisk działa w innym oknie lub karcie tego telefonu. Zamknij tamto, a to przejmie je samo, albo używaj go tutaj.",
      use_here: "Używaj tutaj",
      reason_retired: "urządzenie wycofane z użytku",
      reason_rejected: "urządzenie odrzucone przez administratora",
      reason_not_mapped: "przycisk {button} nie ma przypisanej kategorii, a kategorii „other” nie ma",
      reason_nothing_to_cancel: "nie ma czego anulować: to urządzenie nic nie zgłosiło w ciągu ostatnich {s} s",
      reason_nothing_to_cancel_button: "nie ma czego anulować: tym przyciskiem nic nie zgłoszono w ciągu ostatnich {s} s",
      reason_handled: "ktoś już zajmuje się tą sprawą; nie można jej anulować",
    },
  };

  // The server's reasons for a refusal that the app knows; any other is shown as the server gave it.
  const REASONS = [
    [/^device retired$/, "reason_retired", []],
    [/^device rejected by an admin$/, "reason_rejected", []],
    [/^button (.+) is not mapped and there is no 'other' category$/, "reason_not_mapped", ["button"]],
    [/^nothing to cancel: no report from this device in the last (\d+(?:\.\d+)?) s$/, "reason_nothing_to_cancel", ["s"]],
    [/^nothing to cancel: no report from this button in the last (\d+(?:\.\d+)?) s$/, "reason_nothing_to_cancel_button", ["s"]],
    [/^the ticket is already being handled; it cannot be cancelled$/, "reason_handled", []],
  ];

  function reasonText(reason) {
    const text = String(reason || "");
    for (const [pattern, key, names] of REASONS) {
      const m = pattern.exec(text);
      if (m) return t(key, Object.fromEntries(names.map((name, i) => [name, m[i + 1]])));
    }
    return text;
  }

  function pickLanguage() {
    const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"]);
    for (const tag of wanted) {
      const base = String(tag || "").toLowerCase().split("-")[0];
      if (TEXT[base]) return base;
    }
    return "en";
  }

  const LANG = pickLanguage();

  function t(key, values) {
    let text = (TEXT[LANG] && TEXT[LANG][key]) || TEXT.en[key] || key;
    for (const [k, v] of Object.entries(values || {})) text = text.split("{" + k + "}").join(String(v));
    return text;
  }

  // ---------------------------------------------------------------- small helpers

  const $ = (id) => document.getElementById(id);

  function load(key) {
    try { return JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { return null; }
  }

  function save(key, value) {
    if (value === null || value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  }

  function uuid4() {
    // crypto.randomUUID needs a secure context; a shop's http:// address is not one.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function nextSeq() {
    const seq = (Number(localStorage.getItem(STORE.seq)) || 0) + 1;
    localStorage.setItem(STORE.seq, String(seq));
    return seq;
  }

  function labelOf(button) {
    const labels = button.labels || {};
    return labels[LANG] || labels.en || button.button;
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  // ---------------------------------------------------------------- IndexedDB: presses not yet handed over

  let dbPromise = null;

  function db() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const open = indexedDB.open(DB_NAME, 1);
        open.onupgradeneeded = () => open.result.createObjectStore(OUTBOX, { keyPath: "event_id" });
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
    }
    return dbPromise;
  }

  async function outbox(mode, work) {
    const database = await db();
    return new Promise((resolve, reject) => {
      const tx = database.transaction(OUTBOX, mode);
      const result = work(tx.objectStore(OUTBOX));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  const outboxPut = (entry) => outbox("readwrite", (s) => s.put(entry));
  const outboxGet = (eventId) => outbox("readonly", (s) => s.get(eventId));
  const outboxDelete = (eventId) => outbox("readwrite", (s) => s.delete(eventId));
  const outboxAll = () => outbox("readonly", (s) => s.getAll());

  // ---------------------------------------------------------------- state

  let phone = load(STORE.phone);          // {device_id, token, credentials}
  let config = load(STORE.config);        // /app/api/config
  let last = load(STORE.last);            // the latest report and what became of it
  let client = null;
  let connState = "starting";
  let ackTimer = null;
  let cancelTimer = null;
  let pumpTimer = null;
  // event_id -> {at, taken}: what this connection has sent, and whether the broker took it (PUBACK).
  const inFlight = new Map();
  const lastTap = {};

  function topic(leaf) {
    return `${config.mqtt.topic_root}/devices/${phone.device_id}/${leaf}`;
  }

  function connected() {
    return Boolean(client && client.connected && navigator.onLine);
  }

  // ---------------------------------------------------------------- what staff see

  function setConn(state) {
    connState = state;
    const node = $("conn");
    node.dataset.state = state;
    node.textContent = t(state === "online" ? "online" : state === "offline" ? "offline" : state === "refused"
      ? "refused" : state === "no_broker" ? "no_broker" : "connecting");
  }

  function showStatus(text, detail, actions, tone) {
    const box = $("status");
    box.hidden = false;
    box.classList.remove("fading");
    box.dataset.tone = tone || "info";
    // What the card is about: the button's category, as the button names it.
    $("status-about").textContent = last ? labelFor(last.button) : "";
    // A ticket number stays on one line ("INC-" at a line's end reads badly).
    const headline = $("status-text");
    const number = /INC-\d+/.exec(text);
    if (number) {
      headline.replaceChildren(text.slice(0, number.index),
                               el("span", { class: "number", text: number[0] }),
                               text.slice(number.index + number[0].length));
    } else {
      headline.textContent = text;
    }
    $("status-detail").textContent = detail || "";
    const holder = $("status-actions");
    holder.replaceChildren(...(actions || []));
  }

  function hideStatus() {
    $("status").hidden = true;
  }

  async function showPending() {
    let waiting = 0;
    try {
      waiting = (await outboxAll()).filter((e) => !e.delivered).length;
    } catch (e) { /* IndexedDB unavailable: nothing to count */ }
    $("pending").textContent = waiting === 0 ? "" : waiting === 1 ? t("pending_one") : t("pending_many", { n: waiting });
    document.body.dataset.pending = String(waiting);
  }

  // How this phone withdraws its last report: a double press of the report's button (which withdraws that
  // button's last report), or else the phone's cancel button (the device's last report); null: it cannot.
  function cancelHow() {
    const own = ((config && config.buttons) || []).find((b) => b.button === last.button);
    return own && own.double_cancels ? { button: own.button, press: "double" } : (config && config.cancel) || null;
  }

  function cancelButton() {
    if (!last || !last.ticket || !["created", "merged", "reopened"].includes(last.result) || !config) return null;
    // Merged by an agent into another ticket: handled, so no longer the phone's to withdraw.
    if (last.followed || !cancelHow()) return null;
    const windowMs = (config.cancel_window_s || 120) * 1000;
    const left = Math.round((last.at + windowMs - Date.now()) / 1000);
    if (left <= 0 || last.status && last.status !== "new" || last.cancelRefused) return null;
    return el("button", { type: "button", class: "mistake", id: "mistake", onclick: cancelLast,
                          "aria-describedby": "mistake-left" },
              [t("mistake"), el("small", { id: "mistake-left", text: t("mistake_left", { s: left }) })]);
  }

  function countDown() {
    // Only the seconds change: the button itself stays, so a tap on it is never lost mid-way.
    const left = Math.round((last.at + (config.cancel_window_s || 120) * 1000 - Date.now()) / 1000);
    const small = $("mistake-left");
    if (left <= 0 || !small) { render(); return; }
    small.textContent = t("mistake_left", { s: left });
  }

  function progressText(status) {
    return status === "in_progress" ? t("progress_in_progress") : status === "on_hold" ? t("progress_on_hold")
      : status === "new" ? t("progress_new") : "";
  }

  let thanksTimer = null;

  function render() {
    clearInterval(cancelTimer);
    clearTimeout(thanksTimer);
    if (!last) { hideStatus(); return; }
    const n = last.ticket ? last.ticket.number : "";
    if (last.cancelling) {
      showStatus(t("cancelling"), connected() ? "" : t("saved_offline_detail"), [], "busy");
    } else if (last.state === "sending") {
      showStatus(t("sending"), "", [], "busy");
    } else if (last.state === "saved") {
      showStatus(t("saved_offline"), t("saved_offline_detail"), [], "waiting");
    } else if (last.state === "slow") {
      showStatus(t("still_sending"), "", [], "waiting");
    } else if (last.state === "queued") {
      showStatus(t("queued"), "", [], "busy");
    } else if (last.state === "rejected") {
      showStatus(t(last.kind === "cancel" ? "cancel_refused" : "not_reported"), reasonText(last.reason), [], "bad");
    } else if (last.state === "cancelled") {
      // What the cancel's answer says became of the ticket: withdrawn with the report, or still there.
      const after = last.withdrawn || "cancelled";
      if (after === "cancelled") showStatus(t("cancelled", { n }), t("cancelled_detail"), [], "info");
      else showStatus(t("withdrawn_mine"), t(after === "resolved" ? "withdrawn_resolved" : "withdrawn_open", { n }), [], "info");
    } else if (last.state === "thanks") {
      showStatus(t("thanks"), "", [], "good");
      const left = (last.thanked_at || 0) + THANKS_MS - Date.now();
      thanksTimer = setTimeout(() => {
        $("status").classList.add("fading");
        thanksTimer = setTimeout(() => { if (last && last.state === "thanks") setLast(null); }, FADE_MS);
      }, Math.max(0, left));
    } else if (last.state === "acked") {
      const status = last.status || "new";
      if (status === "resolved") {
        const actions = last.answered ? [] : [
          el("button", { type: "button", class: "yes", onclick: () => answer(true), text: t("yes") }),
          el("button", { type: "button", class: "no", onclick: () => answer(false), text: t("no") }),
        ];
        showStatus(t("resolved", { n }), last.answered ? "" : t("ask_working"), actions, "good");
      } else if (status === "closed") {
        showStatus(t("closed", { n }), "", [], "info");
      } else if (status === "cancelled") {
        showStatus(t("withdrawn", { n }), "", [], "info");
      } else if (status === "unknown") {
        showStatus(t("lost", { n }), t("lost_detail"), [], "info");
      } else {
        const headline = last.result === "reopened" ? t("reopened", { n }) : t("reported", { n });
        const why = last.followed ? t("followed_detail", { old: last.followed, n })
          : last.result === "merged" && status === "new" ? t("merged_detail")
          : last.result === "reopened" && status === "new" ? t("reopened_detail")
            : status === "new" ? t("reported_detail") : "";
        const detail = [why, progressText(status)].filter(Boolean).join(" ");
        const cancel = cancelButton();
        showStatus(headline, detail, cancel ? [cancel] : [], status === "new" ? "good" : "progress");
        if (cancel) cancelTimer = setInterval(countDown, 1000);
      }
    }
    const status = $("status");
    status.dataset.ticket = n;
    status.dataset.eventId = last.event_id || "";
    status.dataset.ticketStatus = (last.state === "acked" && last.status) || "";
    status.dataset.category = (last.ticket && last.ticket.category) || "";
  }

  function labelFor(buttonId) {
    const b = config && (config.buttons || []).find((x) => x.button === buttonId);
    return b ? labelOf(b) : "";
  }

  function setLast(value) {
    last = value;
    save(STORE.last, last);
    render();
  }

  // ---------------------------------------------------------------- the buttons

  function renderButtons() {
    const grid = $("grid");
    grid.replaceChildren();
    $("buttons").hidden = false;
    $("setup").hidden = true;
    $("buttons-h").textContent = t("buttons");
    $("hint").textContent = t("hint");
    $("site").textContent = config.site ? config.site.name : "";
    $("device").textContent = phone.device_id;
    const buttons = config.buttons || [];
    if (!buttons.length) {
      grid.append(el("p", { class: "empty", text: t("no_buttons") }));
      return;
    }
    for (const b of buttons) {
      const node = el("button", { type: "button", class: "report", "data-button": b.button,
                                  "data-category": b.category, "aria-describedby": "hint" },
                      [el("span", { class: "icon", "aria-hidden": "true", text: b.icon || "" }),
                       el("span", { class: "label", text: labelOf(b) }),
                       el("span", { class: "urgent", "aria-hidden": "true", text: t("urgent") })]);
      holdable(node, b);
      grid.append(node);
    }
  }

  function holdable(node, b) {
    const longMs = (config && config.long_press_ms) || 800;
    let timer = null;
    let fired = false;
    const start = () => {
      fired = false;
      clearTimeout(timer);
      node.classList.add("holding");
      timer = setTimeout(() => {
        fired = true;
        timer = null;
        node.classList.remove("holding");
        node.classList.add("fired");
        setTimeout(() => node.classList.remove("fired"), 600);
        if (navigator.vibrate) navigator.vibrate([40, 60, 40]);
        report(b.button, "long");
      }, longMs);
    };
    const finish = () => {
      node.classList.remove("holding");
      if (timer !== null) {
        clearTimeout(timer);
        timer = null;
        if (!fired) {
          if (navigator.vibrate) navigator.vibrate(30);
          report(b.button, "single");
        }
      }
    };
    const abandon = () => {
      node.classList.remove("holding");
      clearTimeout(timer);
      timer = null;
    };
    node.addEventListener("pointerdown", (e) => {
      if (e.button > 0) return;
      if (node.setPointerCapture) try { node.setPointerCapture(e.pointerId); } catch (err) { /* not capturable */ }
      start();
    });
    node.addEventListener("pointerup", finish);
    node.addEventListener("pointercancel", abandon);
    node.addEventListener("lostpointercapture", () => { if (timer !== null) finish(); });
    node.addEventListener("contextmenu", (e) => e.preventDefault());
    node.addEventListener("keydown", (e) => {
      if ((e.key === "Enter" || e.key === " ") && !e.repeat) { e.preventDefault(); start(); }
    });
    node.addEventListener("keyup", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); finish(); }
    });
  }

  // ---------------------------------------------------------------- presses

  async function telemetry(extra) {
    const out = { reported_at: new Date().toISOString(), app_version: config.app_version || document.body.dataset.version,
                  firmware: "dashdesk-app " + (config.app_version || document.body.dataset.version),
                  user_agent: navigator.userAgent.slice(0, 300), language: navigator.language || "", online: navigator.onLine };
    try {
      if (navigator.getBattery) {
        const battery = await Promise.race([navigator.getBattery(), new Promise((r) => setTimeout(r, 300))]);
        if (battery && typeof battery.level === "number") {
          out.battery_pct = Math.round(battery.level * 100);
          out.charging = Boolean(battery.charging);
        }
      }
    } catch (e) { /* not given by this browser */ }
    const c = navigator.connection;
    if (c) {
      if (c.type) out.network_type = c.type;
      if (c.effectiveType) out.effective_type = c.effectiveType;
      if (typeof c.downlink === "number") out.downlink_mbps = c.downlink;
      if (typeof c.rtt === "number") out.rtt_ms = c.rtt;
    }
    return Object.assign(out, extra || {});
  }

  async function press(button, type, kind, extra) {
    const body = { event_id: uuid4(), device_id: phone.device_id, button, press: type,
                   pressed_at: new Date().toISOString(), seq: nextSeq(), telemetry: await telemetry(extra) };
    const entry = { event_id: body.event_id, body, kind, created: Date.now(), delivered: false };
    // Kept before it is sent: a phone switched off or a page closed now loses nothing.
    await outboxPut(entry);
    return entry;
  }

  async function report(button, type, extra) {
    const now = Date.now();
    if (type === "single" && lastTap[button] && now - lastTap[button] < REPEAT_TAP_MS) return;
    lastTap[button] = now;
    const entry = await press(button, type, "report", extra);
    setLast({ event_id: entry.event_id, button, press: type, kind: "report", state: "sending", at: now });
    send(entry);
  }

  async function cancelLast() {
    if (!last || !last.ticket) return;
    const how = cancelHow();
    if (!how) return;
    clearInterval(cancelTimer);
    const entry = await press(how.button, how.press, "cancel", { cancels: last.event_id });
    // Kept with the report (localStorage): its answer is recognised after a restart too.
    setLast(Object.assign({}, last, { cancelling: entry.event_id }));
    send(entry);
  }

  async function answer(working) {
    if (working) {
      setLast(Object.assign({}, last, { answered: true, state: "thanks", thanked_at: Date.now() }));
      return;
    }
    // A press of the same button within the reopen window reopens the resolved ticket.
    const ticket = last.ticket;
    const entry = await press(last.button, "single", "report",
                              { reason: "not fixed: reported again after it was resolved", reopen_of: ticket.number });
    setLast({ event_id: entry.event_id, button: last.button, press: "single", kind: "report", state: "sending",
              at: Date.now(), previous: ticket.number });
    send(entry);
  }

  function send(entry) {
    showPending();
    if (!connected()) {
      if (last && last.event_id === entry.event_id) setLast(Object.assign({}, last, { state: "saved" }));
      return;
    }
    publish(entry);
    clearTimeout(ackTimer);
    ackTimer = setTimeout(async () => {
      const still = await outboxGet(entry.event_id);
      if (still && !still.delivered && last && last.event_id === entry.event_id && last.state === "sending") {
        setLast(Object.assign({}, last, { state: "slow" }));
      }
    }, ACK_PATIENCE_MS);
  }

  function publish(entry) {
    const sent = { at: Date.now(), taken: false };
    inFlight.set(entry.event_id, sent);
    client.publish(topic("press"), JSON.stringify(entry.body), { qos: 1 }, (err) => {
      if (!err) { sent.taken = true; return; }
      // A refusal (MQTT 5 PUBACK 0x87) or a closed connection: the entry stays in the outbox and goes
      // again, with the same event_id, at the next look while connected.
      console.warn("publish of", entry.event_id, "not confirmed:", err.message || err);
      if (inFlight.get(entry.event_id) === sent) inFlight.delete(entry.event_id);
    });
  }

  // Sends what waits in the outbox and this connection has not sent yet, or sent without the broker
  // taking it within RESEND_MS. Runs on connect, when the network comes back, and every PUMP_MS while
  // reports wait: a connection that never dropped does not hold a report back. The server counts an
  // event_id once, so a press sent twice is still one report.
  let flushing = null;
  function flush() {
    if (!flushing) flushing = flushOnce().finally(() => { flushing = null; });
    return flushing;
  }

  async function flushOnce() {
    let entries = [];
    try { entries = await outboxAll(); } catch (e) { return; }
    entries.sort((a, b) => a.created - b.created);
    for (const entry of entries) {
      if (entry.delivered || !connected()) continue;
      const sent = inFlight.get(entry.event_id);
      if (sent && (sent.taken || Date.now() - sent.at < RESEND_MS)) continue;
      publish(entry);
      if (last && last.event_id === entry.event_id && ["saved", "slow"].includes(last.state)) {
        setLast(Object.assign({}, last, { state: "sending" }));
      }
    }
    await showPending();
  }

  function pump() {
    if (document.body.dataset.pending && document.body.dataset.pending !== "0" && connected()) flush();
  }

  // ---------------------------------------------------------------- acks and ticket progress

  async function onAck(ack) {
    if (!ack || typeof ack !== "object") return;
    const entry = ack.event_id ? await outboxGet(ack.event_id) : null;
    if (ack.result === "queued") {
      // The bridge keeps it now (its durable outbox): never sent again; the final ack follows.
      if (entry) await outboxPut(Object.assign(entry, { delivered: true }));
      if (last && last.event_id === ack.event_id) setLast(Object.assign({}, last, { state: "queued" }));
      showPending();
      return;
    }
    if (entry) await outboxDelete(ack.event_id);
    showPending();
    if (last && ack.event_id && ack.event_id === last.cancelling) {
      if (ack.result === "cancelled") {
        setLast(Object.assign({}, last, { cancelling: null, state: "cancelled", ticket: ack.ticket || last.ticket,
                                          withdrawn: ack.ticket && ack.ticket.status }));
      } else {
        // Refused (too late, or an agent has it already): say why for a while, then back to the ticket,
        // without the offer to cancel that was just refused.
        setLast(Object.assign({}, last, { cancelling: null, kind: "cancel", state: "rejected", reason: ack.reason,
                                          cancelRefused: true }));
        setTimeout(() => {
          if (last && last.state === "rejected" && last.kind === "cancel") {
            setLast(Object.assign({}, last, { state: "acked", kind: "report", reason: null }));
            checkTicket();
          }
        }, 5000);
      }
      return;
    }
    if (!last || ack.event_id !== last.event_id) return;
    // Answered already (the same press sent twice gets two acks): the first one counts.
    if (!["sending", "saved", "slow", "queued"].includes(last.state)) return;
    if (ack.result === "rejected") {
      setLast(Object.assign({}, last, { state: "rejected", reason: ack.reason }));
    } else if (ack.result === "cancelled") {
      setLast(Object.assign({}, last, { state: "cancelled", ticket: ack.ticket, withdrawn: ack.ticket && ack.ticket.status }));
    } else {
      // A second ack for the same press (it went out twice) changes nothing; ``at`` stays the tap's time,
      // from which the server counts the cancel window too.
      setLast(Object.assign({}, last, { state: "acked", result: ack.result, ticket: ack.ticket,
                                         status: ack.ticket && ack.ticket.status, answered: false }));
    }
  }

  function onTickets(payload) {
    if (!last || last.state !== "acked" || !last.ticket) return;
    const listed = ((payload && payload.tickets) || []).find((x) => x.id === last.ticket.id);
    if (listed) {
      if (listed.status !== last.status) setLast(Object.assign({}, last, { status: listed.status }));
    } else if (!FINAL_STATUSES.includes(last.status)) {
      // The topic lists open tickets only: ask the server what became of it.
      checkTicket();
    }
  }

  let recheckTimer = null;
  let recheckStep = 0;

  // What became of the report's ticket, from the server. An agent may have merged it into another ticket
  // (``merged_into``): the report follows it there, as its presses did, and the app asks about that one
  // from then on. An answer that is no answer (offline, the server busy or down) is asked again later;
  // a ticket the server no longer shows this phone ends the wait.
  async function checkTicket() {
    clearTimeout(recheckTimer);
    if (!last || !last.ticket || !phone) return;
    const id = last.ticket.id;
    const same = () => last && last.state === "acked" && last.ticket && last.ticket.id === id;
    let r = null;
    let ticket = null;
    try {
      r = await fetch(`/app/api/tickets/${id}`, { headers: { Authorization: `Bearer ${phone.token}` }, cache: "no-store" });
      ticket = r.ok ? await r.json() : null;
    } catch (e) { r = null; }
    if (!same()) return;
    if (r && (r.status === 401 || r.status === 410)) { refreshConfig(); return; }
    if (r && r.status === 404) {
      recheckStep = 0;
      setLast(Object.assign({}, last, { status: "unknown" }));
      return;
    }
    if (!ticket || typeof ticket.status !== "string") {
      if (!FINAL_STATUSES.includes(last.status)) {
        recheckTimer = setTimeout(checkTicket, RECHECK_MS[Math.min(recheckStep, RECHECK_MS.length - 1)]);
        recheckStep += 1;
      }
      return;
    }
    recheckStep = 0;
    const now = ticket.merged_into && typeof ticket.merged_into.status === "string" ? ticket.merged_into : null;
    if (now) {
      setLast(Object.assign({}, last, { ticket: { id: now.id, number: now.number, status: now.status, category: now.category },
                                         status: now.status, followed: last.followed || ticket.number }));
    } else if (ticket.status !== last.status) {
      setLast(Object.assign({}, last, { status: ticket.status }));
    }
  }

  function onMessage(topicName, payload) {
    let data = null;
    try { data = JSON.parse(new TextDecoder().decode(payload)); } catch (e) { return; }
    if (topicName === topic("ack")) onAck(data);
    else if (topicName === topic("tickets")) onTickets(data);
  }

  // ---------------------------------------------------------------- the broker

  function connect() {
    if (client) { try { client.end(true); } catch (e) { /* already closed */ } client = null; }
    if (!config.mqtt || !config.mqtt.url) { setConn("no_broker"); return; }
    if (typeof mqtt === "undefined") { setConn("offline"); return; }
    setConn(navigator.onLine ? "connecting" : "offline");
    const creds = phone.credentials || {};
    client = mqtt.connect(config.mqtt.url, {
      clientId: phone.device_id,
      username: creds.username || undefined,
      password: creds.password || undefined,
      protocolVersion: config.mqtt.protocol === 4 ? 4 : 5,
      clean: true,
      keepalive: KEEPALIVE_S,
      reconnectPeriod: 2000,
      connectTimeout: 8000,
      resubscribe: false,
      will: { topic: topic("status"), payload: "offline", qos: 1, retain: true },
    });
    client.on("connect", () => {
      setConn("online");
      // A new connection: whatever the last one sent but the bridge has not answered goes again.
      inFlight.clear();
      client.subscribe([topic("ack"), topic("tickets")], { qos: 1 });
      client.publish(topic("status"), "online", { qos: 1, retain: true });
      telemetry().then((snapshot) => {
        if (client && client.connected) client.publish(topic("telemetry"), JSON.stringify(snapshot), { qos: 1, retain: true });
      });
      flush();
      refreshConfig();
      if (last && last.state === "acked" && last.ticket && !FINAL_STATUSES.includes(last.status)) checkTicket();
    });
    client.on("message", onMessage);
    client.on("offline", () => setConn("offline"));
    client.on("close", () => { if (connState !== "refused") setConn(navigator.onLine ? "connecting" : "offline"); });
    client.on("error", (err) => {
      // CONNACK "not authorised" (5 / 0x87): a wrong or withdrawn password. No use retrying fast.
      if (err && (err.code === 5 || err.code === 135 || err.code === 134)) {
        setConn("refused");
        client.options.reconnectPeriod = 30000;
        refreshConfig();
      }
    });
  }

  async function refreshConfig() {
    if (!phone) return;
    try {
      const r = await fetch("/app/api/config", { headers: { Authorization: `Bearer ${phone.token}` }, cache: "no-store" });
      if (r.status === 401 || r.status === 410) {
        const body = await r.json().catch(() => ({}));
        stop(t(body.error && body.error.code === "device_retired" ? "device_retired" : "unauthorized"));
        return;
      }
      if (!r.ok) return;
      const fresh = await r.json();
      const changed = JSON.stringify(fresh.buttons) !== JSON.stringify(config && config.buttons)
        || JSON.stringify(fresh.site) !== JSON.stringify(config && config.site);
      const brokerChanged = JSON.stringify(fresh.mqtt) !== JSON.stringify(config && config.mqtt);
      config = fresh;
      save(STORE.config, config);
      if (changed) renderButtons();
      if (brokerChanged) connect();
    } catch (e) { /* offline: the saved configuration serves */ }
  }

  function stop(message) {
    if (client) { try { client.end(true); } catch (e) { /* closed */ } client = null; }
    clearInterval(pumpTimer);
    $("grid").replaceChildren();
    $("buttons").hidden = true;
    setConn("starting");
    $("conn").textContent = "";
    hideStatus();
    showSetup(t("not_set_up"), message, []);
  }

  // ---------------------------------------------------------------- setting the phone up

  function showSetup(heading, text, actions) {
    $("setup").hidden = false;
    $("buttons").hidden = true;
    $("setup-h").textContent = heading;
    $("setup-text").textContent = text || "";
    $("setup-actions").replaceChildren(...(actions || []));
  }

  function enrolmentInfo() {
    const node = $("enrolment");
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function showEnrolment(info) {
    setConn("starting");
    $("conn").textContent = "";
    if (!info) {
      showSetup(t("not_set_up"), t("offline_setup"), []);
      return;
    }
    if (info.state !== "active") {
      const code = info.error && info.error.code;
      showSetup(t("link_refused"), TEXT.en[code] ? t(code) : (info.error && info.error.message) || "", []);
      $("setup").dataset.state = info.state;
      return;
    }
    const when = new Date(info.expires_at).toLocaleString(LANG === "pl" ? "pl-PL" : "en-GB",
                                                          { dateStyle: "medium", timeStyle: "short" });
    const button = el("button", { type: "button", class: "primary", id: "enrol", text: t("enrol_button") });
    const note = phone ? el("p", { class: "note", text: t("enrol_already", { device: phone.device_id }) }) : null;
    showSetup(t("enrol_heading"), t("enrol_text", { site: info.site.name, time: when }), note ? [note, button] : [button]);
    $("setup").dataset.state = "active";
    button.addEventListener("click", () => enrol(info, button));
  }

  async function enrol(info, button) {
    button.disabled = true;
    button.textContent = t("setting_up");
    let r;
    let body = {};
    try {
      r = await fetch(`/app/enroll/${encodeURIComponent(info.code)}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ language: LANG }),
        cache: "no-store" });
      body = await r.json().catch(() => ({}));
    } catch (e) {
      showSetup(t("link_refused"), t("offline_setup"), []);
      return;
    }
    if (r.status !== 201) {
      const code = body.error && body.error.code;
      const text = TEXT.en[code] ? t(code) : t("setup_failed");
      if (r.status >= 500 || r.status === 429) {
        button.disabled = false;
        button.textContent = t("enrol_button");
        showSetup(t("enrol_heading"), text, [button]);
      } else {
        showSetup(t("link_refused"), text, []);
        $("setup").dataset.state = code || "refused";
      }
      return;
    }
    phone = { device_id: body.device_id, token: body.token, credentials: body.credentials || null,
              enrolled_at: new Date().toISOString() };
    delete body.token;
    delete body.credentials;
    config = body;
    save(STORE.phone, phone);
    save(STORE.config, config);
    save(STORE.last, null);
    last = null;
    history.replaceState(null, "", "/app");
    start();
  }

  // ---------------------------------------------------------------- start

  function registerWorker() {
    if (!("serviceWorker" in navigator)) return;
    navigator.serviceWorker.register(document.body.dataset.sw, { scope: "/app" }).catch((e) => {
      console.warn("no service worker (the app will not open offline):", e.message || e);
    });
  }

  let installPrompt = null;
  window.addEventListener("beforeinstallprompt", (e) => {
    e.preventDefault();
    installPrompt = e;
    const button = el("button", { type: "button", class: "install", text: t("install"), onclick: () => {
      installPrompt.prompt();
      button.remove();
    } });
    document.querySelector(".foot").append(button);
  });

  // One copy of the app connects: the broker knows a device by its client id (its username), and a
  // second connection with it would put the first off, over and over. The copy holding the Web Lock
  // "dashdesk-broker-<device id>" is the one; another copy (the installed app beside a browser tab)
  // says so and takes over by itself when that one closes, or at once with "Use it here". A browser
  // without Web Locks (a page that is not https) connects from every copy, as before.
  let heldLock = null;

  function start() {
    if (!phone || !config) {
      showSetup(t("not_set_up"), t("not_set_up_text"), []);
      return;
    }
    if (!navigator.locks || !navigator.locks.request) { run(); return; }
    const name = `dashdesk-broker-${phone.device_id}`;
    if (heldLock === name) { run(); return; }
    const take = (lock) => {
      if (!lock) {
        showOtherWindow();
        return null;
      }
      heldLock = name;
      // The other copy used the same storage meanwhile: what it left is what this one goes on from.
      phone = load(STORE.phone) || phone;
      config = load(STORE.config) || config;
      last = load(STORE.last);
      run();
      return new Promise(() => {});  // held while this page lives
    };
    const ask = (options, then) => navigator.locks.request(name, options, (lock) => {
      const held = take(lock);
      if (!lock && then) then();
      return held;
    }).catch(() => {
      // Taken over by another copy ("Use it here" there): stand aside and wait for it to close.
      if (heldLock === name) heldLock = null;
      standAside();
      showOtherWindow();
      ask({}, null);
    });
    lockAsk = ask;
    ask({ ifAvailable: true }, () => ask({}, null));
  }

  let lockAsk = null;

  function showOtherWindow() {
    setConn("starting");
    $("conn").textContent = t("other_window");
    hideStatus();
    const here = el("button", { type: "button", class: "primary", id: "use-here", text: t("use_here"),
                                onclick: () => { here.disabled = true; lockAsk({ steal: true }, null); } });
    showSetup(t("other_window"), t("other_window_text"), [here]);
    $("setup").dataset.state = "other-window";
  }

  function standAside() {
    if (client) { try { client.end(true); } catch (e) { /* closed */ } client = null; }
    clearInterval(pumpTimer);
    clearTimeout(ackTimer);
    clearInterval(cancelTimer);
  }

  function run() {
    $("setup").dataset.state = "";
    renderButtons();
    render();
    showPending();
    connect();
    clearInterval(pumpTimer);
    pumpTimer = setInterval(pump, PUMP_MS);
    // Also when the broker refuses the phone: the server says why (retired, set-up undone).
    refreshConfig();
  }

  // MQTT.js reconnects by itself every 2 s; a connection the network lost without a word is
  // noticed by the keepalive (1.5 x KEEPALIVE_S). Until then navigator.onLine says what to do.
  window.addEventListener("online", () => {
    if (!client) return;
    setConn(client.connected ? "online" : "connecting");
    // The connection may have lived through the gap: what waits goes now, not at the next connect.
    if (client.connected) {
      flush();
      if (last && last.state === "acked" && last.ticket && !FINAL_STATUSES.includes(last.status)) checkTicket();
    }
  });
  window.addEventListener("offline", () => setConn("offline"));

  document.documentElement.lang = LANG;
  document.addEventListener("DOMContentLoaded", () => {
    registerWorker();
    if (location.pathname.startsWith("/app/enroll/")) {
      showEnrolment(enrolmentInfo());
      return;
    }
    start();
  });
  // For tests and troubleshooting: what the app holds, read-only.
  window.dashdeskApp = { outboxAll, get last() { return last; }, get phone() { return phone && phone.device_id; },
                         get connected() { return connected(); },
                         get mqttConnected() { return Boolean(client && client.connected); } };
})();
