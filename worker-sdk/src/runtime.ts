/**
 * `cloudflare:workers` where the runtime has it (Workers, `wrangler dev`, workerd), and null
 * elsewhere (Node, Deno, Bun), so `@spindle/worker-sdk` loads on any runtime: `spindle.serve()`
 * and the client need nothing from it; `spindle.worker()` and the default env do.
 */
type WorkersModule = typeof import("cloudflare:workers");

export const workers: WorkersModule | null = await import("cloudflare:workers").then(
  (m) => m,
  () => null,
);
