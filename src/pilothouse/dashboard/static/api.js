// The Kubernetes API from the browser: requests, lists with paging, watches.
// Everything goes through the same API kubectl uses, as the logged-in user.

const TOKEN_KEY = "pilothouse-token";

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.reason = this.body.reason || "";
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

function headers(extra) {
  const h = { Accept: "application/json", ...extra };
  if (session.token) h.Authorization = `Bearer ${session.token}`;
  return h;
}

// Requests that may be sent again when the network drops them (a laptop changing
// networks, an interface coming up): reads, and server-side apply, which is idempotent.
export async function request(method, path, { body, type, signal, params, idempotent } = {}) {
  const url = params ? `${path}?${new URLSearchParams(params)}` : path;
  const init = { method, headers: headers(type ? { "Content-Type": type } : {}), signal };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const retries = (idempotent ?? method === "GET") ? 3 : 0;
  let resp;
  for (let attempt = 0; ; attempt++) {
    try {
      resp = await fetch(url, init);
      break;
    } catch (e) {
      if (attempt >= retries || (signal && signal.aborted)) throw e;
      await sleep(300 * (attempt + 1));
    }
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text }; }
  }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
}

export const get = (path, params, signal) => request("GET", path, { params, signal });

// A path for a resource: {group, version, plural, namespaced} and a namespace/name.
export function resourcePath(r, namespace, name, sub) {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}

