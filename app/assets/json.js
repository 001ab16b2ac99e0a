// Payload helpers: JSON payloads parsed once, pretty-printed, and their numeric fields found
// (`{"rh": 45}` gives the field `rh`, nested objects `a.b`, arrays `a[0]`); a bare number is a
// field with no name.

const MAX_FIELDS = 16; // numeric fields charted per message
const MAX_DEPTH = 4;

// The payload parsed as JSON, or undefined when it is not JSON (or not text).
export function parseJson(text) {
  if (typeof text !== "string") return undefined;
  const s = text.trim();
  if (s === "" || !"{[\"-0123456789tfn".includes(s[0])) return undefined;
  try { return JSON.parse(s); } catch { return undefined; }
}

// The payload for reading: JSON indented by two spaces, other text as it is.
export function pretty(text, json) {
  if (json === undefined || typeof json !== "object" || json === null) return text;
  return JSON.stringify(json, null, 2);
}

// [[field, number], …] of a payload: "" for a bare number, else the JSON path of each number.
export function numericFields(text, json) {
  if (typeof json === "number") return Number.isFinite(json) ? [["", json]] : [];
  if (json === undefined && typeof text === "string") {
    const v = Number(text.trim());
    return text.trim() !== "" && Number.isFinite(v) ? [["", v]] : [];
  }
  const out = [];
  const walk = (v, path, depth) => {
    if (out.length >= MAX_FIELDS) return;
    if (typeof v === "number" && Number.isFinite(v)) out.push([path, v]);
    else if (v && typeof v === "object" && depth < MAX_DEPTH) {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, path + "[" + i + "]", depth + 1));
      else for (const k of Object.keys(v)) walk(v[k], path ? path + "." + k : k, depth + 1);
    }
  };
  if (json && typeof json === "object") walk(json, "", 0);
  return out;
}
