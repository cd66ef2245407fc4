// The list pages: overview (nodes and their bars), workloads, pods, events.
// Each lists once, then watches from the list's revision and changes only the rows
// (or bars) an event concerns: no page is rebuilt per event.

import * as api from "./api.js";
import { h, meter, rowKeys, text, toast } from "./dom.js";

const MANAGER = "pilothouse-dashboard";
const PAGE = 50;

function objectLinks(kind, r, o) {
  const ns = o.metadata.namespace || "";
  const path = api.resourcePath(r, ns, o.metadata.name);
  return [
    h("a", { href: `#/yaml${path}`, "aria-label": `YAML of ${kind} ${o.metadata.name}` }, "YAML"), " ",
    h("a", { href: `#/history${path}`, "aria-label": `History of ${kind} ${o.metadata.name}` }, "History"),
  ];
}

// --- overview ----------------------------------------------------------------------

export async function overview({ main, signal }) {
  const grid = h("div", { class: "nodes", role: "list", "aria-label": "Nodes" });
  const summary = h("p", { class: "muted" });
  main.replaceChildren(h("h1", {}, "Cluster overview"), summary, grid);
  // Every pod counts towards its node's bars: one list, from the server's watch cache.
  const [nodes, pods] = await Promise.all([api.listAll(api.R.nodes, ""), api.listAll(api.R.pods, "", { chunk: 0 })]);
  const cards = new Map();
  const contributions = new Map(); // pod uid -> {node, cpu, memory}
  const usage = new Map();
  const totals = new Map(); // node -> {cpu, memory, pods}

  const counts = () => {
    let running = 0;
    for (const c of contributions.values()) running += c.node ? 1 : 0;
    text(summary, `${cards.size} node(s), ${contributions.size} pod(s) in all namespaces, ${running} placed on nodes`);
  };
  const refresh = (name) => {
    const card = cards.get(name);
    if (!card) return;
    const t = totals.get(name) || { cpu: 0, memory: 0, pods: 0 };
    const alloc = card.node.status.allocatable || {};
    const u = usage.get(name);
    card.cpu.update({ requested: t.cpu, used: u && u.cpu, total: api.quantity(alloc.cpu), format: api.formatCPU });
    card.memory.update({ requested: t.memory, used: u && u.memory, total: api.quantity(alloc.memory), format: api.formatBytes });
    text(card.pods, `${t.pods} of ${alloc.pods || "?"} pods`);
  };
  const account = (pod, remove) => {
    const uid = pod.metadata.uid;
    const old = contributions.get(uid);
    if (old && old.node) {
      const t = totals.get(old.node);
      t.cpu -= old.cpu; t.memory -= old.memory; t.pods -= 1;
    }
    contributions.delete(uid);
    const phase = (pod.status || {}).phase;
    if (!remove) {
      const node = phase === "Succeeded" || phase === "Failed" ? "" : (pod.spec || {}).nodeName || "";
      const req = api.podRequests(pod);
      contributions.set(uid, { node, ...req });
      if (node) {
        if (!totals.has(node)) totals.set(node, { cpu: 0, memory: 0, pods: 0 });
        const t = totals.get(node);
        t.cpu += req.cpu; t.memory += req.memory; t.pods += 1;
      }
    }
    return [old && old.node, contributions.get(uid) && contributions.get(uid).node];
  };
  const nodeCard = (node) => {
    const name = node.metadata.name;
    const ready = ((node.status || {}).conditions || []).find((c) => c.type === "Ready");
    const state = ready && ready.status === "True" ? "Ready" : "NotReady";
    const status = h("span", { class: `status-${state}` }, state);
    const cpu = meter("CPU", { requested: 0, total: 1, format: api.formatCPU });
    const memory = meter("Memory", { requested: 0, total: 1, format: api.formatBytes });
    const pods = h("p", { class: "muted" });
    const info = (node.status || {}).nodeInfo || {};
    const el = h("article", { class: "card", role: "listitem", "aria-labelledby": `node-${name}`, dataset: { node: name } },
      h("h2", { id: `node-${name}` }, name, " ", status),
      h("p", { class: "muted" }, `${info.osImage || ""} · ${info.kubeletVersion || ""}`),
      cpu, memory, pods, h("p", {}, ...objectLinks("Node", api.R.nodes, node)));
    return { el, node, cpu, memory, pods, status };
  };
  for (const node of nodes.items) {
    const card = nodeCard(node);
    cards.set(node.metadata.name, card);
    grid.append(card.el);
  }
  for (const pod of pods.items) account(pod, false);
  for (const name of cards.keys()) refresh(name);
  counts();
  document.body.dataset.ready = "overview";
  performance.mark("page-ready");

  const loadUsage = async () => {
    try {
      const m = await api.get("/apis/metrics.k8s.io/v1beta1/nodes", undefined, signal);
      for (const item of m.items || []) {
        usage.set(item.metadata.name, { cpu: api.quantity(item.usage.cpu), memory: api.quantity(item.usage.memory) });
        refresh(item.metadata.name);
      }
    } catch { /* no metrics: bars show requests only */ }
  };
  loadUsage();
  const timer = setInterval(loadUsage, 15000);
  signal.addEventListener("abort", () => clearInterval(timer));

  api.watch(api.R.pods, "", pods.rv, (type, pod) => {
    const [before, after] = account(pod, type === "DELETED");
    if (before) refresh(before);
    if (after && after !== before) refresh(after);
    counts();
  }, { signal, onRelist: () => toast("The pod list changed too much; reload to resync") });
  api.watch(api.R.nodes, "", nodes.rv, (type, node) => {
    const name = node.metadata.name;
    const old = cards.get(name);
    if (type === "DELETED") { if (old) old.el.remove(); cards.delete(name); counts(); return; }
    const card = nodeCard(node);
    if (old) old.el.replaceWith(card.el); else grid.append(card.el);
    cards.set(name, card);
    refresh(name);
    counts();
  }, { signal });
}

