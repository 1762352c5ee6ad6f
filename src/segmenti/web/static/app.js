// Segmenti dashboard: progressive enhancement only. Every form works without this file
// (its buttons post to the server, which re-renders the form); with it, condition rows
// are added and removed in place, only the chosen segment type's fields are shown, and the
// filter's member count is refreshed as the filter changes.
"use strict";

(function () {
  // The page's words for this script, translated by the server into a JSON block
  // (base.html): text, never markup or code. `make messages` extracts the gettext
  // calls below into the catalogs.
  const MESSAGES = (function () {
    const node = document.getElementById("script-messages");
    try {
      return node ? JSON.parse(node.textContent) : {};
    } catch (error) {
      return {};
    }
  })();
  function gettext(message) {
    return Object.prototype.hasOwnProperty.call(MESSAGES, message) ? MESSAGES[message] : message;
  }

  // The same ids as pages.field_id(): "filters_x[2]" -> "f-filters_x-2".
  function fieldId(parameter) {
    return "f-" + parameter.replace(/\[\]$/, "").replace(/[^A-Za-z0-9_]+/g, "-").replace(/^-+|-+$/g, "");
  }

  // "Remove condition 3" must stay true when an earlier row goes.
  function renumber(rows) {
    rows.querySelectorAll("[data-row]").forEach(function (row, position) {
      const button = row.querySelector("[data-remove-row]");
      const label = button && button.getAttribute("data-label");
      if (label) button.setAttribute("aria-label", label + " " + (position + 1));
    });
  }

  function setUpRows(form, onChange) {
    const rows = form.querySelector("[data-rows]");
    const template = form.querySelector("template[data-row-template]");
    const add = form.querySelector("[data-add-row]");
    if (!rows || !template || !add) return;
    let next = 0;
    rows.querySelectorAll("[data-row] [name]").forEach(function (input) {
      const match = /\[(-?\d+)\]$/.exec(input.name);
      if (match) next = Math.max(next, Number(match[1]) + 1);
    });
    add.addEventListener("click", function (event) {
      event.preventDefault();
      const position = rows.querySelectorAll("[data-row]").length + 1;
      const html = template.innerHTML.replace(/__INDEX__/g, String(next)).replace(/__POSITION__/g, String(position));
      next += 1;
      rows.insertAdjacentHTML("beforeend", html);
      const added = rows.lastElementChild;
      const first = added && added.querySelector("input, select");
      if (first) first.focus();
    });
    rows.addEventListener("click", function (event) {
      const button = event.target.closest("[data-remove-row]");
      if (!button) return;
      event.preventDefault();
      button.closest("[data-row]").remove();
      renumber(rows);
      add.focus();
      onChange();
    });
  }

  function setUpTypes(form, onChange) {
    const choices = form.querySelectorAll("[data-type-choice]");
    function show() {
      const chosen = form.querySelector("[data-type-choice]:checked");
      const type = chosen ? chosen.value : "filter";
      form.querySelectorAll("[data-type-section]").forEach(function (section) {
        section.hidden = section.getAttribute("data-type-section") !== type;
      });
    }
    choices.forEach(function (choice) {
      choice.addEventListener("change", function () { show(); onChange(); });
    });
    show();
  }

  function setUpPreview(form) {
    const url = form.getAttribute("data-preview-url");
    const target = form.querySelector("[data-preview]");
    if (!url || !target) return function () {};
    const panel = target.closest(".preview");
    const status = form.querySelector("[data-preview-status]");
    const button = form.querySelector("[data-preview-button]");
    if (button) button.hidden = true;
    let timer = null;
    let inFlight = null;

    function clearLiveErrors() {
      form.querySelectorAll(".field-error[data-live]").forEach(function (node) { node.remove(); });
      form.querySelectorAll("[data-live-invalid]").forEach(function (node) {
        node.removeAttribute("aria-invalid");
        node.removeAttribute("aria-describedby");
        node.removeAttribute("data-live-invalid");
      });
    }

    function showLiveError() {
      const error = target.querySelector("[data-error-parameter]");
      const parameter = error && error.getAttribute("data-error-parameter");
      if (!parameter) return;
      const field = document.getElementById(fieldId(parameter));
      if (!field) return;
      const message = document.createElement("p");
      message.className = "field-error";
      message.id = fieldId(parameter) + "-error";
      message.setAttribute("data-live", "");
      message.textContent = error.textContent;
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", message.id);
      field.setAttribute("data-live-invalid", "");
      field.insertAdjacentElement("afterend", message);
    }

    function refresh() {
      if (inFlight) inFlight.abort();
      inFlight = new AbortController();
      const body = new URLSearchParams(new FormData(form));
      if (panel) panel.setAttribute("aria-busy", "true");
      fetch(url, { method: "POST", body: body, signal: inFlight.signal, credentials: "same-origin" })
        .then(function (response) {
          if (response.redirected || !response.ok) throw new Error("preview failed: " + response.status);
          return response.text();
        })
        .then(function (html) {
          // Server-rendered and escaped by the template, from this origin.
          target.innerHTML = html;
          clearLiveErrors();
          showLiveError();
          // Announce the count (or the error), not the whole table of members.
          const summary = target.querySelector(".preview-count, .preview-error, .preview-note");
          if (status && summary) status.textContent = summary.textContent.replace(/\s+/g, " ").trim();
        })
        .catch(function (error) {
          if (error.name === "AbortError") return;
          if (button) button.hidden = false;
          if (status) status.textContent = gettext("The count could not be updated: press “Update the count”.");
        })
        .finally(function () {
          if (panel) panel.setAttribute("aria-busy", "false");
        });
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    }
    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    return schedule;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-segment-form]").forEach(function (form) {
      const refresh = setUpPreview(form);
      setUpTypes(form, refresh);
      setUpRows(form, refresh);
    });
    document.querySelectorAll("form[data-rows-form]").forEach(function (form) {
      setUpRows(form, function () {});
    });
  });
})();
