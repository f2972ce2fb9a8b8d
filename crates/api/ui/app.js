// The operations dashboard: a no-build ES module served by the platform itself.
// It speaks only the public API (HTTP + the vehicle WebSocket stream) with the signed-in
// account's token, so it can do nothing the account could not do with curl.

const $ = (id) => document.getElementById(id);
const STATE_COLOURS = {
  available: "#3fb950", reserved: "#d29922", on_trip: "#58a6ff", non_operational: "#f85149",
};
const ZONE_STYLE = {
  operating_area: ["rgba(88,166,255,0.05)", "#58a6ff"],
  no_parking: ["rgba(210,153,34,0.18)", "#d29922"],
  no_riding: ["rgba(248,81,73,0.20)", "#f85149"],
  slow_zone: ["rgba(163,113,247,0.18)", "#a371f7"],
  parking_hub: ["rgba(63,185,80,0.18)", "#3fb950"],
};
const CLUSTER_ABOVE = 4000; // more vehicles than this on screen: draw counts per grid cell
const CLUSTER_PX = 28;

// One colour per van route on the map and in the list.
const ROUTE_COLOURS = ["#f778ba", "#d29922", "#a5d6ff", "#7ee787", "#ff7b72", "#d2a8ff"];

const s = {
  token: sessionStorage.getItem("mobility.token"),
  role: null,
  email: "",
  city: null,
  cities: [],
  fences: [],
  vehicles: new Map(), // id -> {id, type, state, lat, lon, battery, at}
  trail: [], // recent positions of the selected vehicle
  selected: null,
  view: { lon: 2.17, lat: 41.39, ppd: 4000 }, // centre and pixels per degree of longitude
  socket: null,
  updates: 0,
  dirty: true,
  drawing: null, // [[lon, lat], ...] while drawing a zone
  lastEvent: 0,
  alerts: [],
  timers: [],
  heat: null, // H3 cells when the supply layer is on
  byBattery: false, // colour vehicles by charge instead of state
  heatKind: null, // "supply" or "demand" while a heat layer is shown
  plan: null, // the field plan while the tasks tab is open
  tiles: null, // {url, attribution} when a basemap is configured
  tileCache: new Map(),
  editing: null, // the zone being edited (its id), while drawing
  dragVertex: null, // index of the corner being dragged
};

// --- API -----------------------------------------------------------------------------------
async function api(path, opts = {}) {
  // Timers and late callbacks may outlive a session: never call the API signed out.
  if (!s.token && !path.startsWith("/v1/auth/")) throw new Error("signed out");
  const headers = { accept: "application/json", ...(opts.headers || {}) };
  if (s.token) headers.authorization = `Bearer ${s.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(path, {
    method: opts.method || "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (r.status === 401 && s.token) { logout("Your session ended; sign in again."); throw new Error("signed out"); }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && (data.detail || data.title)) || `HTTP ${r.status}`);
  return data;
}

// --- sign in -------------------------------------------------------------------------------
$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await api("/v1/auth/login", {
      method: "POST",
      body: { email: $("login-email").value, password: $("login-password").value },
    });
    s.token = session.access_token;
    sessionStorage.setItem("mobility.token", s.token);
    await start();
  } catch (err) {
    s.token = null;
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", () => logout(""));

function logout(message) {
  s.token = null;
  sessionStorage.removeItem("mobility.token");
  if (s.socket) s.socket.close();
  s.socket = null;
  for (const t of s.timers) clearInterval(t);
  s.timers = [];
  s.alerts = [];
  s.lastEvent = 0;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
}

async function start() {
  const me = await api("/v1/me");
  if (me.role !== "staff" && me.role !== "admin") {
    logout("This console is for staff and admins; riders use the app.");
    return;
  }
  s.role = me.role;
  s.email = me.email;
  $("who").textContent = `${me.email} · ${me.role}`;
  for (const el of document.querySelectorAll(".admin-only")) el.hidden = me.role !== "admin";
  const ui = await api("/ui/config.json").catch(() => ({}));
  s.tiles = ui.tile_url ? { url: ui.tile_url, attribution: ui.tile_attribution || "" } : null;
  $("login").hidden = true;
  $("app").hidden = false;
  s.cities = await api("/v1/cities");
  $("city").replaceChildren(...s.cities.map((c) => new Option(c.name, c.id)));
  if (!s.cities.length) { $("map-status").textContent = "No city is configured yet."; return; }
  resize();
  await openCity(s.cities[0].id);
  s.timers.push(setInterval(refreshKpis, 3000), setInterval(refreshAlerts, 3000));
  refreshKpis();
  refreshAlerts();
  refreshKyc();
  if (s.role === "admin") refreshMds();
}

$("city").addEventListener("change", (e) => openCity(e.target.value));

// --- a city: zones, fit, live stream -------------------------------------------------------
function bboxOf(rings) {
  let [w, so, e, n] = [180, 90, -180, -90];
  for (const ring of rings) for (const [lon, lat] of ring) {
    w = Math.min(w, lon); e = Math.max(e, lon); so = Math.min(so, lat); n = Math.max(n, lat);
  }
  return w <= e ? [w, so, e, n] : null;
}

function cityBbox() {
  const c = s.cities.find((x) => x.id === s.city);
  const rings = [];
  if (c && c.operating_area) rings.push(c.operating_area.coordinates[0]);
  for (const f of s.fences) rings.push(f.geometry.coordinates[0]);
  for (const v of s.vehicles.values()) rings.push([[v.lon, v.lat]]);
  return bboxOf(rings) || [2.07, 41.32, 2.23, 41.47];
}

async function openCity(id) {
  s.city = id;
  s.vehicles.clear();
  s.selected = null;
  await loadFences();
  fit();
  connect();
}

async function loadFences() {
  s.fences = await api(`/v1/cities/${s.city}/geofences`);
  renderZones();
  s.dirty = true;
}

function connect() {
  if (s.socket) s.socket.close();
  const [w, so, e, n] = cityBbox();
  const pad = 0.05;
  const bbox = [so - pad, w - pad, n + pad, e + pad].map((x) => x.toFixed(5)).join(",");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const url = `${proto}://${location.host}/v1/stream/vehicles?bbox=${bbox}&max_hz=5&access_token=${encodeURIComponent(s.token)}`;
  const ws = new WebSocket(url);
  s.socket = ws;
  ws.onmessage = (m) => {
    const frame = JSON.parse(m.data);
    // A snapshot (first, or a resync) replaces the map's vehicles; `snapshot_more` frames that
    // follow it and `changes` add to them.
    if (frame.type === "snapshot") s.vehicles.clear();
    if (!Array.isArray(frame.vehicles)) return;
    for (const v of frame.vehicles) {
      s.vehicles.set(v.id, {
        id: v.id, type: v.type, state: v.state, lat: v.lat, lon: v.lon,
        battery: v.battery_pct, at: v.at_ms,
      });
      if (v.id === s.selected) {
        s.trail.push([v.lon, v.lat]);
        if (s.trail.length > 250) s.trail.shift();
      }
    }
    s.updates += frame.vehicles.length;
    s.dirty = true;
    $("map-status").textContent = `${s.vehicles.size} vehicles live · ${s.updates} updates`;
  };
  ws.onclose = () => {
    if (s.socket === ws && s.token) setTimeout(() => s.socket === ws && connect(), 2000);
  };
}

