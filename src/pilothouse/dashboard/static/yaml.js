// YAML for people: objects shown as YAML (keys sorted, as kubectl -o yaml prints them),
// the few top-level fields of a manifest read back out of YAML text, and line diffs.
// Parsing the YAML itself is the API server's job: edits go to it as apply patches.

const PLAIN = /^[A-Za-z0-9_./][A-Za-z0-9_ ./:@()=+-]*$/;
const SPECIAL = /^(true|false|yes|no|on|off|y|n|null|~|[-+]?(\.inf|\.nan)|[-+]?[0-9][0-9_]*(\.[0-9]*)?([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o?[0-7]+)$/i;

function scalar(value) {
  if (value === null) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const s = String(value);
  if (s === "" || SPECIAL.test(s) || !PLAIN.test(s) || s.endsWith(" ") || s.includes(": ") || s.endsWith(":")) {
    return `'${s.replaceAll("'", "''")}'`;
  }
  return s;
}

function emit(value, indent, out) {
  const pad = " ".repeat(indent);
  if (Array.isArray(value)) {
    if (!value.length) return out.push(`${pad}[]`);
    for (const item of value) {
      if (item !== null && typeof item === "object" && Object.keys(item).length) {
        const lines = [];
        emit(item, indent + 2, lines);
        lines[0] = `${pad}- ${lines[0].slice(indent + 2)}`;
        out.push(...lines);
      } else {
        out.push(`${pad}- ${inline(item, indent + 2)}`);
      }
    }
    return;
  }
  const keys = Object.keys(value).sort();
  for (const key of keys) {
    const v = value[key];
    const k = scalar(key);
    if (v !== null && typeof v === "object" && (Array.isArray(v) ? v.length : Object.keys(v).length)) {
      out.push(`${pad}${k}:`);
      emit(v, Array.isArray(v) ? indent : indent + 2, out);
    } else {
      out.push(`${pad}${k}: ${inline(v, indent + 2)}`);
    }
  }
}

function inline(v, indent) {
  if (v !== null && typeof v === "object") return Array.isArray(v) ? "[]" : "{}";
  if (typeof v === "string" && v.includes("\n")) {
    const pad = " ".repeat(indent);
    const chomp = v.endsWith("\n") ? "" : "-";
    const body = (v.endsWith("\n") ? v.slice(0, -1) : v).split("\n").map((l) => (l ? pad + l : "")).join("\n");
    return `|${chomp}\n${body}`;
  }
  return scalar(v);
}

export function toYAML(obj) {
  const out = [];
  emit(obj, 0, out);
  return out.join("\n") + "\n";
}

// apiVersion, kind, metadata.name and metadata.namespace of a manifest (YAML or JSON).
export function scanManifest(text) {
  const t = text.trim();
  if (t.startsWith("{")) {
    const o = JSON.parse(t);
    const md = o.metadata || {};
    return { apiVersion: o.apiVersion, kind: o.kind, name: md.name, namespace: md.namespace };
  }
  const out = {};
  let inMeta = false;
  let metaIndent = -1;
  for (const raw of t.split("\n")) {
    if (raw.trim() === "---") break;
    const line = raw.replace(/\s+#.*$/, "");
    if (!line.trim() || line.trim().startsWith("#")) continue;
    const indent = line.length - line.trimStart().length;
    const m = /^\s*([A-Za-z]+):\s*(.*)$/.exec(line);
    if (indent === 0) {
      inMeta = !!m && m[1] === "metadata";
      metaIndent = -1;
      if (m && (m[1] === "apiVersion" || m[1] === "kind")) out[m[1]] = unquote(m[2]);
      continue;
    }
    if (inMeta && m) {
      if (metaIndent < 0) metaIndent = indent;
      if (indent === metaIndent && (m[1] === "name" || m[1] === "namespace")) out[m[1]] = unquote(m[2]);
    }
  }
  return out;
}

function unquote(s) {
  s = s.trim();
  if ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'"))) return s.slice(1, -1);
  return s;
}

// A line diff (longest common subsequence) as [op, line] with op " ", "+" or "-".
export function diffLines(a, b) {
  const x = a ? a.split("\n") : [];
  const y = b ? b.split("\n") : [];
  let start = 0;
  while (start < x.length && start < y.length && x[start] === y[start]) start++;
  let endX = x.length;
  let endY = y.length;
  while (endX > start && endY > start && x[endX - 1] === y[endY - 1]) { endX--; endY--; }
  const xs = x.slice(start, endX);
  const ys = y.slice(start, endY);
  const n = xs.length;
  const m = ys.length;
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i][j] = xs[i] === ys[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const out = x.slice(0, start).map((l) => [" ", l]);
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (xs[i] === ys[j]) { out.push([" ", xs[i]]); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) out.push(["-", xs[i++]]);
    else out.push(["+", ys[j++]]);
  }
  while (i < n) out.push(["-", xs[i++]]);
  while (j < m) out.push(["+", ys[j++]]);
  return out.concat(x.slice(endX).map((l) => [" ", l]));
}

// Only the changed lines with `context` lines around them, in hunks.
export function hunks(ops, context = 3) {
  const keep = new Array(ops.length).fill(false);
  ops.forEach(([op], i) => {
    if (op !== " ") for (let k = Math.max(0, i - context); k <= Math.min(ops.length - 1, i + context); k++) keep[k] = true;
  });
  const out = [];
  let gap = false;
  ops.forEach((entry, i) => {
    if (keep[i]) { if (gap && out.length) out.push(["@", "…"]); out.push(entry); gap = false; }
    else gap = true;
  });
  return out;
}
