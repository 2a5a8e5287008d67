// Scenarios for the official phoenix.js client against liveguard's endpoint.
// Run by tests/phoenix_js.rs: `node scenarios.mjs <scenario>`. The Rust side
// answers requests written to stdout as JSON lines ({"id", "ask", ...}) with
// lines on stdin ({"id", "answer"}). Any failed assertion exits non-zero.
import assert from "node:assert/strict";
import readline from "node:readline";
import { Socket } from "phoenix";
import WebSocket from "ws";

const ENDPOINTS = { a: process.env.LG_ENDPOINT_A, b: process.env.LG_ENDPOINT_B };
const ORIGIN = process.env.LG_ORIGIN;
const WAIT_MS = 5000;

// --- the line protocol ---------------------------------------------------
const waiting = new Map();
let nextId = 0;
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const { id, answer } = JSON.parse(line);
  waiting.get(id)(answer);
  waiting.delete(id);
});
function ask(request) {
  const id = ++nextId;
  process.stdout.write(JSON.stringify({ id, ...request }) + "\n");
  return new Promise((resolve) => waiting.set(id, resolve));
}
const page = (token, url, extra = {}) => ask({ ask: "page", token, url, ...extra });
const state = () => ask({ ask: "state" });

// --- helpers -------------------------------------------------------------
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Node has no browser to attach the cookie and the Origin: a `ws`
// subclass sends them, as a browser would on the same-site page.
function transportWith(headers) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { headers });
    }
  };
}

function headersFor(pg, { origin = ORIGIN, cookie = pg.cookie } = {}) {
  const headers = { Origin: origin };
  if (cookie) headers.Cookie = cookie;
  return headers;
}

// A phoenix.js socket to node `node`, as a tab of `pg` would open it.
function open(node, pg, { csrf = pg.csrf_token, ...headerOptions } = {}) {
  const params = csrf ? { _csrf_token: csrf } : {};
  const socket = new Socket(ENDPOINTS[node], {
    transport: transportWith(headersFor(pg, headerOptions)),
    params,
  });
  socket.closes = [];
  socket.onClose((event) => socket.closes.push(event.code));
  socket.connect();
  return socket;
}

function joinPayload(pg) {
  return { url: pg.url, params: { _csrf_token: pg.csrf_token, _mounts: 0 }, session: pg.session, static: pg.static_token };
}

// Joins `pg`'s view; resolves with the first reply. Every later reply to a
// rejoin is kept in `channel.replies`.
function join(socket, pg, payload = joinPayload(pg)) {
  const channel = socket.channel(pg.topic, payload);
  channel.replies = [];
  return within(WAIT_MS, `join ${pg.topic}`, new Promise((resolve) => {
    const settle = (status) => (response) => {
      channel.replies.push({ status, response });
      resolve({ status, response, channel });
    };
    channel.join().receive("ok", settle("ok")).receive("error", settle("error"));
  }));
}

// A refused join: the reason, and no more rejoins.
async function refusal(socket, pg, payload) {
  const { status, response, channel } = await join(socket, pg, payload);
  channel.leave();
  assert.equal(status, "error", `join of ${pg.url} should be refused, got ${JSON.stringify(response)}`);
  return response;
}

function push(channel, event, value) {
  return within(WAIT_MS, `event ${event}`, new Promise((resolve) => {
    channel
      .push("event", { type: "click", event, value })
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }));
  }));
}