// --- map -----------------------------------------------------------------------------------
const canvas = $("map");
const ctx = canvas.getContext("2d");

// The canvas's size in CSS pixels, read once per resize (reading layout per vehicle is slow).
const size = { w: 800, h: 600 };
function resize() {
  const r = canvas.getBoundingClientRect();
  size.w = r.width || size.w;
  size.h = r.height || size.h;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(r.width * dpr));
  canvas.height = Math.max(1, Math.round(r.height * dpr));
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  s.dirty = true;
}
window.addEventListener("resize", resize);

// Equirectangular, with latitude scaled by cos(lat) so a city looks right.
function kLat() { return 1 / Math.cos((s.view.lat * Math.PI) / 180); }
function project(lon, lat) {
  return [
    size.w / 2 + (lon - s.view.lon) * s.view.ppd,
    size.h / 2 - (lat - s.view.lat) * s.view.ppd * kLat(),
  ];
}
function unproject(x, y) {
  return [s.view.lon + (x - size.w / 2) / s.view.ppd, s.view.lat - (y - size.h / 2) / (s.view.ppd * kLat())];
}

function fit() {
  const [w, so, e, n] = cityBbox();
  s.view.lon = (w + e) / 2;
  s.view.lat = (so + n) / 2;
  const ppdX = size.w / Math.max(e - w, 1e-4);
  const ppdY = size.h / (Math.max(n - so, 1e-4) * kLat());
  s.view.ppd = Math.min(ppdX, ppdY) * 0.9;
  s.dirty = true;
}

