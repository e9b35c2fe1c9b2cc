// Signing in with an API key. The key is checked against /v1/keys/me, kept in sessionStorage
// (gone when the browser session ends) and sent on every call; until an editor's (or an
// admin's) key is accepted nothing else of the console loads. A key the server refuses later
// (revoked meanwhile) signs the page out, with a message saying so.

import { currentKey, setKey, whenRefused, whoami } from "./api.js";
import { $, later } from "./state.js";

const CONSOLE_ROLES = new Set(["editor", "admin"]);
const GATED = ["app", "session", "active-profile", "skip"]; // shown only while signed in
let hooks = { signedIn: async () => {}, signedOut: () => {} };
// What differs between the console's pages: where focus starts once signed in, and the
// page's name in a refusal.
let page = { start: "weights-h", name: "the fusion editor" };

function gated() {
  return GATED.map((id) => $(id)).filter(Boolean); // a page need not have every one
}

function note(text, kind = "error") {
  const box = $("signin-message");
  box.textContent = text;
  box.className = `signin-message ${text ? kind : ""}`;
  box.dataset.kind = text ? kind : "";
  $("api-key").setAttribute("aria-invalid", text && kind === "error" ? "true" : "false");
}

function busy(on) {
  $("sign-in").disabled = on;
  $("signin").setAttribute("aria-busy", String(on));
}

function showForm(text, kind = "error", keep = false) {
  for (const node of gated()) node.hidden = true;
  $("signin-view").hidden = false;
  document.body.dataset.signedIn = "false";
  busy(false);
  if (!keep) $("api-key").value = "";
  note(text, kind);
  $("api-key").focus();
}

function showConsole(me) {
  note("");
  $("api-key").value = ""; // the secret does not stay in the page
  $("signin-view").hidden = true;
  $("signed-in-as").textContent = `Signed in as ${me.name} (${me.role})`;
  $("session").dataset.keyId = me.id;
  $("session").dataset.role = me.role;
  for (const node of gated()) node.hidden = false;
  document.body.dataset.signedIn = "true";
  $(page.start).focus();
}

// Why the server would not check a key, in words.
function trouble(err) {
  if (err.status === 401) return "Sign-in refused: unknown or revoked key.";
  if (err.status === 429) return `Too many requests with this key: ${later(err.retryAfter ?? 1)}.`;
  if (err.status === 404) return "This server does not offer key sign-in (no /v1/keys/me).";
  return `Could not check the key${err.status ? ` (${err.status})` : ""}: ${err.message}.`;
}

async function signIn(key, resumed = false) {
  busy(true);
  let me;
  try {
    me = await whoami(key);
  } catch (err) {
    if (err.status === 401 && resumed) {
      setKey(""); // the saved key is dead: forget it
      showForm("Your saved key is no longer accepted (unknown or revoked key). Sign in again.");
    } else {
      showForm(trouble(err), "error", err.status !== 401);
    }
    return;
  }
  if (!CONSOLE_ROLES.has(me.role)) {
    if (resumed) setKey("");
    showForm(`Sign-in refused: “${me.name}” is a ${me.role} key; ${page.name} needs an ` +
      "editor key (an admin key works too).");
    return;
  }
  setKey(key);
  showConsole(me);
  await hooks.signedIn(me);
}

function signOut(text, kind) {
  setKey("");
  hooks.signedOut();
  showForm(text, kind);
}

export function initSignIn(handlers, options = {}) {
  hooks = handlers;
  page = { ...page, ...options };
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      showForm("Enter an API key first.");
    } else if (!/^[\x21-\x7e]{1,256}$/.test(key)) {
      // Not sendable as a header, and no key looks like it: the server would not know it.
      showForm("Sign-in refused: unknown or revoked key (a key is plain ASCII, like mdl_…).");
    } else {
      signIn(key);
    }
  });
  $("sign-out").addEventListener("click", () =>
    signOut("Signed out. This tab no longer holds the key.", "info"));
  whenRefused(() => signOut("Signed out: the server no longer accepts this key (unknown or " +
    "revoked key). Sign in with a valid editor key."));
  if (currentKey()) signIn(currentKey(), true); // a reload in the same browser session
  else showForm("", "info");
}
