// The interactive API documentation: renders /openapi.json and sends requests from the page
// (same origin, with the token given). No third-party code; works offline.
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};

function skeleton(schema, doc, depth = 0) {
  if (!schema || depth > 4) return null;
  if (schema.$ref) return skeleton(doc.components.schemas[schema.$ref.split("/").pop()], doc, depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (type === "object" || schema.properties) {
    const o = {};
    for (const [k, v] of Object.entries(schema.properties || {})) {
      if ((schema.required || []).includes(k)) o[k] = skeleton(v, doc, depth + 1);
    }
    return o;
  }
  if (type === "array") return [];
  if (type === "integer" || type === "number") return 0;
  if (type === "boolean") return false;
  if (schema.enum) return schema.enum[0];
  return type === "string" ? "" : null;
}

function operation(doc, path, method, op) {
  const params = op.parameters || [];
  const inputs = params.map((p) => {
    const id = `${op.operationId}-${p.name}`;
    return [p, el("label", { htmlFor: id, textContent: `${p.name} (${p.in}${p.required ? ", required" : ""})` }),
      el("input", { id, placeholder: p.schema && p.schema.type ? p.schema.type : "" })];
  });
  let body = null;
  const schema = op.requestBody && op.requestBody.content["application/json"].schema;
  if (schema) {
    body = el("textarea", { value: JSON.stringify(skeleton(schema, doc), null, 2), rows: 6 });
    body.setAttribute("aria-label", `Body of ${method.toUpperCase()} ${path}`);
  }
  const out = el("pre", { className: "docs-out" });
  const send = el("button", { type: "button", textContent: "Send" });
  send.setAttribute("aria-label", `Send ${method.toUpperCase()} ${path}`);
  send.addEventListener("click", async () => {
    let url = path;
    const query = new URLSearchParams();
    const headers = {};
    for (const [p, , input] of inputs) {
      if (!input.value) continue;
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(input.value));
      else if (p.in === "query") query.set(p.name, input.value);
      else if (p.in === "header") headers[p.name] = input.value;
    }
    if ([...query].length) url += `?${query}`;
    if ($("token").value) headers.authorization = `Bearer ${$("token").value}`;
    if (body) headers["content-type"] = "application/json";
    out.textContent = "…";
    try {
      const r = await fetch(url, { method: method.toUpperCase(), headers, body: body ? body.value : undefined });
      const text = await r.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ }
      out.textContent = `${r.status} ${r.statusText}\n${shown.slice(0, 20000)}`;
    } catch (err) { out.textContent = String(err); }
  });
  const form = el("div", { className: "docs-form" }, ...inputs.flatMap(([, l, i]) => [l, i]));
  if (body) form.append(body);
  form.append(send, out);
  const details = el("details", { className: "docs-op" },
    el("summary", {}, el("code", { className: `m-${method}`, textContent: method.toUpperCase() }), " ",
      el("code", { textContent: path }), " ", el("span", { textContent: op.summary })),
    el("p", { className: "muted", textContent: op.description || "" }), form);
  return details;
}

const doc = await (await fetch("/openapi.json")).json();
$("version").textContent = `${doc.info.version} · OpenAPI ${doc.openapi}`;
const byTag = new Map();
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const tag = (op.tags && op.tags[0]) || "other";
    if (!byTag.has(tag)) byTag.set(tag, []);
    byTag.get(tag).push(operation(doc, path, method, op));
  }
}
$("ops").replaceChildren(...[...byTag].map(([tag, ops]) => el("section", {}, el("h2", { textContent: tag }), ...ops)));