function ringPath(ring) {
  ctx.beginPath();
  ring.forEach(([lon, lat], i) => {
    const [x, y] = project(lon, lat);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.closePath();
}

function draw(once) {
  if (once !== true) requestAnimationFrame(draw);
  if (!s.dirty) return;
  s.dirty = false;
  const r = { width: size.w, height: size.h };
  ctx.clearRect(0, 0, r.width, r.height);
  if (s.tiles) drawTiles();
  const c = s.cities.find((x) => x.id === s.city);
  if (c && c.operating_area) {
    ringPath(c.operating_area.coordinates[0]);
    ctx.strokeStyle = "#58a6ff"; ctx.setLineDash([6, 4]); ctx.lineWidth = 1.5; ctx.stroke(); ctx.setLineDash([]);
  }
  for (const f of s.fences) {
    const [fill, stroke] = ZONE_STYLE[f.kind] || ZONE_STYLE.operating_area;
    ringPath(f.geometry.coordinates[0]);
    ctx.fillStyle = fill; ctx.fill(); ctx.strokeStyle = stroke; ctx.lineWidth = 1; ctx.stroke();
  }
  if (s.heat && s.heatKind === "price") {
    // Prices: red above the plan's price, blue below, stronger the further from ×1.00; zones
    // that pay a credit for ending there get a dashed outline.
    for (const c of s.heat) {
      ringPath(c.boundary);
      const d = c.multiplier - 1;
      const a = Math.min(0.7, 0.12 + Math.abs(d) * 1.2).toFixed(3);
      ctx.fillStyle = d >= 0 ? `rgba(248,81,73,${a})` : `rgba(88,166,255,${a})`;
      ctx.fill();
      if (c.end_credit_cents > 0) { ctx.setLineDash([3, 3]); ctx.strokeStyle = "#f0f6fc"; ctx.lineWidth = 1; ctx.stroke(); ctx.setLineDash([]); }
    }
  } else if (s.heat) {
    // Supply: available vehicles per cell (green); demand: searches per cell, red by the share
    // that found nothing.
    const value = (c) => (s.heatKind === "demand" ? c.searches : c.available);
    const max = Math.max(1, ...s.heat.map(value));
    for (const c of s.heat) {
      ringPath(c.boundary);
      const a = (0.1 + 0.6 * (value(c) / max)).toFixed(3);
      ctx.fillStyle = s.heatKind === "demand"
        ? `rgba(${Math.round(88 + 160 * (c.unmet / Math.max(1, c.searches)))},${Math.round(166 - 100 * (c.unmet / Math.max(1, c.searches)))},255,${a})`
        : `rgba(63,185,80,${a})`;
      ctx.fill();
    }
  }
  const visible = [];
  for (const v of s.vehicles.values()) {
    const [x, y] = project(v.lon, v.lat);
    if (x >= -5 && y >= -5 && x <= r.width + 5 && y <= r.height + 5) visible.push([x, y, v]);
  }
  if (visible.length > CLUSTER_ABOVE) {
    const cells = new Map();
    for (const [x, y, v] of visible) {
      const key = Math.floor(x / CLUSTER_PX) * 100000 + Math.floor(y / CLUSTER_PX);
      let cell = cells.get(key);
      if (!cell) { cell = { x: 0, y: 0, n: 0, avail: 0 }; cells.set(key, cell); }
      cell.x += x; cell.y += y; cell.n += 1; if (v.state === "available") cell.avail += 1;
    }
    ctx.font = "10px system-ui"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (const cell of cells.values()) {
      const x = cell.x / cell.n, y = cell.y / cell.n;
      const radius = Math.min(13, 3 + Math.sqrt(cell.n));
      ctx.beginPath(); ctx.arc(x, y, radius, 0, Math.PI * 2);
      ctx.fillStyle = cell.avail / cell.n > 0.5 ? "rgba(63,185,80,0.75)" : "rgba(88,166,255,0.75)";
      ctx.fill();
      if (cell.n > 1) { ctx.fillStyle = "#0d1117"; ctx.fillText(String(cell.n), x, y); }
    }
  } else {
    // One path per colour: a few fills instead of one per vehicle.
    const groups = new Map();
    const low = [];
    for (const [x, y, v] of visible) {
      const colour = s.byBattery ? batteryColour(v.battery) : STATE_COLOURS[v.state] || "#8b949e";
      let g = groups.get(colour);
      if (!g) { g = []; groups.set(colour, g); }
      g.push(x, y);
      if (v.battery !== undefined && v.battery !== null && v.battery < 20) low.push(x, y);
    }
    for (const [colour, g] of groups) {
      ctx.beginPath();
      for (let i = 0; i < g.length; i += 2) { ctx.moveTo(g[i] + 3.2, g[i + 1]); ctx.arc(g[i], g[i + 1], 3.2, 0, Math.PI * 2); }
      ctx.fillStyle = colour; ctx.fill();
    }
    if (low.length) {
      ctx.beginPath();
      for (let i = 0; i < low.length; i += 2) { ctx.moveTo(low[i] + 3.2, low[i + 1]); ctx.arc(low[i], low[i + 1], 3.2, 0, Math.PI * 2); }
      ctx.strokeStyle = "#f0f6fc"; ctx.lineWidth = 1; ctx.stroke();
    }
  }
  if (s.plan && !$("pane-tasks").hidden) {
    // Each van's route from the depot through its stops, numbered in order.
    const depot = project(s.plan.depot[1], s.plan.depot[0]);
    ctx.font = "10px system-ui"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    s.plan.routes.forEach((r, i) => {
      const colour = ROUTE_COLOURS[i % ROUTE_COLOURS.length];
      ctx.beginPath(); ctx.moveTo(depot[0], depot[1]);
      for (const st of r.stops) { const [x, y] = project(st.lon, st.lat); ctx.lineTo(x, y); }
      ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.stroke();
      r.stops.forEach((st, k) => {
        if (st.kind === "depot" || st.kind === "reload") return;
        const [x, y] = project(st.lon, st.lat);
        ctx.beginPath(); ctx.arc(x, y, 7, 0, Math.PI * 2); ctx.fillStyle = colour; ctx.fill();
        ctx.fillStyle = "#0d1117"; ctx.fillText(String(k + 1), x, y);
      });
    });
    ctx.fillStyle = "#f0f6fc"; ctx.fillRect(depot[0] - 5, depot[1] - 5, 10, 10);
  }
  if (s.selected && s.vehicles.has(s.selected)) {
    if (s.trail.length > 1) {
      ctx.beginPath();
      s.trail.forEach(([lon, lat], i) => { const [x, y] = project(lon, lat); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
      ctx.strokeStyle = "#f0f6fc"; ctx.lineWidth = 1.5; ctx.stroke();
    }
    const v = s.vehicles.get(s.selected);
    const [x, y] = project(v.lon, v.lat);
    ctx.beginPath(); ctx.arc(x, y, 8, 0, Math.PI * 2); ctx.strokeStyle = "#f0f6fc"; ctx.lineWidth = 2; ctx.stroke();
  }
  if (s.drawing && s.drawing.length) {
    ctx.beginPath();
    s.drawing.forEach(([lon, lat], i) => { const [x, y] = project(lon, lat); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
    if (s.drawing.length > 2) ctx.closePath();
    ctx.strokeStyle = "#f0f6fc"; ctx.setLineDash([4, 3]); ctx.lineWidth = 2; ctx.stroke(); ctx.setLineDash([]);
    for (const [lon, lat] of s.drawing) { const [x, y] = project(lon, lat); ctx.fillStyle = "#f0f6fc"; ctx.fillRect(x - 3, y - 3, 6, 6); }
  }
}
requestAnimationFrame(draw);

// An optional basemap (XYZ tiles, Web Mercator). Each tile is stretched between its projected
// corners, which at city scale matches this map's projection to a fraction of a pixel.
function drawTiles() {
  const z = Math.max(0, Math.min(19, Math.round(Math.log2((s.view.ppd * 360) / 256))));
  const n = 2 ** z;
  const tileX = (lon) => Math.floor(((lon + 180) / 360) * n);
  const tileY = (lat) => {
    const r = (Math.max(-85, Math.min(85, lat)) * Math.PI) / 180;
    return Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * n);
  };
  const lonOf = (x) => (x / n) * 360 - 180;
  const latOf = (y) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI;
  const [west, north] = unproject(0, 0);
  const [east, south] = unproject(size.w, size.h);
  const [x0, x1, y0, y1] = [tileX(west), tileX(east), tileY(north), tileY(south)];
  if ((x1 - x0 + 1) * (y1 - y0 + 1) > 80) return;
  for (let x = x0; x <= x1; x++) for (let y = y0; y <= y1; y++) {
    if (x < 0 || y < 0 || x >= n || y >= n) continue;
    const key = `${z}/${x}/${y}`;
    let img = s.tileCache.get(key);
    if (!img) {
      if (s.tileCache.size > 400) s.tileCache.clear();
      img = new Image();
      img.onload = () => { s.dirty = true; };
      img.src = s.tiles.url.replace("{z}", z).replace("{x}", x).replace("{y}", y);
      s.tileCache.set(key, img);
    }
    if (!img.complete || !img.naturalWidth) continue;
    const [ax, ay] = project(lonOf(x), latOf(y));
    const [bx, by] = project(lonOf(x + 1), latOf(y + 1));
    ctx.globalAlpha = 0.55;
    ctx.drawImage(img, ax, ay, bx - ax, by - ay);
    ctx.globalAlpha = 1;
  }
  if (s.tiles.attribution) {
    ctx.font = "11px system-ui"; ctx.fillStyle = "#8b9aa7"; ctx.textAlign = "right"; ctx.textBaseline = "top";
    ctx.fillText(s.tiles.attribution, size.w - 8, 8);
  }
}

function zoom(factor, x, y) {
  const r = { width: size.w, height: size.h };
  const [lon, lat] = unproject(x ?? r.width / 2, y ?? r.height / 2);
  s.view.ppd = Math.min(2e7, Math.max(50, s.view.ppd * factor));
  const [lon2, lat2] = unproject(x ?? r.width / 2, y ?? r.height / 2);
  s.view.lon += lon - lon2; s.view.lat += lat - lat2;
  s.dirty = true;
}
canvas.addEventListener("wheel", (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1.25 : 0.8, e.offsetX, e.offsetY); }, { passive: false });
$("zoom-in").addEventListener("click", () => zoom(1.5));
$("zoom-out").addEventListener("click", () => zoom(1 / 1.5));
$("fit").addEventListener("click", fit);
function batteryColour(b) {
  if (b === undefined || b === null) return "#8b949e";
  return b < 20 ? STATE_COLOURS.non_operational : b < 50 ? STATE_COLOURS.reserved : STATE_COLOURS.available;
}
$("by-battery").addEventListener("click", () => {
  s.byBattery = !s.byBattery;
  $("by-battery").setAttribute("aria-pressed", String(s.byBattery));
  $("legend-state").hidden = s.byBattery;
  $("legend-battery").hidden = !s.byBattery;
  s.dirty = true;
});
async function toggleHeat(kind) {
  const on = s.heatKind !== kind;
  s.heatKind = on ? kind : null;
  $("heat").setAttribute("aria-pressed", String(s.heatKind === "supply"));
  $("demand").setAttribute("aria-pressed", String(s.heatKind === "demand"));
  $("prices").setAttribute("aria-pressed", String(s.heatKind === "price"));
  s.heat = on ? await loadHeat() : null;
  s.dirty = true;
}
$("heat").addEventListener("click", () => toggleHeat("supply"));
$("demand").addEventListener("click", () => toggleHeat("demand"));
$("prices").addEventListener("click", () => toggleHeat("price"));
async function loadHeat() {
  if (!s.heatKind) return null;
  try { return (await api(`/v1/fleet/h3?city=${s.city}&resolution=8&layer=${s.heatKind}`)).cells; } catch { return null; }
}
canvas.addEventListener("keydown", (e) => {
  const step = 60 / s.view.ppd;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
  if (moves[e.key]) { s.view.lon += moves[e.key][0]; s.view.lat += moves[e.key][1]; s.dirty = true; e.preventDefault(); }
  if (e.key === "+") zoom(1.5);
  if (e.key === "-") zoom(1 / 1.5);
});

let drag = null;
canvas.addEventListener("pointerdown", (e) => {
  drag = { x: e.offsetX, y: e.offsetY, moved: false };
  // While drawing, pressing on a corner grabs it (to move it).
  s.dragVertex = null;
  if (s.drawing) {
    s.drawing.forEach(([lon, lat], i) => {
      const [x, y] = project(lon, lat);
      if ((x - e.offsetX) ** 2 + (y - e.offsetY) ** 2 < 64) s.dragVertex = i;
    });
  }
});
canvas.addEventListener("pointermove", (e) => {
  if (!drag) return;
  const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
  if (drag.moved && s.drawing && s.dragVertex !== null) {
    s.drawing[s.dragVertex] = unproject(e.offsetX, e.offsetY);
    s.dirty = true;
    return;
  }
  if (drag.moved && !s.drawing) {
    s.view.lon -= dx / s.view.ppd; s.view.lat += dy / (s.view.ppd * kLat());
    drag.x = e.offsetX; drag.y = e.offsetY; s.dirty = true;
  }
});
canvas.addEventListener("pointerup", (e) => {
  const clicked = drag && !drag.moved;
  drag = null;
  if (!clicked) { s.dragVertex = null; return; }
  if (s.drawing && s.dragVertex !== null) { s.dragVertex = null; return; }
  if (s.drawing) { s.drawing.push(unproject(e.offsetX, e.offsetY)); s.dirty = true; zoneHint(); return; }
  let best = null, bestD = 12 * 12;
  for (const v of s.vehicles.values()) {
    const [x, y] = project(v.lon, v.lat);
    const d = (x - e.offsetX) ** 2 + (y - e.offsetY) ** 2;
    if (d < bestD) { best = v; bestD = d; }
  }
  if (best) openVehicle(best.id);
});

// --- vehicle detail --------------------------------------------------------------------------
$("find-form").addEventListener("submit", (e) => { e.preventDefault(); const id = $("find-id").value.trim(); if (id) openVehicle(id); });

function fact(dl, name, value) {
  const dt = document.createElement("dt"); dt.textContent = name;
  const dd = document.createElement("dd"); dd.textContent = value;
  dl.append(dt, dd);
}

async function openVehicle(id) {
  selectTab("vehicle");
  const box = $("vehicle-detail");
  if (s.selected !== id) s.trail = [];
  s.selected = id;
  s.dirty = true;
  try {
    const v = await api(`/v1/vehicles/${encodeURIComponent(id)}`);
    const head = document.createElement("h2");
    head.textContent = `${v.type} ${v.id.slice(0, 8)}`;
    const badge = document.createElement("span");
    badge.className = `badge ${v.state}`; badge.textContent = v.state;
    const dl = document.createElement("dl"); dl.className = "facts";
    fact(dl, "id", v.id);
    fact(dl, "battery", v.battery_pct === undefined ? "unknown" : `${v.battery_pct} %`);
    fact(dl, "position", v.lat === undefined ? "never reported" : `${v.lat.toFixed(5)}, ${v.lon.toFixed(5)}`);
    fact(dl, "last report", v.reported_at_ms ? new Date(v.reported_at_ms).toLocaleTimeString() : "–");
    if (v.speed_mps !== undefined) fact(dl, "speed", `${(v.speed_mps * 3.6).toFixed(1)} km/h`);
    if (v.odometer_m !== undefined) fact(dl, "odometer", `${(v.odometer_m / 1000).toFixed(1)} km`);
    const commands = document.createElement("div"); commands.className = "commands";
    for (const c of ["lock", "unlock", "ring", "locate"]) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = c[0].toUpperCase() + c.slice(1);
      b.setAttribute("aria-label", `Send ${c} to the vehicle`);
      b.addEventListener("click", () => command(v.id, c));
      commands.append(b);
    }
    if (s.role === "admin" && v.state !== "removed") {
      const retire = Object.assign(document.createElement("button"), { type: "button", textContent: "Decommission" });
      retire.setAttribute("aria-label", "Decommission the vehicle");
      retire.addEventListener("click", () => decommission(v));
      commands.append(retire);
    }
    const outcome = document.createElement("p"); outcome.id = "command-outcome"; outcome.setAttribute("aria-live", "polite");
    const history = document.createElement("ul"); history.className = "list"; history.id = "command-history";
    const chart = document.createElement("canvas"); chart.id = "vehicle-chart"; chart.width = 330; chart.height = 110;
    chart.setAttribute("aria-label", "Battery and speed over the last hour");
    chart.setAttribute("role", "img");
    const h3a = Object.assign(document.createElement("h3"), { textContent: "Last hour" });
    const h3b = Object.assign(document.createElement("h3"), { textContent: "Events" });
    const events = document.createElement("ul"); events.className = "list"; events.id = "vehicle-events";
    const h3c = Object.assign(document.createElement("h3"), { textContent: "Bookings" });
    const bookings = document.createElement("ul"); bookings.className = "list"; bookings.id = "vehicle-bookings";
    const h3d = Object.assign(document.createElement("h3"), { textContent: "Commands" });
    box.replaceChildren(head, badge, dl, commands, outcome, h3a, chart, h3b, events, h3c, bookings, h3d, history);
    loadCommands(v.id);
    loadVehicleHistory(v.id);
  } catch (err) {
    box.replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: err.message }));
  }
}

