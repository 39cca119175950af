// The sign-up / log-in screen.

import { errorText, type Api } from "../api";
import { h } from "../dom";
import { loadDeviceToken, saveDeviceToken, saveSession, type Session } from "../session";

/** authView returns the form; onSignedIn gets the new session. */
export function authView(api: Api, onSignedIn: (s: Session) => void): HTMLElement {
  let mode: "login" | "signup" = "login";
  const handle = h("input", { name: "handle", autocomplete: "username", required: true, minlength: 3, maxlength: 32, autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, minlength: 8 });
  const displayName = h("input", { name: "displayName", autocomplete: "nickname", maxlength: 64 });
  const nameRow = h("label", { class: "field", hidden: true }, "Display name", displayName);
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary", text: "Log in" });
  const toggle = h("button", { type: "button", class: "link", text: "New here? Sign up" });
  const title = h("h2", { text: "Log in" });

  const setMode = (m: typeof mode) => {
    mode = m;
    const signup = m === "signup";
    title.textContent = signup ? "Sign up" : "Log in";
    submit.textContent = signup ? "Sign up" : "Log in";
    toggle.textContent = signup ? "Have an account? Log in" : "New here? Sign up";
    nameRow.hidden = !signup;
    displayName.required = signup;
    password.autocomplete = signup ? "new-password" : "current-password";
    error.textContent = "";
  };
  toggle.addEventListener("click", () => setMode(mode === "login" ? "signup" : "login"));

  const form = h(
    "form",
    { class: "auth card", "aria-labelledby": "auth-title" },
    title,
    h("label", { class: "field" }, "Handle", handle),
    h("label", { class: "field" }, "Password", password),
    nameRow,
    error,
    submit,
    toggle,
  );
  title.id = "auth-title";
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    const name = handle.value.trim().toLowerCase();
    try {
      const res =
        mode === "signup"
          ? await api.auth.signUp({
              handle: name,
              password: password.value,
              displayName: displayName.value.trim(),
              timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
            })
          : await api.auth.logIn({ handle: name, password: password.value, deviceToken: loadDeviceToken(name) });
      saveDeviceToken(res.user!.handle, res.deviceToken);
      onSignedIn(saveSession(res.token, res.user!));
    } catch (err) {
      error.textContent = errorText(err);
      submit.disabled = false;
    }
  });
  queueMicrotask(() => handle.focus());
  return h("main", { class: "auth-screen" }, h("h1", { class: "brand", text: "Pods" }), h("p", { class: "tagline", text: "Small groups, one habit, every day." }), form);
}
