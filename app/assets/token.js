// Widget: the token prompt, shown when the app answers 401; the token is kept in local storage.

import { $ } from "./dom.js";

const KEY = "axum-mqtt-token";

export function initialToken() {
  return new URLSearchParams(location.search).get("token") || localStorage.getItem(KEY) || "";
}

export function setupToken(onToken) {
  $("token-form").onsubmit = (e) => {
    e.preventDefault();
    onToken($("token-input").value.trim());
  };
}

// Shows the prompt; `error` is the app's reason when a token was given.
export function askToken(error) {
  $("token-box").hidden = false;
  $("token-error").textContent = error;
  $("token-input").focus();
}

export function tokenAccepted(token) {
  $("token-box").hidden = true;
  if (token) localStorage.setItem(KEY, token);
}