async function command(id, kind) {
  const out = $("command-outcome");
  out.textContent = `${kind}: waiting for the vehicle…`;
  try {
    const r = await api(`/v1/vehicles/${id}/commands`, { method: "POST", body: { command: kind, wait: true, timeout_s: 10 } });
    out.textContent = `${kind}: ${r.state}${r.detail ? ` (${r.detail})` : ""}`;
  } catch (err) {
    out.textContent = `${kind}: ${err.message}`;
  }
  loadCommands(id);
}

// Out of service for good (MDS `decommissioned` → removed). Cars and vans first leave service.
async function decommission(v) {
  const car = v.type === "car" || v.type === "van";
  const events = car && v.state === "available" ? ["service_end", "decommissioned"] : ["decommissioned"];
  try {
    await api("/v1/vehicles/events", { method: "POST", body: { changes: [{ vehicle_id: v.id, event_types: events, vehicle_state: "removed" }] } });
    openVehicle(v.id);
  } catch (err) { $("command-outcome").textContent = `decommission: ${err.message}`; }
}

async function loadCommands(id) {
  const list = $("command-history");
  if (!list) return;
  try {
    const cmds = await api(`/v1/vehicles/${id}/commands`);
    list.replaceChildren(...cmds.slice(0, 10).map((c) => Object.assign(document.createElement("li"), {
      textContent: `${new Date(c.created_at_ms).toLocaleTimeString()} ${c.command} → ${c.state}`,
    })));
  } catch { /* history is a nicety */ }
}