async function until(what, condition) {
  const deadline = Date.now() + WAIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// A raw `ws` connection with a page's credentials: the close code, or the
// HTTP status of a refused upgrade.
function raw(node, pg, { origin = ORIGIN, query } = {}) {
  const url = `${ENDPOINTS[node]}/websocket?${query ?? `_csrf_token=${encodeURIComponent(pg.csrf_token)}&vsn=2.0.0`}`;
  const ws = new WebSocket(url, { headers: headersFor(pg, { origin }) });
  ws.outcome = within(WAIT_MS, `raw connection outcome`, new Promise((resolve) => {
    ws.on("unexpected-response", (_, response) => resolve({ status: response.statusCode }));
    ws.on("close", (code) => resolve({ close: code }));
    ws.on("error", () => {});
  }));
  ws.opened = new Promise((resolve) => ws.on("open", resolve));
  return ws;
}

// --- scenarios -----------------------------------------------------------
const scenarios = {
  async joins() {
    const alice = await page("alice-token", "/projects");
    const socket = open("a", alice);
    const joined = await join(socket, alice);
    assert.equal(joined.status, "ok", JSON.stringify(joined.response));
    assert.deepEqual(joined.response.rendered.projects.map((p) => p.id), [10, 11, 20]);

    // No cookie, a CSRF token of another page, no CSRF token: the socket
    // opens without a session, and every join answers stale.
    const other = await page("root-token", "/projects");
    for (const [what, options] of [
      ["no cookie", { cookie: null }],
      ["another session's CSRF token", { csrf: other.csrf_token }],
      ["no CSRF token", { csrf: null }],
    ]) {
      const s = open("a", alice, options);
      assert.deepEqual(await refusal(s, alice), { reason: "stale" }, what);
      s.disconnect();
    }

    // A foreign Origin: the upgrade is refused with 403 and the client
    // never opens (it keeps retrying, as phoenix.js does on a refused upgrade).
    const evil = open("a", alice, { origin: "http://evil.example" });
    let errors = 0;
    evil.onError(() => errors++);
    await until("the refused socket reports errors", () => errors >= 2);
    assert.notEqual(evil.connectionState(), "open");
    evil.disconnect();
    assert.deepEqual(await raw("a", alice, { origin: "http://evil.example" }).outcome, { status: 403 });
    assert.deepEqual(await raw("a", alice, { query: "vsn=1.0.0" }).outcome, { status: 403 });

    // Join tokens: tampered, expired (15 days old, valid 14), of another
    // version; navigation into another live_session. Each on a view of its
    // own: a second join of a joined topic would replace it.
    const spare = await page("alice-token", "/projects");
    const tampered = joinPayload(spare);
    const last = tampered.session.slice(-1);
    tampered.session = tampered.session.slice(0, -1) + (last === "A" ? "B" : "A");
    assert.deepEqual(await refusal(socket, spare, tampered), { reason: "stale" }, "tampered");
    const old = await page("alice-token", "/projects", { signed_days_ago: 15 });
    assert.deepEqual(await refusal(socket, old), { reason: "stale" }, "expired");
    const outdated = { ...joinPayload(spare), session: await ask({ ask: "outdated_token" }) };
    assert.deepEqual(await refusal(socket, spare, outdated), { reason: "outdated" }, "outdated");
    const across = { ...joinPayload(spare), redirect: "/admin" };
    delete across.url;
    assert.deepEqual(await refusal(socket, spare, across), { reason: "unauthorized" }, "across live_sessions");

    // The first view is still joined and alive on the same connection.
    assert.equal((await push(joined.channel, "delete", { id: 11 })).status, "ok");
    socket.disconnect();
  },

  async events() {
    const alice = await page("alice-token", "/projects");
    const socket = open("b", alice);
    const { channel } = await join(socket, alice);
    // Undeclared: an error reply, and the view never runs.
    assert.deepEqual(await push(channel, "drop_all", {}), { status: "error", response: { reason: "unauthorized" } });
    // Another user's project, whatever the payload claims about the user.
    assert.deepEqual(await push(channel, "delete", { id: 20, user_id: 3, admin: true }), {
      status: "error",
      response: { reason: "unauthorized" },
    });
    let now = await state();
    assert.equal(now.handled, 0, "no refused event reached the view");
    assert.deepEqual(now.projects, [10, 11, 20]);
    // Her own.
    const own = await push(channel, "delete", { id: 10 });
    assert.equal(own.status, "ok");
    assert.deepEqual(own.response.reply, { deleted: 10 });
    now = await state();
    assert.deepEqual([now.handled, now.projects], [1, [11, 20]]);
    socket.disconnect();
  },

  async disconnect() {
    // Three tabs of one session on node a; another user on both nodes.
    const tabs = [];
    for (let i = 0; i < 3; i++) {
      const pg = await page("alice-token", "/projects");
      const socket = open("a", pg);
      const joined = await join(socket, pg);
      assert.equal(joined.status, "ok");
      tabs.push({ socket, channel: joined.channel });
    }
    const others = [];
    for (const node of ["a", "b"]) {
      const pg = await page("root-token", "/projects");
      const socket = open(node, pg);
      const joined = await join(socket, pg);
      assert.equal(joined.status, "ok");
      others.push({ socket, channel: joined.channel });
    }
    assert.deepEqual((await state()).registered, { a: 4, b: 1 });

    // Log out on node b: node a closes every tab with 1001.
    const started = Date.now();
    const report = await ask({ ask: "logout", token: "alice-token", via: "b" });
    assert.equal(report.connections, 3);
    assert.deepEqual(report.answered, { a: 3, b: 0 });
    await until("every tab closed", () => tabs.every((t) => t.socket.closes.length > 0));
    const closedIn = Date.now() - started;
    assert.ok(closedIn < 2000, `closed ${closedIn} ms after the logout`);
    for (const tab of tabs) assert.deepEqual(tab.socket.closes, [1001]);

    // phoenix.js reconnects by itself and rejoins: the revoked session is
    // now sent to the login page.
    await until("every tab rejoined and was redirected", () => tabs.every((t) => t.channel.replies.length >= 2));
    for (const tab of tabs) {
      assert.deepEqual(tab.channel.replies[1], { status: "error", response: { redirect: { to: "/login" } } });
      tab.channel.leave();
      tab.socket.disconnect();
    }
    // The other user's connections never noticed.
    for (const other of others) {
      assert.deepEqual(other.socket.closes, []);
      assert.equal(other.socket.connectionState(), "open");
    }
    assert.equal((await push(others[1].channel, "delete", { id: 20 })).status, "ok");
    others.forEach((o) => o.socket.disconnect());
    process.stderr.write(`disconnect: 3 tabs closed with 1001 within ${closedIn} ms of the logout on the other node\n`);
  },

  async hostile() {
    const alice = await page("alice-token", "/projects");
    const bystander = open("a", alice);
    const { channel } = await join(bystander, alice);

    // A 1 MB frame: closed with 1009 (message too big).
    const big = raw("a", alice);
    await big.opened;
    big.send("x".repeat(1024 * 1024));
    assert.deepEqual(await big.outcome, { close: 1009 });
    // A stream of garbage frames: closed with 1007 at the first.
    const garbage = raw("a", alice);
    await garbage.opened;
    for (let i = 0; i < 100; i++) garbage.send(`[garbage ${i}`);
    assert.deepEqual(await garbage.outcome, { close: 1007 });
    // A binary frame: 1003.
    const binary = raw("a", alice);
    await binary.opened;
    binary.send(Buffer.from([0, 1, 2, 3]));
    assert.deepEqual(await binary.outcome, { close: 1003 });

    // The bystander, on the same node and session, is untouched.
    assert.deepEqual(bystander.closes, []);
    assert.equal((await push(channel, "delete", { id: 11 })).status, "ok");
    assert.deepEqual((await state()).projects, [10, 20]);
    bystander.disconnect();
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  process.stderr.write(`unknown scenario ${name}\n`);
  process.exit(2);
}
try {
  await scenarios[name]();
  process.exit(0);
} catch (error) {
  process.stderr.write(`scenario ${name} failed: ${error.stack ?? error}\n`);
  process.exit(1);
}
