// Browser test of the dashboard: starts `mobility demo` (a simulated city over MQTT), signs in
// through the page, and checks what an operator does: sees vehicles move, opens one and rings
// it, draws a zone and sees it take effect, approves a KYC request; a staff account sees no
// admin controls. Screenshots go to $SCREENSHOTS (default: a temp dir), printed at the end.
//
// usage: node dashboard.mjs /path/to/mobility
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const bin = process.argv[2];
if (!bin) throw new Error("usage: node dashboard.mjs /path/to/mobility");
const dataDir = mkdtempSync(join(tmpdir(), "mobility-ui-"));
const shots = process.env.SCREENSHOTS || join(dataDir, "screenshots");
mkdirSync(shots, { recursive: true });
const saved = [];

const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MOBILITY_")));
const demo = spawn(bin, ["demo", "--vehicles", "400", "--speed", "20"], {
  cwd: dataDir,
  env: { ...env, MOBILITY_HTTP_ADDR: "127.0.0.1:0", MOBILITY_MQTT_ADDR: "127.0.0.1:0", MOBILITY_RATE_LIMIT_PER_S: "1000" },
  stdio: ["ignore", "pipe", "inherit"],
});
let browser;
const stop = () => { try { demo.kill("SIGINT"); } catch { /* gone */ } };
process.on("exit", stop);

function check(cond, what) { if (!cond) throw new Error(`failed: ${what}`); console.log(`ok: ${what}`); }
async function until(what, probe, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) { console.log(`ok: ${what}`); return v; }
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const api = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: demo.stdout });
  const timer = setTimeout(() => reject(new Error("the demo did not print its API address in 60 s")), 60000);
  lines.on("line", (line) => {
    const m = line.match(/^\s*API\s+(http:\/\/\S+)/);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  });
  demo.on("exit", (code) => reject(new Error(`the demo exited (${code})`)));
});
console.log(`demo at ${api}`);
const admin = readFileSync(join(dataDir, "data", "admin-token"), "utf8").trim();