async function loadVehicleHistory(id) {
  try {
    const [tel, events, bookings] = await Promise.all([
      api(`/v1/vehicles/${id}/telemetry?minutes=60`),
      api(`/v1/vehicles/${id}/events?limit=20`),
      api(`/v1/bookings?vehicle_id=${id}&limit=10`),
    ]);
    if (s.selected !== id) return;
    chartTelemetry($("vehicle-chart"), tel.points);
    // Its last positions on the map: the hour's track, then what the stream adds.
    s.trail = tel.points.slice(-200).map((p) => [p.lon, p.lat]);
    s.dirty = true;
    $("vehicle-events").replaceChildren(...events.map((e) => Object.assign(document.createElement("li"), {
      textContent: `${new Date(e.at_ms).toLocaleTimeString()} ${e.event_types.join(", ")} → ${e.to}${e.late ? " (late)" : ""}`,
    })));
    $("vehicle-bookings").replaceChildren(...bookings.map(bookingItem));
    if (!bookings.length) $("vehicle-bookings").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "None yet." }));
  } catch { /* partial detail is fine */ }
}

// Battery (green, 0–100 %) and speed (blue, scaled to the hour's top speed) against time.
function chartTelemetry(el, points) {
  const c = el.getContext("2d");
  const [w, h] = [el.width, el.height];
  c.clearRect(0, 0, w, h);
  c.strokeStyle = "#26313a"; c.strokeRect(0.5, 0.5, w - 1, h - 1);
  el.dataset.points = String(points.length);
  if (!points.length) { c.fillStyle = "#8b9aa7"; c.font = "12px system-ui"; c.fillText("No reports in the last hour.", 10, h / 2); return; }
  if (points.length === 1) points = [points[0], { ...points[0], at_ms: points[0].at_ms + 1 }];
  const t0 = points[0].at_ms, t1 = points[points.length - 1].at_ms || t0 + 1;
  const x = (t) => 4 + ((t - t0) / Math.max(1, t1 - t0)) * (w - 8);
  const line = (value, max, colour) => {
    c.beginPath();
    let started = false;
    for (const p of points) {
      const v = value(p);
      if (v === null || v === undefined) continue;
      const y = h - 4 - (v / max) * (h - 8);
      if (started) c.lineTo(x(p.at_ms), y); else { c.moveTo(x(p.at_ms), y); started = true; }
    }
    c.strokeStyle = colour; c.lineWidth = 1.5; c.stroke();
  };
  line((p) => p.battery_pct, 100, "#3fb950");
  const top = Math.max(1, ...points.map((p) => p.speed_mps || 0));
  line((p) => p.speed_mps, top, "#58a6ff");
  c.fillStyle = "#8b9aa7"; c.font = "11px system-ui";
  c.fillText(`battery ${points[points.length - 1].battery_pct ?? "?"} % · top speed ${(top * 3.6).toFixed(0)} km/h`, 8, 14);
}

function bookingItem(b) {
  const li = document.createElement("li");
  const when = new Date(b.created_at_ms).toLocaleString();
  const fare = b.receipt && b.receipt.total_display ? ` · ${b.receipt.total_display}` : "";
  li.append(`${when} · ${b.state}${b.distance_m ? ` · ${(b.distance_m / 1000).toFixed(1)} km` : ""}${fare} `);
  const v = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: b.vehicle_id.slice(0, 8) });
  v.setAttribute("aria-label", `Open vehicle ${b.vehicle_id}`);
  v.addEventListener("click", () => openVehicle(b.vehicle_id));
  li.append(v);
  return li;
}

// --- tasks: field work derived from the live fleet --------------------------------------------
function refreshTasks() {
  const tasks = [];
  for (const v of s.vehicles.values()) {
    if (v.state === "non_operational") tasks.push({ rank: 0, v, what: "inspect: out of service" });
    else if (v.battery !== undefined && v.battery !== null && v.battery < 20 && v.state === "available") {
      tasks.push({ rank: 1 + v.battery / 100, v, what: `swap battery (${v.battery} %)` });
    }
  }
  const alerted = new Set();
  for (const a of s.alerts) {
    if (alerted.has(a.vehicle_id)) continue;
    alerted.add(a.vehicle_id);
    const v = s.vehicles.get(a.vehicle_id);
    if (v) tasks.push({ rank: 0.5, v, what: `check: ${a.name.replaceAll("_", " ")}` });
  }
  tasks.sort((a, b) => a.rank - b.rank);
  $("tasks").replaceChildren(...tasks.slice(0, 200).map((t) => {
    const li = document.createElement("li");
    const b = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: `${t.v.type} ${t.v.id.slice(0, 8)}` });
    b.setAttribute("aria-label", `Open vehicle ${t.v.id}`);
    b.addEventListener("click", () => openVehicle(t.v.id));
    li.append(b, ` ${t.what}`);
    return li;
  }));
  if (!tasks.length) $("tasks").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "Nothing to do right now." }));
  refreshPlan();
}

