import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { installSqliteGuard } from "../support/sqlite-guard";

// Every workerd test runs under Cloudflare's 2 MB SQLite value limit. The Durable Objects run in
// this isolate, so the guard installed on the shared SqlStorage prototype covers all of them.
await runInDurableObject(env.RUNS.getByName("sqlite-guard"), (_instance, state) => installSqliteGuard(state.storage.sql));
