// The demo in headless Chromium (Debian's package, driven by playwright-core).
// Run by tests/browser.rs with LG_NODE_A / LG_NODE_B (two demo nodes on one
// NATS cluster) and LG_CHROMIUM. Any failed assertion exits non-zero.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const A = process.env.LG_NODE_A;
const B = process.env.LG_NODE_B;
const browser = await chromium.launch({
  executablePath: process.env.LG_CHROMIUM,
  headless: true,
  args: ["--no-sandbox"],
});

// Every `liveguard: …` console line of a tab, in order.
function record(tab) {
  const lines = [];
  tab.on("console", (message) => {
    const text = message.text();
    if (text.startsWith("liveguard: ")) lines.push(text.slice(11));
  });
  return lines;
}

const joined = (tab) => tab.waitForFunction(() => window.__lg?.joined === true, null, { timeout: 5000 });

async function logIn(tab, base, email, password) {
  await tab.goto(`${base}/login`);
  await tab.fill("#email", email);
  await tab.fill("#password", password);
  await Promise.all([tab.waitForURL(`${base}/dashboard`), tab.click("#login")]);
  await joined(tab);
}

try {
  const context = await browser.newContext();
  const tab1 = await context.newPage();
  const log1 = record(tab1);
  await logIn(tab1, A, "alice@example.com", "alice-password");

  // A delete forged from the console for another user's project.
  await tab1.goto(`${A}/projects`);
  await joined(tab1);
  const forged = await tab1.evaluate(() => window.__lg.push("delete", { id: 20 }));
  assert.deepEqual(forged, { status: "error", response: { reason: "unauthorized" } });
  await tab1.reload();
  await joined(tab1);
  const ids = await tab1.evaluate(() => window.__lg.rendered.projects.map((p) => p.id));
  assert.ok(ids.includes(20), `bob's project is still there: ${ids}`);
  // Her own goes.
  assert.equal((await tab1.evaluate(() => window.__lg.push("delete", { id: 11 }))).status, "ok");

  // The admin area: refused by a direct request...
  const direct = await context.request.get(`${A}/admin`, { maxRedirects: 0 });
  assert.equal(direct.status(), 302);
  assert.equal(direct.headers()["location"], "/dashboard");
  // ...and by live navigation: the join across live_sessions answers
  // unauthorized, the page loads over HTTP, and the guard redirects.
  await tab1.goto(`${A}/dashboard`);
  await joined(tab1);
  const adminResponse = tab1.waitForResponse((r) => new URL(r.url()).pathname === "/admin");
  await tab1.click("a[href='/admin']");
  assert.equal((await adminResponse).status(), 302);
  await tab1.waitForURL(`${A}/dashboard`);
  await joined(tab1);
  assert.ok(log1.includes('join error {"reason":"unauthorized"}'), log1.join("\n"));
  assert.equal(await tab1.evaluate(() => window.__lg.rendered.page), "dashboard");

  // Two tabs of one session on two nodes; log out in one.
  await tab1.goto(`${A}/projects`);
  await joined(tab1);
  const tab2 = await context.newPage();
  const log2 = record(tab2);
  await tab2.goto(`${B}/projects`);
  await joined(tab2);
  const started = Date.now();
  await tab1.click("#logout");
  await tab2.waitForURL(`${B}/login`, { timeout: 2000 }).catch(() => {
    throw new Error(`the other tab is still at ${tab2.url()} 2 s after log out:\n${log2.join("\n")}`);
  });
  const elapsed = Date.now() - started;
  assert.ok(log2.includes("closed 1001"), log2.join("\n"));
  // The tab that logged out is told what the cluster confirmed: every node.
  await tab1.waitForURL(`${A}/login?notice=logged-out`);
  assert.ok((await tab1.textContent("body")).includes("You were logged out on every node."));
  process.stderr.write(`browser: the other tab on the other node reached /login ${elapsed} ms after log out\n`);
  await context.close();
} finally {
  await browser.close();
}