// --- the field plan: routed van stops from the platform's planner -----------------------------
const STOP_WORDS = { swap: "swap battery", pickup: "pick up", dropoff: "drop off", collect: "collect for repair", reload: "reload packs at the depot", depot: "back to the depot" };
async function refreshPlan() {
  try {
    const plan = await api(`/v1/ops/plan?city=${encodeURIComponent(s.city)}`);
    s.plan = plan;
    s.dirty = true;
    if (!plan) {
      $("routes").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "No plan yet." }));
      return;
    }
    const counts = Object.entries(plan.tasks).map(([k, n]) => `${n} ${k}`).join(", ") || "no tasks";
    $("plan-summary").textContent = `Planned ${new Date(plan.planned_at_ms).toLocaleTimeString()} for ${plan.vans} van${plan.vans === 1 ? "" : "s"}: ${counts}; ${plan.unassigned} left for the next period.`;
    $("routes").replaceChildren(...plan.routes.map((r, i) => {
      const li = document.createElement("li");
      li.append(`${r.van} · ${r.stops.length} stops · ${(r.distance_m / 1000).toFixed(1)} km · ${Math.round(r.duration_s / 60)} min`);
      li.style.borderLeft = `4px solid ${ROUTE_COLOURS[i % ROUTE_COLOURS.length]}`;
      const ol = document.createElement("ol");
      ol.className = "stops";
      for (const st of r.stops) {
        const item = document.createElement("li");
        item.dataset.kind = st.kind;
        item.append(`${STOP_WORDS[st.kind] || st.kind} (+${Math.round(st.arrival_s / 60)} min) `);
        if (st.vehicle_id) {
          const b = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: st.vehicle_id.slice(0, 8) });
          b.setAttribute("aria-label", `Open vehicle ${st.vehicle_id}`);
          b.addEventListener("click", () => openVehicle(st.vehicle_id));
          item.append(b);
        }
        ol.append(item);
      }
      li.append(ol);
      return li;
    }));
    if (!plan.routes.length) $("routes").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "No van has work this period." }));
  } catch (err) {
    $("routes").replaceChildren(Object.assign(document.createElement("li"), { className: "error", textContent: err.message }));
  }
}
$("plan-refresh").addEventListener("click", async () => {
  try {
    await api(`/v1/admin/cities/${encodeURIComponent(s.city)}/intel/refresh`, { method: "POST" });
  } catch (err) {
    $("routes").replaceChildren(Object.assign(document.createElement("li"), { className: "error", textContent: err.message }));
    return;
  }
  refreshPlan();
});

// --- bookings --------------------------------------------------------------------------------
$("bookings-form").addEventListener("submit", (e) => { e.preventDefault(); refreshBookings(); });
async function refreshBookings() {
  const q = new URLSearchParams({ city: s.city, limit: "100" });
  if ($("bookings-state").value) q.set("state", $("bookings-state").value);
  if ($("bookings-vehicle").value.trim()) q.set("vehicle_id", $("bookings-vehicle").value.trim());
  try {
    const list = await api(`/v1/bookings?${q}`);
    $("bookings").replaceChildren(...list.map(bookingItem));
    if (!list.length) $("bookings").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "No bookings match." }));
  } catch (err) {
    $("bookings").replaceChildren(Object.assign(document.createElement("li"), { className: "error", textContent: err.message }));
  }
}

// --- fleet registry and pricing (admin) -------------------------------------------------------
$("city-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = $("city-id").value.trim();
  try {
    await api(`/v1/admin/cities/${encodeURIComponent(id)}`, { method: "PUT", body: {
      name: $("city-name").value.trim(), timezone: $("city-tz").value.trim(), currency: $("city-currency").value.trim().toUpperCase(),
    } });
    s.cities = await api("/v1/cities");
    $("city").replaceChildren(...s.cities.map((c) => new Option(c.name, c.id, false, c.id === s.city)));
    $("city-out").textContent = `Saved ${id}.`;
  } catch (err) { $("city-out").textContent = err.message; }
});
$("register-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const v = await api("/v1/admin/vehicles", { method: "POST", body: { city: s.city, type: $("register-type").value } });
    $("register-out").hidden = false;
    $("register-out").value = `vehicle ${v.id}\nMQTT user ${v.id}\nsecret ${v.secret || v.device_secret || "(see the API answer)"}`;
  } catch (err) { $("register-out").hidden = false; $("register-out").value = err.message; }
});
async function refreshPlans() {
  try {
    const plans = await api(`/v1/cities/${s.city}/pricing`);
    $("plans").replaceChildren(...plans.map((p) => {
      const li = document.createElement("li");
      const money = (m) => (m / 100).toFixed(2);
      li.append(`${p.vehicle_type}: ${p.name}${p.default ? " (built-in)" : ""} · ${money(p.unlock_fee)} + ${money(p.per_minute)}/min${p.per_km ? ` + ${money(p.per_km)}/km` : ""}${p.daily_cap ? ` · cap ${money(p.daily_cap)}` : ""} ${p.currency} `);
      const edit = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Edit" });
      edit.setAttribute("aria-label", `Edit the ${p.vehicle_type} plan`);
      edit.addEventListener("click", () => editPlan(li, p));
      li.append(edit);
      return li;
    }));
  } catch { /* admin only */ }
}
function editPlan(li, p) {
  const form = document.createElement("form");
  form.className = "plan-form";
  const field = (name, label, value) => {
    const id = `plan-${p.vehicle_type}-${name}`;
    const l = Object.assign(document.createElement("label"), { htmlFor: id, textContent: label });
    const i = Object.assign(document.createElement("input"), { id, value: String(value ?? ""), inputMode: "numeric" });
    form.append(l, i);
    return i;
  };
  const name = field("name", "Name", p.name === "default" ? `${p.vehicle_type} standard` : p.name);
  const unlock = field("unlock", "Unlock fee (minor units)", p.unlock_fee);
  const minute = field("minute", "Per minute (minor units)", p.per_minute);
  const km = field("km", "Per km (minor units)", p.per_km);
  const cap = field("cap", "Daily cap (minor units, empty: none)", p.daily_cap);
  const save = Object.assign(document.createElement("button"), { type: "submit", textContent: "Save plan" });
  const out = Object.assign(document.createElement("p"), { className: "error" });
  form.append(save, out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), unlock_fee: Number(unlock.value), per_minute: Number(minute.value), per_km: Number(km.value) };
    if (cap.value.trim()) body.daily_cap = Number(cap.value);
    try { await api(`/v1/admin/cities/${s.city}/pricing/${p.vehicle_type}`, { method: "PUT", body }); refreshPlans(); }
    catch (err) { out.textContent = err.message; }
  });
  li.replaceChildren(form);
}

