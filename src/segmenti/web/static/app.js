// Segmenti dashboard: progressive enhancement only. Every form works without this file
// (its buttons post to the server, which re-renders the form); with it, condition rows
// are added and removed in place, only the chosen segment type's fields are shown, a
// filter tree is edited as groups and conditions instead of its JSON text, and the
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

  // Radio buttons that choose which sections show: the segment's type, the filter's way.
  function setUpChoice(form, choiceAttribute, sectionAttribute, fallback, onChange) {
    const choices = form.querySelectorAll("[" + choiceAttribute + "]");
    function show() {
      const chosen = form.querySelector("[" + choiceAttribute + "]:checked");
      const value = chosen ? chosen.value : fallback;
      form.querySelectorAll("[" + sectionAttribute + "]").forEach(function (section) {
        section.hidden = section.getAttribute(sectionAttribute) !== value;
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

  // The tree builder edits the JSON of the `filter` field (the API's own shape) through
  // groups and conditions; the textarea stays the form's field. Each node's element
  // has the id an error's parameter names ("filter.all[1]" -> "f-filter-all-1").
  function setUpTree(form, onChange) {
    const source = form.querySelector("[data-tree-source]");
    const builder = form.querySelector("[data-tree-builder]");
    const wordsNode = document.getElementById("tree-builder-strings");
    if (!source || !builder || !wordsNode) return;
    const words = JSON.parse(wordsNode.textContent);
    let tree;
    try {
      tree = JSON.parse(source.value);
    } catch (error) {
      return; // not JSON: the text field stays, and the preview says what is wrong
    }
    if (!tree || typeof tree !== "object" || Array.isArray(tree)) return;
    source.closest("[data-tree-source-field]").hidden = true;
    builder.hidden = false;

    function element(tag, attributes, children) {
      const node = document.createElement(tag);
      Object.keys(attributes || {}).forEach(function (name) {
        if (name === "text") node.textContent = attributes[name];
        else node.setAttribute(name, attributes[name]);
      });
      (children || []).forEach(function (child) { if (child) node.appendChild(child); });
      return node;
    }

    function save() {
      source.value = JSON.stringify(tree);
      onChange();
    }

    function render() {
      builder.replaceChildren(renderNode(tree, "filter", function (replacement) { tree = replacement; }, true));
    }

    function restructure() {
      render();
      save();
    }

    function isGroup(node) { return "all" in node || "any" in node; }

    // One node; `replace` puts another node in its place in its parent.
    function renderNode(node, path, replace, root) {
      const negated = "not" in node;
      const inner = negated ? node.not : node;
      const innerPath = negated ? path + ".not" : path;
      function setInner(replacement) {
        if (negated) node.not = replacement;
        else replace(replacement);
      }
      const negate = element("input", { type: "checkbox", "data-negate": "" });
      negate.checked = negated;
      negate.addEventListener("change", function () {
        replace(negated ? inner : { not: inner });
        restructure();
      });
      const negateLabel = element("label", { class: "choice tree-not" }, [negate, document.createTextNode(" " + words.not)]);
      const remove = root ? null : element("button", { type: "button", class: "remove", "data-remove-node": "", text: words.remove });
      if (remove) remove.addEventListener("click", function () { replace(null); restructure(); });
      if (isGroup(inner)) return renderGroup(inner, innerPath, setInner, negateLabel, remove);
      return renderLeaf(inner, innerPath, setInner, negateLabel, remove);
    }

    function renderGroup(group, path, replace, negateLabel, remove) {
      const kind = "all" in group ? "all" : "any";
      const select = element("select", { "data-group-kind": "", "aria-label": words.match });
      ["all", "any"].forEach(function (value) {
        const option = element("option", { value: value, text: words[value] });
        option.selected = value === kind;
        select.appendChild(option);
      });
      select.addEventListener("change", function () {
        const next = {};
        next[select.value] = group[kind];
        replace(next);
        restructure();
      });
      const children = element("div", { class: "tree-children" });
      group[kind].forEach(function (child, index) {
        children.appendChild(renderNode(child, path + "." + kind + "[" + index + "]", function (replacement) {
          if (replacement === null) group[kind].splice(index, 1);
          else group[kind][index] = replacement;
        }, false));
      });
      const addCondition = element("button", { type: "button", class: "secondary", "data-add-condition": "", text: words.add_condition });
      addCondition.addEventListener("click", function () {
        group[kind].push({ key: "", condition: "exact", value: "" });
        restructure();
        const inputs = builder.querySelectorAll("[data-leaf-key]");
        if (inputs.length) inputs[inputs.length - 1].focus();
      });
      const addGroup = element("button", { type: "button", class: "secondary", "data-add-group": "", text: words.add_group });
      addGroup.addEventListener("click", function () {
        group[kind].push({ any: [{ key: "", condition: "exact", value: "" }] });
        restructure();
      });
      return element("fieldset", { class: "tree-group", id: fieldId(path), "data-path": path }, [
        element("legend", {}, [negateLabel, select]),
        children,
        element("div", { class: "tree-actions" }, [addCondition, addGroup, remove]),
      ]);
    }

    function renderLeaf(leaf, path, replace, negateLabel, remove) {
      const place = "country" in leaf ? "country" : "continent" in leaf ? "continent" : null;
      const condition = place || leaf.condition || "exact";
      const takes = place ? "codes" : words.takes[condition] || "text";
      const select = element("select", { "data-leaf-condition": "", "aria-label": words.condition });
      Object.keys(words.conditions).concat(["country", "continent"]).forEach(function (name) {
        const option = element("option", { value: name, text: words.conditions[name] || words[name] });
        option.selected = name === condition;
        select.appendChild(option);
      });
      select.addEventListener("change", function () {
        const name = select.value;
        if (name === "country" || name === "continent") {
          const next = {};
          next[name] = [];
          replace(next);
        } else {
          const next = { key: leaf.key || "", condition: name };
          const nextTakes = words.takes[name];
          if (nextTakes === "list") next.value = typeof leaf.value === "string" && leaf.value ? [leaf.value] : Array.isArray(leaf.value) ? leaf.value : [];
          else if (nextTakes !== "none") next.value = typeof leaf.value === "string" ? leaf.value : "";
          replace(next);
        }
        restructure();
      });
      const key = element("input", { "data-leaf-key": "", "aria-label": words.key, placeholder: words.key, maxlength: "64", list: "parameter-keys", autocomplete: "off", spellcheck: "false" });
      key.value = leaf.key || "";
      key.hidden = Boolean(place);
      key.addEventListener("input", function () { leaf.key = key.value; save(); });
      const value = element("input", { "data-leaf-value": "", "aria-label": words.value, autocomplete: "off" });
      const hints = { list: words.list_hint, date: words.date_hint, codes: words.codes_hint };
      if (hints[takes]) value.placeholder = hints[takes];
      value.hidden = takes === "none";
      const listed = place ? leaf[place] : leaf.value;
      value.value = Array.isArray(listed) ? listed.join(", ") : listed || "";
      value.addEventListener("input", function () {
        const items = value.value.split(",").map(function (item) { return item.trim(); }).filter(Boolean);
        if (place) leaf[place] = items;
        else if (takes === "list") leaf.value = items;
        else leaf.value = value.value;
        save();
      });
      return element("div", { class: "tree-leaf", id: fieldId(path), "data-path": path }, [negateLabel, key, select, value, remove]);
    }

    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-segment-form]").forEach(function (form) {
      const refresh = setUpPreview(form);
      setUpChoice(form, "data-type-choice", "data-type-section", "filter", refresh);
      // The filter's two ways: rows that all hold, or a tree.
      setUpChoice(form, "data-filter-mode", "data-filter-section", "rows", refresh);
      setUpTree(form, refresh);
      setUpRows(form, refresh);
    });
    document.querySelectorAll("form[data-rows-form]").forEach(function (form) {
      setUpRows(form, function () {});
    });
  });
})();
