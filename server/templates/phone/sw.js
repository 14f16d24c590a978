/* dashdesk phone app: service worker (scope /app). Keeps the app shell so the app opens with no
   network; presses made offline wait in IndexedDB (app.js), not here.
   Version {{ version }}: a new version of any file of the app makes a new worker and a new cache. */
"use strict";

const CACHE = "dashdesk-app-{{ version }}";
const SHELL = {{ shell|safe }};
const APP_PAGE = SHELL[0];
// The network gets this long to answer for the app page before the cached copy is used.
const NETWORK_TIMEOUT_MS = 3000;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("dashdesk-app-") && k !== CACHE)
        .map((k) => caches.delete(k))))
      .then(() => self.clients.claim()));
});

function networkFirst(request, fallbackUrl) {
  return new Promise((resolve) => {
    let settled = false;
    const useCache = () => {
      if (settled) return;
      settled = true;
      resolve(caches.match(fallbackUrl || request, { ignoreSearch: !fallbackUrl }).then(
        (hit) => hit || new Response("Offline", { status: 503, headers: { "Content-Type": "text/plain" } })));
    };
    const timer = setTimeout(useCache, NETWORK_TIMEOUT_MS);
    fetch(request).then((response) => {
      clearTimeout(timer);
      if (settled) return;
      if (response.ok && !fallbackUrl) {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(request, copy));
      }
      if (!response.ok && response.status >= 500) { useCache(); return; }
      settled = true;
      resolve(response);
    }).catch(() => { clearTimeout(timer); useCache(); });
  });
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const path = url.pathname;
  // The phone's own API and the QR codes: always the network, never a stale answer.
  if (path.startsWith("/app/api/") || path.endsWith("/qr.svg")) return;
  if (path === APP_PAGE) {
    event.respondWith(networkFirst(request));
    return;
  }
  if (path.startsWith("/app/enroll/")) {
    // A set-up link opened offline: the app itself, which says to try again online.
    event.respondWith(fetch(request).catch(() => caches.match(APP_PAGE)));
    return;
  }
  if (path.startsWith("/app/")) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
  }
});