async function refreshPasses() {
  try {
    const passes = await api(`/v1/cities/${s.city}/passes`);
    $("passes").replaceChildren(...passes.map((p) => Object.assign(document.createElement("li"), {
      textContent: `${p.name} (${p.id}) · ${p.price_display} · ${p.valid_days} days · ${p.vehicle_types.join(", ")} · ${[p.free_unlock ? "free unlocks" : "", p.free_minutes ? `${p.free_minutes} free min/trip` : ""].filter(Boolean).join(", ")}`,
    })));
    if (!passes.length) $("passes").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "No passes on sale." }));
  } catch { /* next time */ }
}
$("pass-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = $("pass-id").value.trim();
  const body = {
    name: $("pass-name").value.trim(), price: Number($("pass-price").value), valid_days: Number($("pass-days").value),
    vehicle_types: $("pass-types").value.split(",").map((t) => t.trim()).filter(Boolean),
    free_unlock: $("pass-unlock").checked, free_minutes: Number($("pass-minutes").value || 0),
  };
  try {
    await api(`/v1/admin/cities/${s.city}/passes/${encodeURIComponent(id)}`, { method: "PUT", body });
    $("pass-out").textContent = `Saved ${id}.`;
    refreshPasses();
  } catch (err) { $("pass-out").textContent = err.message; }
});

// --- users (admin) ---------------------------------------------------------------------------
async function refreshUsers() {
  try {
    const users = await api("/v1/admin/users?limit=500");
    $("users").replaceChildren(...users.map((u) => {
      const li = document.createElement("li");
      li.dataset.user = u.email;
      const select = document.createElement("select");
      select.setAttribute("aria-label", `Role of ${u.email}`);
      for (const r of ["rider", "staff", "admin"]) select.append(new Option(r, r, false, r === u.role));
      select.disabled = u.email === s.email;
      const status = Object.assign(document.createElement("span"), { className: "muted" });
      select.addEventListener("change", async () => {
        try { await api(`/v1/admin/users/${u.id}/role`, { method: "PUT", body: { role: select.value } }); status.textContent = " saved"; }
        catch (err) { status.textContent = ` ${err.message}`; }
      });
      li.append(`${u.email} `, select, status);
      return li;
    }));
  } catch { /* admin only */ }
}

// --- KPIs and alerts -------------------------------------------------------------------------
async function refreshKpis() {
  if (!s.city) return;
  try {
    const st = await api(`/v1/fleet/stats?city=${s.city}`);
    const by = st.by_state || {};
    $("kpi-total").textContent = st.total;
    $("kpi-available").textContent = by.available || 0;
    $("kpi-on-trip").textContent = by.on_trip || 0;
    $("kpi-reserved").textContent = by.reserved || 0;
    $("kpi-down").textContent = by.non_operational || 0;
    $("kpi-low").textContent = st.battery ? st.battery["0-19"] : "–";
    const d = st.searches_last_hour;
    $("kpi-unmet").textContent = d && d.total ? `${d.unmet} of ${d.total}` : "0";
    if (s.heat) { s.heat = (await loadHeat()) || s.heat; s.dirty = true; }
  } catch { /* next tick */ }
}

async function refreshAlerts() {
  try {
    const events = await api(`/v1/fleet/events?after=${s.lastEvent}&limit=200`);
    for (const e of events) { s.lastEvent = Math.max(s.lastEvent, e.seq); if (e.kind === "alert") s.alerts.unshift(e); }
    s.alerts = s.alerts.slice(0, 100);
    $("kpi-alerts").textContent = s.alerts.length;
    $("alerts").replaceChildren(...s.alerts.map((a) => {
      const li = document.createElement("li");
      const b = document.createElement("button"); b.className = "link"; b.textContent = a.vehicle_id.slice(0, 8);
      b.setAttribute("aria-label", `Open vehicle ${a.vehicle_id}`);
      b.addEventListener("click", () => openVehicle(a.vehicle_id));
      li.append(`${new Date(a.at_ms).toLocaleTimeString()} ${a.name.replaceAll("_", " ")} `, b);
      return li;
    }));
  } catch { /* next tick */ }
}

// --- KYC review ------------------------------------------------------------------------------
$("kyc-refresh").addEventListener("click", refreshKyc);
async function refreshKyc() {
  try {
    const queue = await api("/v1/kyc/queue");
    $("kyc-list").replaceChildren(...queue.map((k) => {
      const li = document.createElement("li");
      li.dataset.kyc = k.id;
      const dl = document.createElement("dl"); dl.className = "facts";
      fact(dl, "name", k.full_name); fact(dl, "kind", k.kind); fact(dl, "born", k.date_of_birth);
      fact(dl, "document", k.document_number); if (k.expires_on) fact(dl, "expires", k.expires_on);
      const reason = Object.assign(document.createElement("input"), { placeholder: "Reason (to reject)" });
      reason.setAttribute("aria-label", `Reason to reject ${k.full_name}`);
      const approve = Object.assign(document.createElement("button"), { type: "button", textContent: "Approve" });
      approve.setAttribute("aria-label", `Approve ${k.full_name}`);
      const reject = Object.assign(document.createElement("button"), { type: "button", textContent: "Reject" });
      reject.setAttribute("aria-label", `Reject ${k.full_name}`);
      const status = Object.assign(document.createElement("p"), { className: "muted" });
      approve.addEventListener("click", () => decide(k.id, "verified", null, status));
      reject.addEventListener("click", () => {
        if (!reason.value.trim()) { status.textContent = "Give a reason to reject."; return; }
        decide(k.id, "rejected", reason.value.trim(), status);
      });
      const row = document.createElement("div"); row.className = "row"; row.append(approve, reject);
      li.append(dl, reason, row, status);
      return li;
    }));
    if (!queue.length) $("kyc-list").replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "Nothing to review." }));
  } catch (err) {
    $("kyc-list").replaceChildren(Object.assign(document.createElement("li"), { className: "error", textContent: err.message }));
  }
}
async function decide(id, decision, reason, status) {
  try {
    await api(`/v1/kyc/${id}/decision`, { method: "POST", body: reason ? { decision, reason } : { decision } });
    status.textContent = decision === "verified" ? "Approved." : "Rejected.";
    setTimeout(refreshKyc, 600);
  } catch (err) { status.textContent = err.message; }
}