// --- workloads ---------------------------------------------------------------------

// Each kind of workload: how far its rollout is, and what its buttons may do.
const WORKLOADS = [
  {
    r: api.R.deployments, kind: "Deployment", scalable: true, undo: undoDeployment,
    state: (d) => {
      const st = d.status || {};
      const want = (d.spec || {}).replicas ?? 1;
      const updated = st.updatedReplicas || 0;
      const available = st.availableReplicas || 0;
      const done = updated === want && (st.replicas || 0) === want && available === want;
      return { want, ready: st.readyReplicas || 0, updated, available, done };
    },
  },
  {
    r: api.R.statefulsets, kind: "StatefulSet", scalable: true, undo: undoFromRevision,
    state: (d) => {
      const st = d.status || {};
      const want = (d.spec || {}).replicas ?? 1;
      const ready = st.readyReplicas || 0;
      const done = ready === want && (st.updatedReplicas || 0) === want && (!st.updateRevision || st.updateRevision === st.currentRevision);
      return { want, ready, updated: st.updatedReplicas || 0, available: st.availableReplicas || 0, done };
    },
  },
  {
    r: api.R.daemonsets, kind: "DaemonSet", scalable: false, undo: undoFromRevision,
    state: (d) => {
      const st = d.status || {};
      const want = st.desiredNumberScheduled || 0;
      const updated = st.updatedNumberScheduled || 0;
      const available = st.numberAvailable || 0;
      return { want, ready: st.numberReady || 0, updated, available, done: updated === want && available === want };
    },
  },
];

