// The shell: sign-in, the navigation the caller's roles allow, and a hash router over the screens.
// Each screen module exports mount(root, ctx) and may return a cleanup function.

import { api, describe, el, onSignedOut, setToken, signOut, token } from "./api.js";

const SCREENS = [
  { hash: "#/chat", label: "Chat", roles: ["user", "agent", "supervisor", "admin"], load: () => import("./chat.js") },
  { hash: "#/review", label: "Review queue", roles: ["supervisor", "auditor", "admin"],
    load: () => import("./console.js").then((m) => ({ mount: m.mountReview })) },
  { hash: "#/handoffs", label: "Hand-offs", roles: ["agent", "supervisor", "admin"],
    load: () => import("./console.js").then((m) => ({ mount: m.mountHandoffs })) },
  { hash: "#/kpis", label: "KPIs", roles: ["supervisor", "auditor", "admin"],
    load: () => import("./console.js").then((m) => ({ mount: m.mountKpis })) },
  { hash: "#/audit", label: "Audit", roles: ["auditor"],
    load: () => import("./console.js").then((m) => ({ mount: m.mountAudit })) },
  { hash: "#/knowledge", label: "Knowledge", roles: ["supervisor", "admin"],
    load: () => import("./console.js").then((m) => ({ mount: m.mountKnowledge })) },
];

const $ = (id) => document.getElementById(id);
let me = null;
let cleanup = null;

function banner(message, kind = "error") {
  const b = $("banner");
  if (!message) {
    b.hidden = true;
    b.textContent = "";
    return;
  }
  b.className = `banner ${kind}`;
  b.textContent = message;
  b.hidden = false;
}

function allowed() {
  return SCREENS.filter((s) => s.roles.some((r) => me.roles.includes(r)));
}

function showSignIn(message) {
  me = null;
  if (cleanup) cleanup();
  cleanup = null;
  $("screen").replaceChildren();
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  $("signin-message").textContent = message || "";
  $("signin-key").value = "";
  $("signin-key").focus();
}

async function signIn(key) {
  setToken(key);
  try {
    me = await api("/v1/me");
  } catch (err) {
    setToken(null);
    showSignIn(err.status === 401 ? "That key was not accepted: it is unknown, revoked or mistyped." : describe(err));
    return;
  }
  $("signin").hidden = true;
  $("signout").hidden = false;
  $("who").textContent = `${me.subject} · ${me.roles.join(", ")}`;
  const nav = $("nav");
  nav.replaceChildren(...allowed().map((s) => el("a", { href: s.hash }, s.label)));
  nav.hidden = false;
  if (!allowed().some((s) => s.hash === location.hash)) location.hash = allowed()[0]?.hash || "#/chat";
  else route();
}

async function route() {
  if (!me) return;
  const screens = allowed();
  const screen = screens.find((s) => s.hash === location.hash) || screens[0];
  if (!screen) {
    banner("This key has no role that uses the UI.");
    return;
  }
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.getAttribute("href") === screen.hash) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (cleanup) cleanup();
  cleanup = null;
  banner(null);
  const root = $("screen");
  root.replaceChildren();
  document.title = `${screen.label} · Enclave`;
  const module = await screen.load();
  cleanup = module.mount(root, { me, banner, navigate: (h) => (location.hash = h) }) || null;
}

onSignedOut((message) => showSignIn(message));
window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("signin-key").value.trim();
    if (key) signIn(key);
  });
  $("signout").addEventListener("click", () => signOut("You signed out."));
  if (token()) signIn(token());
  else showSignIn();
});