export const R = {
  pods: { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true },
  nodes: { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false },
  events: { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true },
  namespaces: { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  deployments: { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true },
  replicasets: { group: "apps", version: "v1", plural: "replicasets", kind: "ReplicaSet", namespaced: true },
  statefulsets: { group: "apps", version: "v1", plural: "statefulsets", kind: "StatefulSet", namespaced: true },
  daemonsets: { group: "apps", version: "v1", plural: "daemonsets", kind: "DaemonSet", namespaced: true },
  controllerrevisions: { group: "apps", version: "v1", plural: "controllerrevisions", kind: "ControllerRevision", namespaced: true },
};

// The resource of an apiVersion and kind, from discovery (one request per group-version).
const discovered = new Map();
export async function resourceFor(apiVersion, kind) {
  if (!discovered.has(apiVersion)) {
    const path = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    discovered.set(apiVersion, get(path));
  }
  let list;
  try {
    list = await discovered.get(apiVersion);
  } catch (e) {
    discovered.delete(apiVersion);
    throw e;
  }
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const found = (list.resources || []).find((r) => r.kind === kind && !r.name.includes("/"));
  if (!found) throw new Error(`the server has no kind "${kind}" in ${apiVersion}`);
  return { group, version, plural: found.name, kind, namespaced: found.namespaced };
}

// One page of a list: {items, continue, resourceVersion}.
export async function listPage(r, namespace, { limit, cont, labelSelector, fieldSelector, signal } = {}) {
  const params = {};
  if (limit) params.limit = String(limit);
  if (cont) params.continue = cont;
  if (labelSelector) params.labelSelector = labelSelector;
  if (fieldSelector) params.fieldSelector = fieldSelector;
  const list = await get(resourcePath(r, namespace), params, signal);
  return { items: list.items || [], cont: list.metadata.continue || "", rv: list.metadata.resourceVersion };
}

// Every object and the list's revision: in pages of ``chunk`` (500, as kubectl reads),
// or with ``chunk: 0`` in one answer, which the API server serves from its watch cache
// (a continued list is read from the store at the first page's revision).
export async function listAll(r, namespace, { chunk = 500, ...opts } = {}) {
  let items = [];
  let cont = "";
  let rv = "";
  do {
    const page = await listPage(r, namespace, { ...opts, limit: chunk, cont });
    items = items.concat(page.items);
    cont = page.cont;
    rv = rv || page.rv;
  } while (cont);
  return { items, rv };
}

// Watch from a revision; calls onEvent(type, object) for each event until the signal
// aborts. When the server ends the watch it resumes from the last revision seen; when
// that revision is gone (410) it calls onRelist() to start over.
export async function watch(r, namespace, rv, onEvent, { signal, onRelist, labelSelector, fieldSelector } = {}) {
  let from = rv;
  while (!signal.aborted) {
    const params = new URLSearchParams({ watch: "true", resourceVersion: from, allowWatchBookmarks: "true", timeoutSeconds: "300" });
    if (labelSelector) params.set("labelSelector", labelSelector);
    if (fieldSelector) params.set("fieldSelector", fieldSelector);
    let resp;
    try {
      resp = await fetch(`${resourcePath(r, namespace)}?${params}`, { headers: headers(), signal });
    } catch (e) {
      if (signal.aborted) return;
      await sleep(1000);
      continue;
    }
    if (resp.status === 410) { if (onRelist) onRelist(); return; }
    if (!resp.ok) { await sleep(2000); continue; }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line);
          if (ev.type === "ERROR") {
            if (ev.object && ev.object.code === 410) { if (onRelist) onRelist(); return; }
            continue;
          }
          from = ev.object.metadata.resourceVersion || from;
          if (ev.type === "BOOKMARK") continue;
          try {
            onEvent(ev.type, ev.object);
          } catch (err) {
            console.error("watch event handler failed", err); // one bad event, not the stream
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Quantities (CPU in cores, memory in bytes), as resource.Quantity reads them.
const SUFFIX = {
  n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};
export function quantity(text) {
  if (text === undefined || text === null || text === "") return 0;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(String(text).trim());
  if (!m) return 0;
  return parseFloat(m[1]) * (SUFFIX[m[2]] ?? 1);
}

export function formatCPU(cores) {
  return cores < 1 ? `${Math.round(cores * 1000)}m` : `${+cores.toFixed(2)}`;
}
export function formatBytes(bytes) {
  const units = ["B", "Ki", "Mi", "Gi", "Ti"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return `${+bytes.toFixed(1)}${units[i]}`;
}

// What a pod asks of its node: the larger of its containers' sum and any init
// container, plus overhead (the scheduler's NodeResourcesFit).
export function podRequests(pod) {
  const sum = { cpu: 0, memory: 0 };
  const spec = pod.spec || {};
  for (const c of spec.containers || []) {
    const req = (c.resources || {}).requests || {};
    sum.cpu += quantity(req.cpu);
    sum.memory += quantity(req.memory);
  }
  for (const c of spec.initContainers || []) {
    const req = (c.resources || {}).requests || {};
    sum.cpu = Math.max(sum.cpu, quantity(req.cpu));
    sum.memory = Math.max(sum.memory, quantity(req.memory));
  }
  const overhead = spec.overhead || {};
  sum.cpu += quantity(overhead.cpu);
  sum.memory += quantity(overhead.memory);
  return sum;
}

// The STATUS column as kubectl prints it, and the scheduler's reason for Pending.
export function podStatus(pod) {
  const st = pod.status || {};
  let reason = st.reason || st.phase || "Unknown";
  for (const c of st.initContainerStatuses || []) {
    const w = (c.state || {}).waiting;
    if (w && w.reason && w.reason !== "PodInitializing") { reason = `Init:${w.reason}`; break; }
  }
  for (const c of st.containerStatuses || []) {
    const s = c.state || {};
    if (s.waiting && s.waiting.reason) reason = s.waiting.reason;
    else if (s.terminated && s.terminated.reason) reason = s.terminated.reason;
  }
  if (pod.metadata.deletionTimestamp) reason = "Terminating";
  let why = "";
  const scheduled = (st.conditions || []).find((c) => c.type === "PodScheduled");
  if (st.phase === "Pending" && scheduled && scheduled.status === "False") {
    why = `${scheduled.reason || "Unschedulable"}: ${scheduled.message || ""}`.trim();
  }
  const restarts = (st.containerStatuses || []).reduce((n, c) => n + (c.restartCount || 0), 0);
  return { reason, why, restarts };
}

export function age(timestamp) {
  if (!timestamp) return "";
  const s = Math.max(0, (Date.now() - Date.parse(timestamp)) / 1000);
  if (s < 120) return `${Math.floor(s)}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
