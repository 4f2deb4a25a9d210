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

let routeSeq = 0;

async function route() {
  if (!me) return;
  const screens = allowed();
  const screen = screens.find((s) => s.hash === location.hash) || screens[0];
  if (!screen) {
    banner("This key has no role that uses the UI.");
    return;
  }
  const seq = ++routeSeq;
  const module = await screen.load();
  if (seq !== routeSeq || !me) return;    // a later navigation (or a sign-out) won while the module loaded
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
  cleanup = module.mount(root, { me, banner, navigate: (h) => (location.hash = h) }) || null;
}

// -- single sign-on: OIDC authorization code with PKCE; the gateway exchanges the code (it alone may reach the
// identity provider's token endpoint), and the token it returns is then used like a key.

const SSO = "enclave.sso";

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function offerSso() {
  let config = null;
  try {
    config = await api("/v1/ui/config");
  } catch {
    return;
  }
  if (!config.oidc) return;
  const button = el("button", { type: "button", class: "secondary", "data-testid": "sso" }, "Sign in with single sign-on");
  button.addEventListener("click", () => startSso(config.oidc));
  $("signin-form").after(el("p", {}, button));
}

async function startSso(oidc) {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(SSO, JSON.stringify({ verifier, state }));
  const url = new URL(oidc.authorize_url);
  for (const [k, v] of Object.entries({ response_type: "code", client_id: oidc.client_id, scope: oidc.scope,
    redirect_uri: `${location.origin}/`, state, code_challenge: challenge, code_challenge_method: "S256" })) {
    url.searchParams.set(k, v);
  }
  location.assign(url.toString());
}

/** Back from the identity provider (?code=…&state=… or ?error=…): finish the sign-in. */
async function finishSso() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  history.replaceState(null, "", "/");           // the code must not stay in the address bar or history
  const saved = JSON.parse(sessionStorage.getItem(SSO) || "null");
  sessionStorage.removeItem(SSO);
  if (params.has("error")) {
    showSignIn(`Single sign-on failed: ${params.get("error_description") || params.get("error")}.`);
  } else if (!saved || saved.state !== params.get("state")) {
    showSignIn("Single sign-on failed: the answer does not belong to this sign-in. Try again.");
  } else {
    try {
      const r = await api("/v1/ui/oidc/token", { method: "POST", json: {
        code: params.get("code"), code_verifier: saved.verifier, redirect_uri: `${location.origin}/` } });
      await signIn(r.token);
    } catch (err) {
      showSignIn(`Single sign-on failed: ${describe(err)}`);
    }
  }
  return true;
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
  offerSso();
  finishSso().then((handled) => {
    if (handled) return;
    if (token()) signIn(token());
    else showSignIn();
  });
});
