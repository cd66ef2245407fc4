// The dashboard shell: who is logged in, the namespace, routing, keyboard, theme.
// Pages live in views.js (lists) and detail.js (one object); each page gets an
// AbortSignal that ends its requests and watches when the user navigates away.

import * as api from "./api.js";
import * as detail from "./detail.js";
import { h, text, toast } from "./dom.js";
import * as views from "./views.js";

const main = document.getElementById("main");
const nsSelect = document.getElementById("namespace");
let current = null;

const NS_KEY = "pilothouse-namespace";

async function whoami() {
  const review = await api.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
    body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" }, type: "application/json",
    idempotent: true, // a review creates nothing
  });
  return review.status.userInfo.username;
}

function login(message) {
  if (current) current.abort();
  document.body.dataset.ready = "login";
  const token = h("textarea", { id: "token", required: true, "aria-describedby": "token-help", autocomplete: "off" });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  main.replaceChildren(h("section", { class: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in"),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      api.session.token = token.value.trim();
      try {
        await start();
      } catch (err) {
        api.session.token = "";
        text(error, err.status === 401 ? "That token is not valid (401 Unauthorized)." : err.message);
      }
    } },
      h("label", { for: "token" }, "Bearer token"),
      token,
      h("p", { id: "token-help", class: "muted" }, "A ServiceAccount token works: ", h("code", {}, "kubectl create token NAME -n NAMESPACE"),
        ". The dashboard then acts as that account; RBAC decides what it sees."),
      h("button", { type: "submit", class: "primary", id: "login" }, "Log in")),
    error));
  token.focus();
}

async function start() {
  let user;
  try {
    user = await whoami();
  } catch (e) {
    if (e.status === 401 || e.status === 403) return login(api.session.token ? "Your session is no longer valid; log in again." : "");
    throw e;
  }
  if (user === "system:anonymous") return login("");
  text(document.getElementById("whoami"), user);
  document.getElementById("logout").hidden = !api.session.token;
  // The page first; the namespace menu fills in beside it.
  const chosen = localStorage.getItem(NS_KEY) || "";
  if (chosen) nsSelect.append(h("option", { value: chosen }, chosen));
  nsSelect.value = chosen;
  route();
  loadNamespaces();
}

async function loadNamespaces() {
  const chosen = nsSelect.value;
  try {
    const list = await api.listAll(api.R.namespaces, "");
    nsSelect.replaceChildren(h("option", { value: "" }, "All namespaces"),
      ...list.items.map((n) => h("option", { value: n.metadata.name }, n.metadata.name)));
  } catch { /* may not list namespaces: type one in the URL instead (?ns=) */ }
  nsSelect.value = chosen;
}

function route() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const [pathPart, queryPart = ""] = (location.hash.slice(1) || "/overview").split("?");
  const query = new URLSearchParams(queryPart);
  if (query.get("ns") !== null && query.get("ns") !== nsSelect.value) {
    if (![...nsSelect.options].some((o) => o.value === query.get("ns"))) nsSelect.append(h("option", { value: query.get("ns") }, query.get("ns")));
    nsSelect.value = query.get("ns");
    localStorage.setItem(NS_KEY, nsSelect.value);
  }
  const ns = nsSelect.value;
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  delete document.body.dataset.ready;
  const objectPath = "/" + pathPart.split("/").filter(Boolean).slice(1).join("/");
  const ctx = { main, ns, signal, query, params: parts.slice(1), path: objectPath };
  const pages = {
    overview: views.overview,
    workloads: views.workloads,
    pods: views.pods,
    events: views.events,
    pod: detail.pod,
    yaml: detail.yaml,
    new: (c) => detail.yaml({ ...c, path: "" }),
    history: detail.history,
  };
  const show = pages[page] || views.overview;
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · pilothouse`;
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  show(ctx).catch((e) => {
    if (signal.aborted) return;
    if (e.status === 401) return login("Your session is no longer valid; log in again.");
    main.replaceChildren(h("h1", {}, "Cannot show this page"), h("p", { class: "error", role: "alert" }, e.reason ? `${e.reason}: ${e.message}` : e.message));
    document.body.dataset.ready = "error";
  });
}

// --- theme and keyboard ------------------------------------------------------------

const themeButton = document.getElementById("theme");
function setTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme; else delete document.documentElement.dataset.theme;
  const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  themeButton.setAttribute("aria-pressed", String(dark));
  localStorage.setItem("pilothouse-theme", theme || "");
}
themeButton.addEventListener("click", () => setTheme(themeButton.getAttribute("aria-pressed") === "true" ? "light" : "dark"));
setTheme(localStorage.getItem("pilothouse-theme") || "");

let pendingG = false;
document.addEventListener("keydown", (e) => {
  const typing = e.target.closest("input, textarea, select, [contenteditable]");
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (pendingG) {
    pendingG = false;
    const to = { o: "overview", w: "workloads", p: "pods", e: "events" }[e.key];
    if (to) { location.hash = `#/${to}`; e.preventDefault(); }
    return;
  }
  if (e.key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1200); return; }
  if (e.key === "/") { const s = document.getElementById("search"); if (s) { s.focus(); e.preventDefault(); } }
  if (e.key === "t") themeButton.click();
  if (e.key === "?") document.getElementById("help").showModal();
});

nsSelect.addEventListener("change", () => {
  localStorage.setItem(NS_KEY, nsSelect.value);
  const [pathPart] = location.hash.split("?");
  if (location.hash.includes("ns=")) location.hash = pathPart; else route();
});
document.getElementById("logout").addEventListener("click", () => { api.session.token = ""; location.hash = "#/overview"; login("Logged out."); });
window.addEventListener("hashchange", () => { route(); main.focus({ preventScroll: true }); });
// Leaving the page: end its watches now, so their connections are free at once for
// the next page (the browser allows six per server over HTTP/1.1).
window.addEventListener("pagehide", () => { if (current) current.abort(); });

start().catch((e) => {
  main.replaceChildren(h("p", { class: "error", role: "alert" }, `Cannot reach the API: ${e.message}`));
  toast("Cannot reach the API");
});