async function call(method, path, body, token = admin) {
  const r = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

// Accounts: an admin and a staff member for the console, a rider waiting for KYC review.
const password = "correct horse battery";
check((await call("POST", "/v1/admin/users", { email: "admin@ui.test", password, role: "admin" })).status === 201, "admin account");
check((await call("POST", "/v1/admin/users", { email: "staff@ui.test", password, role: "staff" })).status === 201, "staff account");
check((await call("POST", "/v1/auth/signup", { email: "rider@ui.test", password })).status === 201, "rider signs up");
check((await call("POST", "/v1/auth/signup", { email: "promote@ui.test", password })).status === 201, "a second rider signs up");
const rider = (await call("POST", "/v1/auth/login", { email: "rider@ui.test", password })).body.access_token;
check((await call("POST", "/v1/me/kyc", { kind: "identity", full_name: "Ada Rider", date_of_birth: "1990-04-01", document_number: "X1234567" }, rider)).status === 201, "rider submits KYC");

try {
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text()); });
  // Every failed request is a bug, but the wrong password's 401.
  page.on("response", (r) => {
    if (r.status() >= 400 && !(r.status() === 401 && r.url().endsWith("/v1/auth/login"))) errors.push(`${r.status()} ${r.url()}`);
  });
  const shot = async (name) => { const p = join(shots, `${name}.png`); await page.screenshot({ path: p }); saved.push(p); };

  await page.goto(api + "/");
  await page.getByLabel("E-mail").fill("admin@ui.test");
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await until("a wrong password is refused", async () => (await page.locator("#login-error").textContent()).length > 0);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#app").waitFor({ state: "visible" });
  check((await page.locator("#who").textContent()).includes("admin"), "signed in as admin");

  // Live vehicles, and they move.
  await until("vehicles on the map", () => page.evaluate(() => window.mobilityDashboard.vehicleCount() >= 380));
  await until("fleet figures", async () => Number(await page.locator("#kpi-total").textContent()) === 400);
  await until("riders' searches are counted", async () => (await page.locator("#kpi-unmet").textContent()).includes(" of "));
  const before = new Map((await page.evaluate(() => window.mobilityDashboard.vehicles())).map((v) => [v.id, [v.lat, v.lon]]));
  await until("vehicles move", async () => {
    const now = await page.evaluate(() => window.mobilityDashboard.vehicles());
    return now.filter((v) => { const b = before.get(v.id); return b && (b[0] !== v.lat || b[1] !== v.lon); }).length >= 1;
  }, 45000);
  await shot("1-live-map");
  await page.getByRole("button", { name: "Colour by battery" }).click();
  check(await page.locator("#legend-battery").isVisible(), "vehicles coloured by battery");
  await shot("1b-by-battery");
  await page.getByRole("button", { name: "Colour by battery" }).click();

  // Open a vehicle by clicking it on the map, and ring it.
  // (A vehicle on a trip, when there is one: it has a track to chart. It moves, so the click is
  // aimed again if it missed.)
  let target;
  await until("vehicle detail opens from a click on the map", async () => {
    target = await page.evaluate(() => {
      const moving = window.mobilityDashboard.vehicles().filter((v) => v.state === "on_trip");
      const all = moving.length ? moving : window.mobilityDashboard.vehicles().filter((v) => v.state === "available");
      const v = all[Math.floor(all.length / 2)];
      const [x, y] = window.mobilityDashboard.screenOf(v.lon, v.lat);
      return { id: v.id, x, y };
    });
    await page.locator("#map").click({ position: { x: target.x, y: target.y } });
    await new Promise((r) => setTimeout(r, 500));
    return (await page.locator("#vehicle-detail").textContent()).includes("battery");
  });
  const opened = await page.locator("#vehicle-detail dd").first().textContent();
  await page.getByRole("button", { name: "Send ring to the vehicle" }).click();
  await until("the vehicle acks the ring", async () => (await page.locator("#command-outcome").textContent()).includes("acked"), 20000);
  await until("the vehicle's events are listed", async () => (await page.locator("#vehicle-events li").count()) > 0);
  await until("the vehicle's last hour is charted from the history", async () => Number(await page.locator("#vehicle-chart").getAttribute("data-points")) >= 1);
  await shot("2-vehicle");
  console.log(`opened vehicle ${opened} (clicked near ${target.id})`);

  // Draw a zone around the map's centre; it takes effect: the API and the GBFS feed have it.
  const box = await page.locator("#map").boundingBox();
  await page.getByRole("button", { name: "Draw zone" }).click();
  const [cx, cy] = [box.width / 2, box.height / 2];
  for (const [dx, dy] of [[-60, -40], [60, -40], [60, 40], [-60, 40]]) {
    await page.locator("#map").click({ position: { x: cx + dx, y: cy + dy } });
  }
  await page.getByLabel("Zone name").fill("UI test plaza");
  await page.getByLabel("Kind").selectOption("no_parking");
  await page.getByRole("button", { name: "Save zone" }).click();
  await until("the zone is listed", async () => (await page.locator("#zones").textContent()).includes("UI test plaza"));
  const fences = (await call("GET", "/v1/cities/barcelona/geofences")).body;
  check(fences.some((f) => f.name === "UI test plaza" && f.kind === "no_parking" && f.geometry.coordinates[0].length === 5), "the API has the drawn zone");
  const gbfs = await (await fetch(api + "/gbfs/barcelona/geofencing_zones.json")).json();
  check(gbfs.data.geofencing_zones.features.some((f) => f.properties.name[0].text === "UI test plaza" && f.properties.rules[0].ride_end_allowed === false),
    "trip planners see it: no ending trips in it");
  await shot("3-zone");

  // Edit it: drag a corner further out; the zone changes, nothing else does.
  await page.getByRole("tab", { name: "Zones" }).click();
  await page.getByRole("button", { name: "Edit zone UI test plaza" }).click();
  const corner = [box.x + cx + 60, box.y + cy + 40];
  await page.mouse.move(corner[0], corner[1]);
  await page.mouse.down();
  await page.mouse.move(corner[0] + 30, corner[1] + 25, { steps: 5 });
  await page.mouse.up();
  await page.getByRole("button", { name: "Save zone" }).click();
  await until("the edited zone is saved", async () => {
    const all = (await call("GET", "/v1/cities/barcelona/geofences")).body.filter((f) => f.name === "UI test plaza");
    if (all.length !== 1) return false;
    const old = fences.find((f) => f.name === "UI test plaza").geometry.coordinates[0];
    const now = all[0].geometry.coordinates[0];
    return now.length === old.length && now.filter((p, i) => p[0] !== old[i][0] || p[1] !== old[i][1]).length >= 1
      && now.filter((p, i) => p[0] === old[i][0] && p[1] === old[i][1]).length >= 3;
  });

  // Field tasks from the live fleet: an out-of-service vehicle is first.
  const near = (await call("GET", "/v1/vehicles/nearby?lat=41.39&lon=2.17&radius_m=5000&type=scooter&min_battery=30&limit=5", undefined, rider)).body;
  const broken = near.vehicles[2].id;
  check((await call("POST", "/v1/vehicles/events", { changes: [{ vehicle_id: broken, event_types: ["maintenance"], vehicle_state: "non_operational" }] })).status === 200, "a vehicle goes out of service");
  await until("it is the first task", async () => {
    await page.getByRole("tab", { name: "Tasks" }).click();
    const first = await page.locator("#tasks li").first().textContent();
    return first.includes(broken.slice(0, 8)) && first.includes("inspect") && first.startsWith("scooter");
  });
  // The field plan: re-planned now, the broken scooter is collected on a van's route, in order,
  // and the routes are drawn on the map.
  await page.getByRole("button", { name: "Re-plan now" }).click();
  await until("a van's route collects the broken scooter", async () => {
    const stops = await page.locator("#routes li[data-kind=collect]").allTextContents();
    return stops.some((t) => t.includes(broken.slice(0, 8)));
  });
  check(await page.evaluate(() => window.mobilityDashboard.planStops() > 1), "the van routes are on the map");
  const plan = (await call("GET", "/v1/ops/plan?city=barcelona")).body;
  check(plan.routes.every((r) => r.stops[r.stops.length - 1].kind === "depot"), "every route ends at the depot");
  await shot("3a-van-routes");

  // The supply heat layer.
  await page.getByRole("button", { name: "Supply heat" }).click();
  await until("supply per H3 cell on the map", () => page.evaluate(() => window.mobilityDashboard.heatCells() > 5));
  await shot("3b-supply-heat");
  await page.getByRole("button", { name: "Demand heat" }).click();
  await until("riders' searches per H3 cell on the map", () => page.evaluate(() => window.mobilityDashboard.heatCells() > 0));
  await shot("3b-demand-heat");
  await page.getByRole("button", { name: "Demand heat" }).click();
  // Dynamic prices per zone, from the board the re-plan above computed.
  await page.getByRole("button", { name: "Prices" }).click();
  await until("zone prices on the map", () => page.evaluate(() => window.mobilityDashboard.heatCells() > 5));
  await shot("3b-prices");
  await page.getByRole("button", { name: "Prices" }).click();

  // Bookings and trips, filtered: a rider reserves a scooter through the API.
  const reserved = await call("POST", "/v1/bookings", { vehicle_id: near.vehicles[0].id }, rider);
  check(reserved.status === 201, "a rider reserves a scooter");
  await page.getByRole("tab", { name: "Bookings" }).click();
  await page.getByLabel("Booking state").selectOption("reserved");
  await until("the reservation is listed", async () => {
    await page.getByRole("button", { name: "Filter" }).click();
    return (await page.locator("#bookings").textContent()).includes("reserved");
  });
  await page.getByLabel("Booking state").selectOption("ended");
  await page.getByRole("button", { name: "Filter" }).click();
  await until("filtering by state", async () => (await page.locator("#bookings").textContent()).includes("No bookings match"));
  await page.getByLabel("Booking state").selectOption("");
  await page.getByRole("button", { name: "Filter" }).click();
  await shot("3c-bookings");

  // Admin: register a vehicle (its secret shown once), edit a price, promote an account.
  await page.getByRole("tab", { name: "Fleet" }).click();
  await page.getByLabel("Vehicle type", { exact: true }).selectOption("ebike");
  await page.getByRole("button", { name: "Register" }).click();
  await until("the new vehicle's secret is shown", async () => (await page.locator("#register-out").inputValue()).includes("secret "));
  await page.getByRole("button", { name: "Edit the scooter plan" }).click();
  await page.getByLabel("Per minute (minor units)").fill("21");
  await page.getByRole("button", { name: "Save plan" }).click();
  await until("the new price applies", async () => {
    const plans = await (await fetch(api + "/v1/cities/barcelona/pricing")).json();
    return plans.some((p) => p.vehicle_type === "scooter" && p.per_minute === 21);
  });
  await page.getByLabel("Id (lower case, e.g. lisbon)").fill("lisbon");
  await page.getByLabel("City name").fill("Lisbon");
  await page.getByLabel("Time zone").fill("Europe/Lisbon");
  await page.getByRole("button", { name: "Save city" }).click();
  await until("a new city can be chosen", async () => (await page.locator("#city option").allTextContents()).includes("Lisbon"));
  await page.getByRole("tab", { name: "Vehicle" }).click();
  const retired = near.vehicles[1].id;
  await page.getByLabel("Vehicle id", { exact: true }).fill(retired);
  await page.getByRole("button", { name: "Open", exact: true }).click();
  await page.getByRole("button", { name: "Decommission the vehicle" }).click();
  await until("the vehicle is decommissioned", async () => (await call("GET", `/v1/vehicles/${retired}`)).body.state === "removed");
  await page.getByRole("tab", { name: "Fleet" }).click();
  await page.getByLabel("Pass id (a-z, 0-9, -)").fill("commuter-30");
  await page.getByLabel("Pass name").fill("Commuter 30 days");
  await page.getByRole("button", { name: "Save pass" }).click();
  await until("the pass is on sale", async () => {
    const sold = await (await fetch(api + "/v1/cities/barcelona/passes")).json();
    return sold.some((p) => p.id === "commuter-30" && p.free_unlock && p.free_minutes === 30 && p.price === 2500);
  });
  await until("the pass is listed", async () => (await page.locator("#passes").textContent()).includes("Commuter 30 days"));
  await page.getByRole("tab", { name: "Users" }).click();
  await page.getByLabel("Role of promote@ui.test").selectOption("staff");
  await until("the account is staff", async () => {
    const users = (await call("GET", "/v1/admin/users")).body;
    return users.some((u) => u.email === "promote@ui.test" && u.role === "staff");
  });
  await shot("3d-users");

  // Approve the rider's KYC.
  await page.getByRole("tab", { name: "KYC" }).click();
  await page.getByRole("button", { name: "Approve Ada Rider" }).click();
  await until("the rider is verified", async () => {
    const mine = (await call("GET", "/v1/me/kyc", undefined, rider)).body;
    return Array.isArray(mine) && mine.some((k) => k.state === "verified");
  });
  await shot("4-kyc");

  // 50,000 vehicles on the map: how long a frame takes (printed; recorded in docs/benchmarks.md).
  const bench = await page.evaluate(() => window.mobilityDashboard.renderBenchmark(50000));
  console.log(`render 50,000 vehicles: city view ${bench["city view"].toFixed(1)} ms/frame, zoomed in ${bench["zoomed in"].toFixed(1)} ms/frame`);
  check(bench["city view"] < 1000 && bench["zoomed in"] < 1000, "50,000 vehicles render");

  // Tablet size still works.
  await page.setViewportSize({ width: 820, height: 1180 });
  await page.getByRole("tab", { name: "Vehicle" }).click();
  await shot("5-tablet");

  // Staff: no admin controls.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("E-mail").fill("staff@ui.test");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#app").waitFor({ state: "visible" });
  check(await page.getByRole("button", { name: "Draw zone" }).isHidden(), "staff cannot draw zones");
  check(await page.getByRole("tab", { name: "MDS" }).isHidden(), "staff do not see MDS tokens");
  await shot("6-staff");

  // A rider is turned away.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("E-mail").fill("rider@ui.test");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await until("riders are turned away", async () => (await page.locator("#login-error").textContent()).includes("staff"));

  check(errors.length === 0, `no errors in the page (${errors.join("; ")})`);
  console.log(`screenshots:\n${saved.join("\n")}`);
} finally {
  if (browser) await browser.close();
  stop();
}