// --- zones -----------------------------------------------------------------------------------
function renderZones() {
  $("zones").replaceChildren(...s.fences.map((f) => {
    const li = document.createElement("li");
    li.dataset.zone = f.name;
    li.append(`${f.name} · ${f.kind.replaceAll("_", " ")}${f.speed_limit_kmh ? ` · ${f.speed_limit_kmh} km/h` : ""} `);
    if (s.role === "admin") {
      const edit = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Edit" });
      edit.setAttribute("aria-label", `Edit zone ${f.name}`);
      edit.addEventListener("click", () => editZone(f));
      li.append(edit);
      const del = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Delete" });
      del.setAttribute("aria-label", `Delete zone ${f.name}`);
      del.addEventListener("click", async () => { await api(`/v1/admin/geofences/${f.id}`, { method: "DELETE" }); loadFences(); });
      li.append(del);
    }
    return li;
  }));
}

function zoneHint() {
  const n = s.drawing ? s.drawing.length : 0;
  $("zone-hint").textContent = n < 3 ? `Click the map to add corners (${n} so far, at least 3).` : `${n} corners: save, or keep clicking.`;
}
// Editing a zone: its corners become draggable (and clicks add more); saving replaces it.
function editZone(f) {
  s.drawing = f.geometry.coordinates[0].slice(0, -1).map(([lon, lat]) => [lon, lat]);
  s.editing = f.id;
  $("zone-name").value = f.name;
  $("zone-kind").value = f.kind;
  if (f.speed_limit_kmh) $("zone-speed").value = f.speed_limit_kmh;
  canvas.classList.add("drawing");
  $("draw").setAttribute("aria-pressed", "true");
  $("zone-form").hidden = false;
  $("zone-error").textContent = "";
  $("zone-hint").textContent = "Drag corners to move them, click to add one, then save.";
  s.dirty = true;
}
$("draw").addEventListener("click", () => {
  s.drawing = [];
  s.editing = null;
  canvas.classList.add("drawing");
  $("draw").setAttribute("aria-pressed", "true");
  $("zone-form").hidden = false;
  $("zone-error").textContent = "";
  zoneHint();
});
function stopDrawing() {
  s.drawing = null; s.editing = null; canvas.classList.remove("drawing");
  $("draw").setAttribute("aria-pressed", "false"); $("zone-form").hidden = true; s.dirty = true;
}
$("zone-cancel").addEventListener("click", stopDrawing);
$("zone-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!s.drawing || s.drawing.length < 3) { $("zone-error").textContent = "A zone needs at least 3 corners."; return; }
  const ring = [...s.drawing, s.drawing[0]].map(([lon, lat]) => [Number(lon.toFixed(6)), Number(lat.toFixed(6))]);
  const body = { name: $("zone-name").value.trim(), kind: $("zone-kind").value, geometry: { type: "Polygon", coordinates: [ring] } };
  if (body.kind === "slow_zone") body.speed_limit_kmh = Number($("zone-speed").value);
  try {
    if (s.editing) await api(`/v1/admin/geofences/${s.editing}`, { method: "PUT", body: { ...body, city: s.city } });
    else await api(`/v1/admin/cities/${s.city}/geofences`, { method: "POST", body });
    stopDrawing();
    await loadFences();
    selectTab("zones");
  } catch (err) { $("zone-error").textContent = err.message; }
});

// --- MDS tokens (admin) ----------------------------------------------------------------------
$("mds-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const t = await api("/v1/admin/mds/tokens", { method: "POST", body: { agency: $("mds-agency").value.trim(), city: s.city } });
    $("mds-new").hidden = false; $("mds-new").value = t.token;
    refreshMds();
  } catch (err) { $("mds-new").hidden = false; $("mds-new").value = err.message; }
});
async function refreshMds() {
  try {
    const list = await api("/v1/admin/mds/tokens");
    $("mds-list").replaceChildren(...list.map((t) => {
      const li = document.createElement("li");
      li.append(`${t.agency} · ${t.city} · ${t.revoked_at ? "revoked" : `until ${new Date(t.expires_at).toLocaleDateString()}`} `);
      if (!t.revoked_at) {
        const b = Object.assign(document.createElement("button"), { type: "button", className: "link", textContent: "Revoke" });
        b.setAttribute("aria-label", `Revoke the token of ${t.agency}`);
        b.addEventListener("click", async () => { await api(`/v1/admin/mds/tokens/${t.id}`, { method: "DELETE" }); refreshMds(); });
        li.append(b);
      }
      return li;
    }));
  } catch { /* admin only */ }
}

// --- tabs ------------------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
  if (name === "kyc") refreshKyc();
  if (name === "bookings") refreshBookings();
  if (name === "tasks") refreshTasks();
  s.dirty = true; // the van routes show only with the tasks tab
  if (name === "fleet") { refreshPlans(); refreshPasses(); }
  if (name === "users") refreshUsers();
}
for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => selectTab(tab.id.slice(4)));

// For tests and scripts: what the map shows, and where.
window.mobilityDashboard = {
  vehicleCount: () => s.vehicles.size,
  vehicles: () => [...s.vehicles.values()],
  updates: () => s.updates,
  heatCells: () => (s.heat ? s.heat.length : 0),
  planStops: () => (s.plan ? s.plan.routes.reduce((n, r) => n + r.stops.length, 0) : 0),
  // How long one frame takes with `n` vehicles on screen (synthetic, around the view's centre);
  // the real fleet is put back afterwards. Measures the map, not the network.
  renderBenchmark: (n, frames = 20) => {
    const real = s.vehicles;
    const fake = new Map();
    const states = ["available", "available", "available", "on_trip", "reserved", "non_operational"];
    for (let i = 0; i < n; i++) {
      const a = (i * 2.399963) % (Math.PI * 2), r = Math.sqrt(i / n) * 0.06;
      fake.set(`b${i}`, { id: `b${i}`, type: "scooter", state: states[i % states.length], lon: s.view.lon + r * Math.cos(a), lat: s.view.lat + r * Math.sin(a) * 0.75, battery: i % 100 });
    }
    const out = {};
    for (const [label, ppd] of [["city view", s.view.ppd], ["zoomed in", s.view.ppd * 8]]) {
      const keep = s.view.ppd;
      s.view.ppd = ppd;
      s.vehicles = fake;
      const t = performance.now();
      for (let f = 0; f < frames; f++) { s.dirty = true; draw(true); }
      out[label] = (performance.now() - t) / frames;
      s.view.ppd = keep;
    }
    s.vehicles = real;
    s.dirty = true;
    return out;
  },
  screenOf: (lon, lat) => project(lon, lat),
};

if (s.token) start().catch(() => logout(""));
