// Turnpike portal: progressive enhancements only. Every page works without this script.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="element-id" hidden>. Shown only when the clipboard API exists.
  function setupCopy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target || !navigator.clipboard) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent).then(function () {
        button.textContent = "Copied";
        button.classList.add("is-copied");
        setTimeout(function () {
          button.textContent = label;
          button.classList.remove("is-copied");
        }, 2000);
      }, function () {
        // Clipboard refused (permissions): select the text so Ctrl/Cmd+C works.
        var range = document.createRange();
        range.selectNodeContents(target);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      });
    });
  }

  // Destructive forms: <form data-confirm="Are you sure?">.
  function setupConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  }

  // "Try it in the docs": <a data-try-key="element-id">. Keeps the just-created key in this tab's
  // sessionStorage (never sent to the portal) so the docs page can pre-authorize Swagger UI.
  function setupTryKey(link) {
    link.addEventListener("click", function () {
      var source = document.getElementById(link.getAttribute("data-try-key"));
      try {
        if (source) window.sessionStorage.setItem("turnpike.tryKey", source.textContent.trim());
      } catch (e) {
        // Storage disabled: the docs page still works; the key is pasted into Authorize instead.
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(setupCopy);
    document.querySelectorAll("a[data-try-key]").forEach(setupTryKey);
    document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  });
})();
