/* KiwiWhale — small progressive enhancements for every page. The pages work without it. */
(function () {
  "use strict";

  var root = document.documentElement;
  var THEME_KEY = "kw-theme";

  function effectiveTheme() {
    var chosen = root.getAttribute("data-theme");
    if (chosen === "dark" || chosen === "light") return chosen;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function labelThemeToggle(button) {
    var next = effectiveTheme() === "dark" ? "light" : "dark";
    button.setAttribute("aria-label", "Switch to " + next + " theme");
    button.setAttribute("title", "Switch to " + next + " theme");
  }

  /* A "Print" link (the receipt): no inline handler, the Content-Security-Policy runs no inline code. */
  document.querySelectorAll("[data-print]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      window.print();
    });
  });

  /* Theme: the OS setting until the visitor picks one; the choice is kept in localStorage. */
  document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
    labelThemeToggle(button);
    button.addEventListener("click", function () {
      var next = effectiveTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem(THEME_KEY, next); } catch (e) { /* private mode: the choice lasts this page */ }
      labelThemeToggle(button);
    });
  });

  /* Navigation on small screens. */
  document.querySelectorAll("[data-nav-toggle]").forEach(function (button) {
    var nav = document.getElementById(button.getAttribute("aria-controls"));
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      nav.classList.toggle("open", open);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        button.setAttribute("aria-expanded", "false");
        nav.classList.remove("open");
        button.focus();
      }
    });
  });

  /* Copy buttons: data-copy="<text>" or data-copy-target="<selector>". */
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-target]");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var target = document.querySelector(button.getAttribute("data-copy-target"));
      text = target ? (target.value !== undefined && target.tagName !== "PRE" && target.tagName !== "CODE" ? target.value : target.textContent) : "";
    }
    var label = button.querySelector("[data-copy-label]") || button;
    var before = label.textContent;
    copyText(text).then(function () {
      label.textContent = "Copied";
    }, function () {
      label.textContent = "Press Ctrl+C";
    }).then(function () {
      setTimeout(function () { label.textContent = before; }, 1800);
    });
  });

  /* Buttons that destroy something ask first: data-confirm="<question>". */
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter || event.target.querySelector("[data-confirm]");
    var question = (submitter && submitter.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  /* Catalog: filter the cards as you type (the form still works without script, on the server). */
  var catalog = document.querySelector("[data-catalog]");
  if (catalog) {
    var search = document.querySelector("[data-catalog-search]");
    var count = document.querySelector("[data-catalog-count]");
    var none = document.querySelector("[data-catalog-none]");
    var cards = Array.prototype.slice.call(catalog.querySelectorAll("[data-search]"));
    var filter = function () {
      var words = search.value.toLowerCase().trim().split(/\s+/).filter(Boolean);
      var shown = 0;
      cards.forEach(function (card) {
        var haystack = card.getAttribute("data-search");
        var match = words.every(function (word) { return haystack.indexOf(word) !== -1; });
        card.hidden = !match;
        if (match) shown += 1;
      });
      if (count) count.textContent = shown === 1 ? "1 model" : shown + " models";
      if (none) none.hidden = shown !== 0;
      // The message names what is typed now, not the query the page was loaded with.
      var named = none && none.querySelector("[data-catalog-query]");
      if (named) named.textContent = search.value.trim() ? " “" + search.value.trim() + "”" : "";
    };
    if (search) search.addEventListener("input", filter);
  }
})();
