#!/usr/bin/env node
// `npm start`: the engine and the example worker in one `wrangler dev` on port 8787, with a dev
// registry of its own (.wrangler/registry): another `wrangler dev` on this machine (a second
// checkout, the tests, the bench) never binds to these workers, nor these to its.
// Creates the local secrets from .dev.vars.example on first run. Extra arguments go to wrangler
// (e.g. `npm start -- --port 9000 --persist-to /tmp/spindle-state`).
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const example = join(root, "worker-sdk", "examples");

for (const dir of [root, example]) {
  const vars = join(dir, ".dev.vars");
  if (!existsSync(vars)) {
    copyFileSync(join(root, ".dev.vars.example"), vars);
    console.log(`created ${vars.replace(root + "/", "")} from .dev.vars.example`);
  }
}

const args = process.argv.slice(2);
if (!args.includes("--port")) args.push("--port", "8787");
const registry = process.env.WRANGLER_REGISTRY_PATH ?? join(root, ".wrangler", "registry");
mkdirSync(registry, { recursive: true });
const wrangler = spawn(
  join(root, "node_modules", ".bin", "wrangler"),
  ["dev", "-c", "wrangler.toml", "-c", "worker-sdk/examples/wrangler.toml", "--show-interactive-dev-session=false", ...args],
  { cwd: root, stdio: "inherit", env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_REGISTRY_PATH: registry } },
);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => wrangler.kill(signal));
wrangler.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
