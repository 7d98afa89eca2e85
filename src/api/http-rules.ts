/**
 * HTTP rules that sit beside the routes: which methods a path allows (for 405), and which origins
 * CORS lets in.
 */

/** The methods registered for `path` (e.g. `["GET", "POST"]`), from the app's own route table. */
export function allowedMethods(app: { routes: { method: string; path: string }[] }, path: string): string[] {
  const methods = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL" || r.path.includes("*")) continue;
    const pattern = new RegExp(`^${r.path.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\/:[^/]+/g, "/[^/]+")}/?$`);
    if (pattern.test(path)) methods.add(r.method);
  }
  if (methods.has("GET")) methods.add("HEAD");
  return [...methods].sort();
}

/** `SPINDLE_CORS_ORIGINS`: unset or empty turns CORS off; `*` allows any origin; else a comma-separated list. */
export function corsOrigins(value: string | undefined): "*" | string[] | null {
  const origins = (value ?? "")
    .split(",")
    .map((o) => o.trim().replace(/\/+$/, ""))
    .filter(Boolean);
  if (origins.length === 0) return null;
  return origins.includes("*") ? "*" : origins;
}
