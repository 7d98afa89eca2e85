#!/usr/bin/env node
// `npm run lint:openapi`: builds the engine's router (esbuild, as wrangler does), asks it for the
// OpenAPI document exactly as a client would (GET /api/v1/openapi.json, no token), writes it to
// .wrangler/openapi.json and runs `redocly lint` on it. Fails on any error.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, ".wrangler", "openapi");
mkdirSync(out, { recursive: true });
await build({
  stdin: {
    contents: `import { createApp } from "./src/api/app.ts"; export const app = createApp();`,
    resolveDir: root,
    loader: "ts",
  },
  bundle: true,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  conditions: ["workerd", "worker", "import"],
  external: ["cloudflare:*"],
  outfile: join(out, "app.mjs"),
  logLevel: "warning",
});
const { app } = await import(join(out, "app.mjs"));
const res = await app.request("https://spindle.example.workers.dev/api/v1/openapi.json", {}, {});
if (res.status !== 200) throw new Error(`GET /api/v1/openapi.json answered ${res.status}: ${await res.text()}`);
const doc = join(out, "openapi.json");
writeFileSync(doc, JSON.stringify(await res.json(), null, 2));
execFileSync(join(root, "node_modules", ".bin", "redocly"), ["lint", doc, "--format", "stylish"], { stdio: "inherit", cwd: root });
