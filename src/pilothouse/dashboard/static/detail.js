// One object at a time: a pod's logs and exec terminal, YAML view and edit through
// server-side apply, and an object's history timeline with diffs.

import * as api from "./api.js";
import { h, text, toast } from "./dom.js";
import { diffLines, hunks, scanManifest, toYAML } from "./yaml.js";

const MANAGER = "pilothouse-dashboard";

// --- a pod: logs and exec --------------------------------------------------------------

export async function pod({ main, signal, params }) {
  const [ns, name, tab = "logs"] = params;
  const path = api.resourcePath(api.R.pods, ns, name);
  const p = await api.get(path, undefined, signal);
  const containers = (p.spec.containers || []).map((c) => c.name);
  const status = h("span");
  const update = (o) => {
    const s = api.podStatus(o);
    text(status, `${s.reason}${s.why ? ` — ${s.why}` : ""} · node ${o.spec.nodeName || "<none>"} · IP ${(o.status || {}).podIP || "<none>"} · ${s.restarts} restart(s)`);
  };
  update(p);
  const pick = h("select", { "aria-label": "Container" }, ...containers.map((c) => h("option", { value: c }, c)));
  const panel = h("div", { role: "tabpanel", id: "pod-panel" });
  const tabs = ["logs", "exec"].map((t) => h("button", {
    type: "button", role: "tab", "aria-selected": String(t === tab), "aria-controls": "pod-panel",
    onclick: () => { location.hash = `#/pod/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${t}`; },
  }, t === "logs" ? "Logs" : "Exec"));
  main.replaceChildren(
    h("h1", {}, `Pod ${ns}/${name}`),
    h("p", {}, status, " ", h("a", { href: `#/yaml${path}` }, "YAML"), " ", h("a", { href: `#/history${path}` }, "History")),
    h("div", { class: "toolbar" }, h("label", {}, "Container ", pick)),
    h("div", { class: "tabs", role: "tablist", "aria-label": "Pod views" }, ...tabs),
    panel);
  api.watch(api.R.pods, ns, p.metadata.resourceVersion, (type, o) => { if (o.metadata.name === name) update(o); },
    { signal, fieldSelector: `metadata.name=${name}` });
  const show = () => (tab === "exec" ? terminal : logs)({ panel, ns, name, container: pick.value, signal });
  pick.addEventListener("change", show);
  show();
}

function logs({ panel, ns, name, container, signal }) {
  const out = h("pre", { class: "stream", id: "logs", tabindex: 0, "aria-label": "Log output", "aria-live": "off" });
  const follow = h("input", { type: "checkbox", checked: true, id: "follow" });
  panel.replaceChildren(h("div", { class: "toolbar" }, h("label", {}, follow, " Follow")), out);
  const ctrl = new AbortController();
  signal.addEventListener("abort", () => ctrl.abort());
  const params = new URLSearchParams({ container, follow: "true", tailLines: "500", timestamps: "false" });
  const headers = api.session.token ? { Authorization: `Bearer ${api.session.token}` } : {};
  (async () => {
    const resp = await fetch(`${api.resourcePath(api.R.pods, ns, name, "log")}?${params}`, { headers, signal: ctrl.signal });
    if (!resp.ok) { const b = await resp.json().catch(() => ({})); out.textContent = b.message || `HTTP ${resp.status}`; return; }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.append(decoder.decode(value, { stream: true }));
      if (out.textContent.length > 1_000_000) out.textContent = out.textContent.slice(-500_000);
      if (follow.checked) out.scrollTop = out.scrollHeight;
    }
    out.append("\n— end of log stream —\n");
  })().catch(() => {});
}

