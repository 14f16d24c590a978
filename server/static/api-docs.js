// /api/v1/docs: Swagger UI (vendored, static/swagger_ui/) on the server's OpenAPI document. A file of its own,
// not an inline script, so that the page runs under the Content-Security-Policy of every page (script-src 'self').
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || !window.SwaggerUIBundle) return;
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // No badge from the online validator: the page asks nothing of other servers.
    validatorUrl: null
  });
})();
