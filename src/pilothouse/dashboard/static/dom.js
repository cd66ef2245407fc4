// Small DOM helpers: build elements without innerHTML (no injection from object data).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function text(el, value) {
  const s = String(value ?? "");
  if (el.textContent !== s) el.textContent = s;
}

export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ""; }, 5000);
}

// Arrow keys move between the rows of a table body; Enter follows the row's first link.
export function rowKeys(tbody) {
  tbody.addEventListener("keydown", (e) => {
    const row = e.target.closest("tr");
    if (!row || e.target !== row) return;
    if (e.key === "ArrowDown" && row.nextElementSibling) { row.nextElementSibling.focus(); e.preventDefault(); }
    if (e.key === "ArrowUp" && row.previousElementSibling) { row.previousElementSibling.focus(); e.preventDefault(); }
    if (e.key === "Enter") { const a = row.querySelector("a"); if (a) a.click(); }
  });
}

// A labelled meter: requested (and used) of allocatable, as a bar.
export function meter(label, { requested, used, total, format }) {
  const req = h("span", { class: "req" });
  const use = h("span", { class: "use" });
  const words = h("span", {});
  const bar = h("div", { class: "bar", role: "meter", "aria-label": `${label} requested`, "aria-valuemin": 0 }, req, use);
  const el = h("div", { class: "meter", dataset: { meter: label.toLowerCase() } },
    h("div", { class: "label" }, h("strong", {}, label), words), bar);
  el.update = (next) => {
    const pct = (v) => (next.total > 0 ? Math.min(100, (v / next.total) * 100) : 0);
    req.style.width = `${pct(next.requested)}%`;
    use.style.width = `${pct(next.used || 0)}%`;
    text(words, describe(next.requested, next.used, next.total, next.format));
    bar.setAttribute("aria-valuemax", Math.round(next.total * 1000) / 1000);
    bar.setAttribute("aria-valuenow", Math.round(next.requested * 1000) / 1000);
    bar.setAttribute("aria-valuetext", words.textContent);
  };
  el.update({ requested, used, total, format });
  return el;
}

function describe(requested, used, total, format) {
  const pct = total > 0 ? Math.round((requested / total) * 100) : 0;
  const usage = used === undefined || used === null ? "" : `, ${format(used)} used`;
  return `${format(requested)} of ${format(total)} requested (${pct}%)${usage}`;
}