// An exec session over the API's WebSocket channel protocol: stdin on channel 0,
// stdout 1, stderr 2, the final Status on 3. Line mode: each line typed is sent
// with its newline to a shell without a TTY.
function terminal({ panel, ns, name, container, signal }) {
  const out = h("pre", { class: "stream", id: "terminal-output", tabindex: 0, "aria-label": "Terminal output", "aria-live": "polite" });
  const command = h("input", { id: "exec-command", value: "sh", "aria-label": "Command to run" });
  const line = h("input", { id: "terminal-input", autocomplete: "off", "aria-label": "Type a line for the shell, Enter sends it", disabled: true });
  const state = h("span", { class: "muted", role: "status" }, "not connected");
  let ws = null;
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const connect = () => {
    if (ws) ws.close();
    const q = new URLSearchParams({ container, stdin: "true", stdout: "true", stderr: "true" });
    for (const part of command.value.trim().split(/\s+/)) q.append("command", part);
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${api.resourcePath(api.R.pods, ns, name, "exec")}?${q}`;
    const protocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
    if (api.session.token) {
      const b64 = btoa(api.session.token).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
      protocols.push(`base64url.bearer.authorization.k8s.io.${b64}`);
    }
    ws = new WebSocket(url, protocols);
    ws.binaryType = "arraybuffer";
    text(state, "connecting…");
    ws.onopen = () => { text(state, `connected (${ws.protocol})`); line.disabled = false; line.focus(); };
    ws.onmessage = (m) => {
      const bytes = new Uint8Array(m.data);
      if (!bytes.length) return;
      const data = dec.decode(bytes.subarray(1));
      if (bytes[0] === 1 || bytes[0] === 2) out.append(data);
      else if (bytes[0] === 3) {
        const st = JSON.parse(data || "{}");
        out.append(st.status === "Success" ? "\n[exited 0]\n" : `\n[${st.message || "exited"}]\n`);
      }
      out.scrollTop = out.scrollHeight;
    };
    ws.onclose = () => { text(state, "disconnected"); line.disabled = true; };
    ws.onerror = () => text(state, "connection failed");
  };
  const send = (e) => {
    e.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const payload = enc.encode(`${line.value}\n`);
    const frame = new Uint8Array(payload.length + 1);
    frame[0] = 0;
    frame.set(payload, 1);
    ws.send(frame);
    out.append(`$ ${line.value}\n`);
    line.value = "";
  };
  signal.addEventListener("abort", () => ws && ws.close());
  panel.replaceChildren(
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); connect(); } },
      h("label", {}, "Command ", command), h("button", { type: "submit", id: "exec-connect" }, "Connect")),
    h("div", { class: "term" }, out, h("form", { onsubmit: send }, h("span", { "aria-hidden": "true" }, "$"), line, h("button", { type: "submit" }, "Send")), state));
  connect();
}

// --- YAML view and edit ------------------------------------------------------------------

const TEMPLATE = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: ["sh", "-c", "while true; do date; sleep 1; done"]
`;

// What one edits and applies: no status, and none of the fields the server owns.
function editable(o) {
  const c = structuredClone(o);
  delete c.status;
  const md = c.metadata || {};
  for (const f of ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"]) delete md[f];
  return c;
}

export async function yaml({ main, signal, path, ns }) {
  const creating = !path;
  let manifest = TEMPLATE.replace("namespace: default", `namespace: ${ns || "default"}`);
  let live = null;
  if (!creating) {
    live = await api.get(path, undefined, signal);
    manifest = toYAML(editable(live));
  }
  const area = h("textarea", { class: "code", id: "yaml-editor", spellcheck: "false", "aria-label": "YAML manifest" });
  area.value = manifest;
  const result = h("div", { role: "alert", id: "apply-result" });
  const apply = h("button", { type: "button", class: "primary", id: "apply" }, creating ? "Create (server-side apply)" : "Apply (server-side)");
  const view = h("details", {}, h("summary", {}, "The object as served (with status and managed fields)"), h("pre", { class: "stream" }, live ? toYAML(live) : ""));
  main.replaceChildren(
    h("h1", {}, creating ? "Create from YAML" : `YAML of ${live.kind} ${live.metadata.name}`),
    h("p", { class: "muted" }, `Applied with server-side apply as field manager "${MANAGER}": fields another manager owns are conflicts, shown here, unless you force.`),
    area, h("div", { class: "toolbar" }, apply), result, live ? view : null);
  const run = async (force) => {
    result.replaceChildren(h("p", { class: "muted" }, "Applying…"));
    try {
      const m = scanManifest(area.value);
      if (!m.apiVersion || !m.kind || !m.name) throw new Error("the manifest needs apiVersion, kind and metadata.name");
      const r = await api.resourceFor(m.apiVersion, m.kind);
      const target = api.resourcePath(r, m.namespace || ns || "default", m.name);
      const obj = await api.request("PATCH", target, {
        body: area.value, type: "application/apply-patch+yaml", idempotent: true,
        params: { fieldManager: MANAGER, force: force ? "true" : "false", fieldValidation: "Strict" },
      });
      result.replaceChildren(h("p", { class: "status-Complete" }, `${r.plural}/${obj.metadata.name} applied (resourceVersion ${obj.metadata.resourceVersion})`), " ",
        h("a", { href: `#/history${target}` }, "History"), " ",
        r.plural === "deployments" ? h("a", { href: `#/pods?ns=${encodeURIComponent(obj.metadata.namespace)}` }, "Its pods") : null);
      toast(`${r.plural}/${obj.metadata.name} applied`);
    } catch (e) {
      const causes = ((e.body || {}).details || {}).causes || [];
      if (e.status === 409 && causes.length) {
        result.replaceChildren(h("div", { class: "conflicts" },
          h("p", { class: "error" }, `Apply conflict: ${e.message}`),
          h("ul", {}, ...causes.map((c) => h("li", {}, h("code", {}, c.field || ""), ` — ${c.message}`))),
          h("button", { type: "button", id: "force-apply", onclick: () => run(true) }, "Apply anyway, taking those fields (force)")));
      } else {
        result.replaceChildren(h("p", { class: "error" }, e.reason ? `${e.reason}: ${e.message}` : e.message));
      }
    }
  };
  apply.addEventListener("click", () => run(false));
  document.body.dataset.ready = "yaml";
}

// --- history -------------------------------------------------------------------------

function clean(o) {
  const c = structuredClone(o);
  if (c.metadata) { delete c.metadata.resourceVersion; delete c.metadata.managedFields; }
  return c;
}

export async function history({ main, signal, path }) {
  const doc = await api.get(`/history${path}`, undefined, signal);
  const revs = doc.revisions || [];
  const timeline = h("ol", { class: "timeline", "aria-label": "Revisions, oldest first" });
  const diff = h("pre", { class: "stream diff", id: "history-diff", tabindex: 0, "aria-label": "Changes in the chosen revision" });
  const title = h("h2", { id: "diff-title" });
  const change = (i) => (revs[i].deleted ? "deleted" : i === 0 || revs[i - 1].deleted ? "created" : "updated");
  const choose = (i) => {
    [...timeline.children].forEach((li, k) => li.setAttribute("aria-current", String(k === i)));
    const before = i > 0 && !revs[i - 1].deleted ? toYAML(clean(revs[i - 1].object)) : "";
    const after = revs[i].deleted ? "" : toYAML(clean(revs[i].object));
    text(title, `Revision ${revs[i].resourceVersion}: ${change(i)} by ${revs[i].manager || revs[i].user || "unknown"}`);
    diff.replaceChildren(...hunks(diffLines(before, after)).map(([op, l]) =>
      h("span", { class: op === "+" ? "add" : op === "-" ? "del" : op === "@" ? "hunk" : "" }, `${op === "@" ? "" : op} ${l}\n`)));
  };
  revs.forEach((r, i) => {
    timeline.append(h("li", { dataset: { rv: r.resourceVersion } },
      h("button", { type: "button", onclick: () => choose(i), "aria-label": `Revision ${r.resourceVersion}, ${change(i)}` }, `${r.resourceVersion}`), " ",
      h("strong", {}, change(i)), " ",
      h("span", {}, `${r.operation || ""}${r.subresource ? ` (${r.subresource})` : ""} by ${r.manager || "—"}`), " ",
      h("span", { class: "muted" }, `${r.user || ""} · ${r.time ? new Date(r.time).toLocaleString() : ""}`)));
  });
  main.replaceChildren(
    h("h1", {}, `History of ${doc.kindOf} ${doc.metadata.namespace ? `${doc.metadata.namespace}/` : ""}${doc.metadata.name}`),
    h("p", { class: "muted" }, `Every revision the server kept (the last ${Math.round(doc.retentionSeconds / 3600)} h). Choose one to see what it changed.`),
    h("div", { class: "split" }, h("section", { "aria-label": "Timeline" }, timeline), h("section", { "aria-labelledby": "diff-title" }, title, diff)));
  if (revs.length) choose(revs.length - 1);
  document.body.dataset.ready = "history";
}
