// The demo's page script: connects the official phoenix client to the
// page's node, joins the live view with the page's tokens and renders what
// the server sends. Live navigation stays on the socket inside a
// live_session; the server answers "unauthorized" across one, and the page
// then loads over HTTP, as LiveView's client does.
import { Socket } from "/assets/phoenix.mjs";

const csrfToken = document.querySelector("meta[name='csrf-token']").content;
const main = document.querySelector("[data-phx-main]");
const status = document.getElementById("status");
// For people and for the browser test: what happened, in order.
const lg = (window.__lg = { log: [], joined: false, channel: null });
const note = (entry) => {
  lg.log.push(entry);
  status.textContent = entry;
  console.log(`liveguard: ${entry}`);
};

const socket = new Socket("/live", { params: { _csrf_token: csrfToken } });
socket.onClose((event) => note(`closed ${event.code}`));
socket.onOpen(() => note("open"));
socket.connect();

let mounts = 0;
let view = { id: main.id, session: main.dataset.phxSession, static: main.dataset.phxStatic };

function join(how) {
  lg.joined = false;
  const channel = socket.channel(`lv:${view.id}`, () => ({
    ...how,
    params: { _csrf_token: csrfToken, _mounts: mounts++ },
    session: view.session,
    static: view.static,
  }));
  lg.channel = channel;
  channel.on("redirect", ({ to }) => window.location.assign(to));
  channel.join()
    .receive("ok", ({ rendered }) => {
      lg.joined = true;
      note("joined");
      render(rendered);
    })
    .receive("error", (reply) => {
      note(`join error ${JSON.stringify(reply)}`);
      channel.leave();
      if (reply.redirect) window.location.assign(reply.redirect.to);
      else if (reply.live_redirect) window.location.assign(reply.live_redirect.to);
      // stale, unauthorized, outdated: a full page load over HTTP.
      else window.location.assign(how.redirect ?? window.location.href);
    });
  return channel;
}

// An event for the view; resolves with the server's reply.
lg.push = (event, value) =>
  new Promise((resolve) =>
    lg.channel
      .push("event", { type: "click", event, value })
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout" })),
  );

function text(value) {
  const span = document.createElement("span");
  span.textContent = value;
  return span.innerHTML;
}

function render(rendered) {
  lg.rendered = rendered;
  if (rendered.page === "projects") {
    main.innerHTML =
      "<h1>Projects</h1><ul>" +
      rendered.projects
        .map((p) => `<li id="project-${p.id}">${text(p.name)}` + (p.mine ? ` <button data-delete="${p.id}">Delete</button>` : "") + "</li>")
        .join("") +
      "</ul>";
  } else if (rendered.page === "admin") {
    main.innerHTML = `<h1>Admin</h1><p>${rendered.sessions} live session tokens</p>`;
  } else {
    main.innerHTML = `<h1>Dashboard</h1><p id="email">${text(rendered.email ?? "")}</p>`;
  }
}

main.addEventListener("click", async (event) => {
  const id = event.target.dataset?.delete;
  if (!id) return;
  const { status: outcome, response } = await lg.push("delete", { id: Number(id) });
  if (outcome === "ok") render(response.rendered);
  else note(`delete refused ${JSON.stringify(response)}`);
});

// Live navigation: the same socket, the same view tokens, the new URL.
document.querySelectorAll("a[data-live]").forEach((link) =>
  link.addEventListener("click", (event) => {
    event.preventDefault();
    if (link.pathname === window.location.pathname) return;
    note(`navigate ${link.pathname}`);
    lg.channel.leave();
    history.pushState({}, "", link.pathname);
    join({ redirect: link.pathname });
  }),
);

join({ url: window.location.href });
