// Small DOM helpers shared by the widgets.

export const $ = (id) => document.getElementById(id);

export function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
