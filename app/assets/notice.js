// Widget: the notice banner (errors stay 8 s, information 4 s).

import { $ } from "./dom.js";

let timer = null;

export function notice(text, kind = "error") {
  const n = $("notice");
  n.textContent = text;
  n.className = "banner " + kind;
  n.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => { n.hidden = true; }, kind === "error" ? 8000 : 4000);
}
