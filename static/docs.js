// Turnpike API page: renders the OpenAPI document with the vendored Swagger UI. The document is
// served with its servers rewritten to the gateway and the Turnpike key as its security scheme.
(function () {
  "use strict";

  var KEY_STORAGE = "turnpike.tryKey";
  var BEARER_SCHEME = "turnpikeKey";

  function storedKey() {
    try {
      return window.sessionStorage.getItem(KEY_STORAGE);
    } catch (e) {
      return null;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("swagger-ui");
    if (!node || typeof window.SwaggerUIBundle !== "function") return;
    var key = storedKey();
    node.textContent = "";
    var ui = window.SwaggerUIBundle({
      url: node.getAttribute("data-spec-url"),
      domNode: node,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      deepLinking: false,
      docExpansion: "list",
      defaultModelsExpandDepth: 0,
      // No calls to validator.swagger.io: the page loads nothing from elsewhere.
      validatorUrl: null,
      // Never keep keys in localStorage; the tab's sessionStorage is as far as a key goes.
      persistAuthorization: false,
      onComplete: function () {
        if (!key) return;
        ui.preauthorizeApiKey(BEARER_SCHEME, key);
        var ready = document.getElementById("docs-key-ready");
        if (ready) ready.hidden = false;
      }
    });

    var forget = document.getElementById("docs-key-forget");
    if (forget) {
      forget.addEventListener("click", function () {
        try {
          window.sessionStorage.removeItem(KEY_STORAGE);
        } catch (e) {
          // Nothing stored.
        }
        ui.authActions.logout([BEARER_SCHEME]);
        document.getElementById("docs-key-ready").hidden = true;
      });
    }
  });
})();
