// Renders /api/docs with the vendored Swagger UI. A file, not an inline script: the CSP only
// allows scripts from 'self'.
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("swagger-ui");
    if (!root || typeof window.SwaggerUIBundle !== "function") {
      return;
    }
    var meta = document.querySelector('meta[name="turnpike-csrf"]');
    var csrf = meta ? meta.getAttribute("content") : "";
    window.SwaggerUIBundle({
      url: root.getAttribute("data-spec-url"),
      domNode: root,
      deepLinking: true,
      docExpansion: "list",
      defaultModelsExpandDepth: 0,
      tryItOutEnabled: false,
      // Session callers: same-origin cookie plus the session's CSRF token on writes. Calls that
      // carry a bearer token are left alone.
      requestInterceptor: function (req) {
        var method = (req.method || "GET").toUpperCase();
        var hasBearer = req.headers && (req.headers.Authorization || req.headers.authorization);
        if (csrf && !hasBearer && method !== "GET" && method !== "HEAD" && method !== "OPTIONS") {
          req.headers["X-CSRF-Token"] = csrf;
        }
        req.credentials = "same-origin";
        return req;
      },
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