export async function workloads({ main, ns, signal }) {
  const body = h("tbody");
  rowKeys(body);
  main.replaceChildren(
    h("h1", {}, "Workloads"),
    h("div", { class: "toolbar" }, h("a", { href: "#/new" }, "Create from YAML…")),
    h("table", { "aria-label": "Workloads" },
      h("caption", { class: "muted" }, `Deployments, StatefulSets and DaemonSets ${ns ? `in ${ns}` : "in all namespaces"}`),
      h("thead", {}, h("tr", {}, ...["Kind", "Name", "Namespace", "Ready", "Rollout", "Images", "Age", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
      body));
  const rows = new Map();
  const render = (w, d) => {
    const uid = d.metadata.uid;
    const name = d.metadata.name;
    const spec = d.spec || {};
    const { want, ready, updated, available, done: rolled } = w.state(d);
    const done = rolled && ((d.status || {}).observedGeneration || 0) >= (d.metadata.generation || 0);
    const progressing = ((d.status || {}).conditions || []).find((c) => c.type === "Progressing");
    const phase = done ? "Complete" : "Progressing";
    const pct = want ? Math.round((Math.min(updated, ready) / want) * 100) : 100;
    const images = ((spec.template || {}).spec || {}).containers || [];
    const cells = [
      h("td", {}, w.kind),
      h("td", {}, h("a", { href: `#/pods?selector=${encodeURIComponent(selectorOf(d))}&ns=${encodeURIComponent(d.metadata.namespace)}` }, name)),
      h("td", {}, d.metadata.namespace),
      h("td", { dataset: { ready: `${ready}/${want}` } }, `${ready}/${want}`),
      h("td", {},
        h("div", { class: "progress", role: "progressbar", "aria-label": `Rollout of ${w.kind} ${name}`, "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct },
          h("span", { style: `width:${pct}%` })),
        h("span", { class: `status-${phase}` }, `${phase}: ${updated} updated, ${available} available`),
        progressing && progressing.status === "False" ? h("div", { class: "reason" }, progressing.message) : null),
      h("td", {}, images.map((c) => c.image).join(", ")),
      h("td", {}, api.age(d.metadata.creationTimestamp)),
    ];
    const old = rows.get(uid);
    if (old) {
      // Only the cells whose text changed; the actions stay (and act on the latest object).
      old.latest = d;
      [...old.children].slice(0, cells.length).forEach((td, i) => {
        if (td.textContent !== cells[i].textContent || i === 4) td.replaceWith(cells[i]);
      });
      const input = old.querySelector("input[type=number]");
      if (input && document.activeElement !== input) input.value = want;
      return;
    }
    const tr = h("tr", { tabindex: 0, dataset: { kind: w.kind, name, namespace: d.metadata.namespace } }, ...cells);
    tr.latest = d;
    const actions = h("td", {});
    if (w.scalable) {
      const input = h("input", { type: "number", min: 0, value: want, "aria-label": `Replicas of ${w.kind} ${name}`, style: "width:5em" });
      actions.append(input, " ",
        h("button", { type: "button", onclick: () => scale(w, tr.latest, input.value), "aria-label": `Scale ${w.kind} ${name}` }, "Scale"), " ");
    }
    actions.append(
      h("button", { type: "button", onclick: () => restart(w, tr.latest), "aria-label": `Restart ${w.kind} ${name}` }, "Restart"), " ",
      h("button", { type: "button", onclick: () => w.undo(w, tr.latest), "aria-label": `Undo the rollout of ${w.kind} ${name}` }, "Undo"), " ",
      ...objectLinks(w.kind, w.r, d));
    tr.append(actions);
    rows.set(uid, tr);
    body.append(tr);
  };
  const lists = await Promise.all(WORKLOADS.map((w) => api.listAll(w.r, ns).catch(() => null)));
  WORKLOADS.forEach((w, i) => { if (lists[i]) lists[i].items.forEach((d) => render(w, d)); });
  document.body.dataset.ready = "workloads";
  WORKLOADS.forEach((w, i) => {
    if (!lists[i]) return; // not served, or not ours to list
    api.watch(w.r, ns, lists[i].rv, (type, d) => {
      if (type === "DELETED") { const tr = rows.get(d.metadata.uid); if (tr) tr.remove(); rows.delete(d.metadata.uid); return; }
      render(w, d);
    }, { signal });
  });
}

function selectorOf(d) {
  const labels = ((d.spec || {}).selector || {}).matchLabels || {};
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");
}

const qualified = (w, d) => `${w.r.plural}.${w.r.group}/${d.metadata.name}`;

async function scale(w, d, value) {
  const replicas = Number(value);
  if (!Number.isInteger(replicas) || replicas < 0) return toast("Replicas must be a whole number, 0 or more");
  try {
    await api.request("PATCH", api.resourcePath(w.r, d.metadata.namespace, d.metadata.name, "scale"), {
      body: { spec: { replicas } }, type: "application/merge-patch+json", params: { fieldManager: MANAGER },
    });
    toast(`${w.kind.toLowerCase()}.apps/${d.metadata.name} scaled to ${replicas}`);
  } catch (e) { toast(`Scale failed: ${e.message}`); }
}

// kubectl rollout restart: a new restartedAt annotation on the pod template.
async function restart(w, d) {
  const patch = { spec: { template: { metadata: { annotations: { "kubectl.kubernetes.io/restartedAt": new Date().toISOString() } } } } };
  try {
    await api.request("PATCH", api.resourcePath(w.r, d.metadata.namespace, d.metadata.name), {
      body: patch, type: "application/strategic-merge-patch+json", params: { fieldManager: MANAGER },
    });
    toast(`${w.kind.toLowerCase()}.apps/${d.metadata.name} restarted`);
  } catch (e) { toast(`Restart failed: ${e.message}`); }
}

// kubectl rollout undo of a Deployment: the ReplicaSet it owns with the newest revision
// before the current one; its pod template becomes the Deployment's.
async function undoDeployment(w, d) {
  const ns = d.metadata.namespace;
  try {
    const sets = await api.listAll(api.R.replicasets, ns, { labelSelector: selectorOf(d) });
    const rev = (o) => Number((o.metadata.annotations || {})["deployment.kubernetes.io/revision"] || 0);
    const current = rev(d);
    const owned = sets.items.filter((rs) => (rs.metadata.ownerReferences || []).some((o) => o.uid === d.metadata.uid && o.controller));
    const previous = owned.filter((rs) => rev(rs) && rev(rs) < current).sort((a, b) => rev(b) - rev(a))[0];
    if (!previous) return toast("no rollout history found");
    const template = structuredClone(previous.spec.template);
    if (template.metadata && template.metadata.labels) delete template.metadata.labels["pod-template-hash"];
    await api.request("PATCH", api.resourcePath(w.r, ns, d.metadata.name), {
      body: [{ op: "replace", path: "/spec/template", value: template }], type: "application/json-patch+json",
      params: { fieldManager: MANAGER },
    });
    toast(`${qualified(w, d)} rolled back to revision ${rev(previous)}`);
  } catch (e) { toast(`Undo failed: ${e.message}`); }
}

// kubectl rollout undo of a StatefulSet or DaemonSet: the ControllerRevision before the
// newest one it owns; its data is a strategic merge patch that puts that template back.
async function undoFromRevision(w, d) {
  const ns = d.metadata.namespace;
  try {
    const revs = await api.listAll(api.R.controllerrevisions, ns, { labelSelector: selectorOf(d) });
    const owned = revs.items
      .filter((r) => (r.metadata.ownerReferences || []).some((o) => o.uid === d.metadata.uid && o.controller))
      .sort((a, b) => (b.revision || 0) - (a.revision || 0));
    if (owned.length < 2) return toast("no rollout history found");
    const previous = owned[1];
    await api.request("PATCH", api.resourcePath(w.r, ns, d.metadata.name), {
      body: previous.data, type: "application/strategic-merge-patch+json", params: { fieldManager: MANAGER },
    });
    toast(`${qualified(w, d)} rolled back to revision ${previous.revision}`);
  } catch (e) { toast(`Undo failed: ${e.message}`); }
}

// --- pods --------------------------------------------------------------------------

export async function pods({ main, ns, signal, query }) {
  const search = h("input", { type: "search", id: "search", value: query.get("selector") || "", placeholder: "name, or app=web, or status.phase=Pending", "aria-label": "Search pods: part of a name, a label selector or a field selector" });
  const pager = h("span", { class: "muted", "aria-live": "polite" });
  const next = h("button", { type: "button" }, "Next page");
  const first = h("button", { type: "button" }, "First page");
  const body = h("tbody");
  rowKeys(body);
  main.replaceChildren(
    h("h1", {}, "Pods"),
    h("form", { class: "toolbar", role: "search", onsubmit: (e) => { e.preventDefault(); load(""); } }, search, h("button", { type: "submit" }, "Search"), first, next, pager),
    h("table", { "aria-label": "Pods" },
      h("thead", {}, h("tr", {}, ...["Name", "Namespace", "Status", "Restarts", "Node", "IP", "Age", ""].map((c) => h("th", { scope: "col" }, c)))),
      body));
  const rows = new Map();
  let watching = null;
  let pageFull = false;
  let cont = "";
  let pageNo = 1;

  const filters = () => {
    const q = search.value.trim();
    if (!q.includes("=") && !q.includes(" in ") && !q.startsWith("!")) return { name: q };
    const field = /^(metadata|spec|status)\./.test(q);
    return field ? { fieldSelector: q } : { labelSelector: q };
  };
  const row = (pod) => {
    const { reason, why, restarts } = api.podStatus(pod);
    const md = pod.metadata;
    const st = pod.status || {};
    const link = `#/pod/${encodeURIComponent(md.namespace)}/${encodeURIComponent(md.name)}`;
    return [
      h("td", {}, h("a", { href: link }, md.name)),
      h("td", {}, md.namespace),
      h("td", { dataset: { status: reason } }, h("span", { class: `status-${reason}` }, reason), why ? h("div", { class: "reason" }, why) : null),
      h("td", {}, String(restarts)),
      h("td", {}, (pod.spec || {}).nodeName || "<none>"),
      h("td", {}, st.podIP || "<none>"),
      h("td", {}, api.age(md.creationTimestamp)),
      h("td", {}, h("a", { href: `${link}/logs`, "aria-label": `Logs of ${md.name}` }, "Logs"), " ", ...objectLinks("Pod", api.R.pods, pod)),
    ];
  };
  const put = (pod) => {
    const f = filters();
    if (f.name && !pod.metadata.name.includes(f.name)) return;
    const uid = pod.metadata.uid;
    const tr = rows.get(uid);
    if (tr) {
      const cells = row(pod);
      [...tr.children].forEach((td, i) => { if (td.textContent !== cells[i].textContent) td.replaceWith(cells[i]); });
      return;
    }
    if (pageFull) return; // beyond this page: the next page shows it
    const el = h("tr", { tabindex: 0, dataset: { pod: pod.metadata.name } }, ...row(pod));
    rows.set(uid, el);
    body.append(el);
  };
  const load = async (from) => {
    if (watching) watching.abort();
    watching = new AbortController();
    signal.addEventListener("abort", () => watching.abort());
    const f = filters();
    const page = await api.listPage(api.R.pods, ns, { limit: PAGE, cont: from, labelSelector: f.labelSelector, fieldSelector: f.fieldSelector, signal });
    rows.clear();
    body.replaceChildren();
    pageFull = false;
    page.items.forEach(put);
    pageFull = !!page.cont;
    cont = page.cont;
    next.disabled = !cont;
    first.disabled = !from;
    text(pager, `page ${pageNo}, ${rows.size} pod(s) shown${cont ? ", more on the next page" : ""}`);
    document.body.dataset.ready = "pods";
    performance.mark("page-ready");
    api.watch(api.R.pods, ns, page.rv, (type, pod) => {
      if (type === "DELETED") {
        const tr = rows.get(pod.metadata.uid);
        if (tr) { tr.remove(); rows.delete(pod.metadata.uid); }
      } else put(pod);
      text(pager, `page ${pageNo}, ${rows.size} pod(s) shown${cont ? ", more on the next page" : ""}`);
    }, { signal: watching.signal, labelSelector: f.labelSelector, fieldSelector: f.fieldSelector,
      onRelist: () => load(from) });
  };
  next.addEventListener("click", () => { pageNo += 1; load(cont); });
  first.addEventListener("click", () => { pageNo = 1; load(""); });
  await load("");
}

// --- events ------------------------------------------------------------------------

export async function events({ main, ns, signal }) {
  const list = h("ol", { class: "events", "aria-live": "polite", "aria-label": "Events, newest first" });
  main.replaceChildren(h("h1", {}, "Events"), h("p", { class: "muted" }, "Live: new events appear at the top."), list);
  const item = (e) => {
    const o = e.involvedObject || e.regarding || {};
    const when = e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp;
    return h("li", { dataset: { uid: e.metadata.uid } },
      h("span", { class: e.type }, e.type), " ",
      h("strong", {}, e.reason), " ",
      h("span", {}, `${(o.kind || "").toLowerCase()}/${o.name || ""}`), " ",
      h("span", { class: "muted" }, `${o.namespace || ""} · ${api.age(when)} ago · ${e.count || 1}×`),
      h("div", {}, e.message || e.note || ""));
  };
  const byUID = new Map();
  const initial = await api.listAll(api.R.events, ns);
  const sorted = initial.items.sort((a, b) => String(b.lastTimestamp || b.eventTime || "").localeCompare(String(a.lastTimestamp || a.eventTime || ""))).slice(0, 200);
  for (const e of sorted) { const li = item(e); byUID.set(e.metadata.uid, li); list.append(li); }
  document.body.dataset.ready = "events";
  api.watch(api.R.events, ns, initial.rv, (type, e) => {
    const old = byUID.get(e.metadata.uid);
    if (old) old.remove();
    if (type === "DELETED") { byUID.delete(e.metadata.uid); return; }
    const li = item(e);
    byUID.set(e.metadata.uid, li);
    list.prepend(li);
    while (list.children.length > 300) { const last = list.lastElementChild; byUID.delete(last.dataset.uid); last.remove(); }
  }, { signal });
}
