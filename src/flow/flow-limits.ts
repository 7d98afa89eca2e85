import { DurableObject } from "cloudflare:workers";
import type { ConcurrencyKeyView, RateLimitDuration, RateLimitView } from "@spindle/worker-sdk/protocol";
import { clock } from "../core/clock";
import { errorData } from "../core/errors";
import { runObjectName } from "../core/names";
import type { Env } from "../env";
import { migrate } from "../storage/migrate";
import { LimitsStore, MIGRATIONS, type AcquireRequest, type AcquireResult, type StrategyCancel } from "./limits-store";

/** A waiter its queue has not asked about for this long is forgotten (its queue asks every FLOW_RECHECK_MS). */
const WAITER_TTL_MS = 60_000;
/** Housekeeping (stale waiters, spent units) while the object holds anything. */
const COLLECT_INTERVAL_MS = 30_000;
/** A holder is confirmed with its run this often: one whose release was lost (or overtook its grant) is freed. */
const HOLDER_CHECK_MS = 60_000;
const HOLDER_CHECK_BATCH = 500;
/** A strategy's cancel that did not reach its run is sent again after this long. */
const CANCEL_RETRY_MS = 5_000;

/**
 * The concurrency keys and rate limits of one tenant whose ids hash to this object
 * (`flow:<tenant>:<shard>`, FLOW_SHARDS of them): a key's state lives in one object, and only that
 * key's tasks wait on it. Each request is checked and taken in one transaction, all of its needs
 * here or none; the task queue that asks takes a task's needs from every object it needs, or gives
 * back what it took (`TaskQueue`), so a waiting task holds nothing.
 *
 * A release tells the queues waiting on what it freed, at once. Cancels decided by a strategy
 * (CANCEL_NEWEST, CANCEL_IN_PROGRESS, CANCEL_QUEUED_EXCEPT_NEWEST) are rows, sent to the run's
 * ordinary cancel until it answers.
 */
export class FlowLimits extends DurableObject<Env> {
  private readonly store: LimitsStore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new LimitsStore(ctx.storage.sql);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage, MIGRATIONS);
    });
  }

  /** Takes each request's needs, all or none, in order. `queue`: the task queue to tell when a refused need frees up. */
  async acquire(tenant: string, queue: string, requests: AcquireRequest[]): Promise<AcquireResult[]> {
    const cancels: StrategyCancel[] = [];
    const now = clock.now();
    const results = this.ctx.storage.transactionSync(() => {
      this.ensureTenant(tenant);
      const out = requests.map((r) => this.store.acquire(queue, r, now, cancels));
      this.store.addCancels(cancels, now + CANCEL_RETRY_MS);
      return out;
    });
    await this.planAlarm();
    if (cancels.length > 0) this.ctx.waitUntil(this.sendCancels(tenant, cancels));
    return results;
  }

  /**
   * An attempt or a run ended (`holders` null: every key the run holds here), or an admission gave
   * back what it took: free it and tell the queues waiting on it.
   */
  async release(tenant: string, runId: string, holders: { id: string; holder: string }[] | null, refunds: { key: string; holder: string }[] = []): Promise<void> {
    const freed = this.ctx.storage.transactionSync(() => {
      this.ensureTenant(tenant);
      return this.store.release(runId, holders, refunds);
    });
    if (freed.length > 0) this.ctx.waitUntil(this.notify(freed));
  }

  /** The tasks holding these rate units started (the run tells at its start): their windows run from `at`. */
  async started(tenant: string, units: { key: string; holder: string }[], at: number): Promise<void> {
    const changed = this.ctx.storage.transactionSync(() => {
      this.ensureTenant(tenant);
      return this.store.started(units, at);
    });
    if (changed.length > 0) this.ctx.waitUntil(this.notify(changed));
  }

  async upsertRateLimit(tenant: string, key: string, limit: number, duration: RateLimitDuration): Promise<RateLimitView> {
    const now = clock.now();
    this.ctx.storage.transactionSync(() => {
      this.ensureTenant(tenant);
      this.store.upsertRateLimit(key, limit, duration);
    });
    this.ctx.waitUntil(this.notify([`rate\u0000${key}`]));
    return this.store.rateLimits(now).find((r) => r.key === key)!;
  }

  async rateLimits(): Promise<RateLimitView[]> {
    return this.store.rateLimits(clock.now());
  }

  async concurrency(): Promise<ConcurrencyKeyView[]> {
    return this.store.concurrency();
  }

  override async alarm(): Promise<void> {
    const now = clock.now();
    this.store.collect(now, now - WAITER_TTL_MS);
    const tenant = this.tenant();
    const due = this.store.dueCancels(now);
    for (const c of due) this.store.postponeCancel(c.runId, now + CANCEL_RETRY_MS);
    await this.planAlarm();
    if (!tenant) return;
    if (due.length > 0) await this.sendCancels(tenant, due);
    await this.checkHolders(tenant, now);
  }

  /**
   * Asks the runs of holders not confirmed for HOLDER_CHECK_MS whether they still hold their keys,
   * and frees those that do not: a release lost, or sent before the grant it releases landed, can
   * hold a key only until then.
   */
  private async checkHolders(tenant: string, now: number): Promise<void> {
    const stale = this.store.holdersToCheck(now - HOLDER_CHECK_MS, HOLDER_CHECK_BATCH);
    if (stale.length === 0) return;
    const byRun = new Map<string, typeof stale>();
    for (const h of stale) byRun.set(h.runId, [...(byRun.get(h.runId) ?? []), h]);
    const gone: { runId: string; id: string; holder: string }[] = [];
    const confirmed: { id: string; holder: string }[] = [];
    await Promise.all(
      [...byRun].map(async ([runId, holders]) => {
        try {
          const held = await this.env.RUNS.getByName(runObjectName(tenant, runId)).flowHeld(holders.map((h) => h.holder));
          holders.forEach((h, i) => (held[i] ? confirmed : gone).push(h));
        } catch (err) {
          console.error(`flow limits: could not ask run ${runId} about its keys`, err);
        }
      }),
    );
    const freed = this.ctx.storage.transactionSync(() => {
      this.store.checked(confirmed, now);
      return [...new Set(gone.map((g) => g.runId))].flatMap((runId) => this.store.release(runId, gone.filter((g) => g.runId === runId), []));
    });
    if (freed.length > 0) await this.notify(freed);
  }

  /** Cancels through the run's ordinary cancel (its running code sees its abort signal; a late result is ignored). */
  private async sendCancels(tenant: string, cancels: StrategyCancel[]): Promise<void> {
    await Promise.all(
      cancels.map(async (c) => {
        try {
          const error = errorData("concurrency.cancelled", "CancelledError", c.message);
          await this.env.RUNS.getByName(runObjectName(tenant, c.runId)).cancel(error);
          this.store.cancelDone(c.runId);
        } catch (err) {
          console.error(`flow limits: could not cancel run ${c.runId}, retrying`, err);
        }
      }),
    );
  }

  private async notify(ids: string[]): Promise<void> {
    await Promise.all(
      this.store.queuesWaitingOn(ids).map(({ queue, ids }) =>
        this.env.TASK_QUEUES.getByName(queue)
          .flowFreed(ids)
          // The queue asks again on its own (FLOW_RECHECK_MS): a lost notice only delays.
          .catch((err: unknown) => console.error(`flow limits: could not tell ${queue}`, err)),
      ),
    );
  }

  private ensureTenant(tenant: string): void {
    this.ctx.storage.sql.exec("INSERT INTO config (id, tenant) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", tenant);
  }

  private tenant(): string | null {
    return this.ctx.storage.sql.exec<{ tenant: string }>("SELECT tenant FROM config WHERE id = 1").toArray()[0]?.tenant ?? null;
  }

  private async planAlarm(): Promise<void> {
    const cancelAt = this.store.nextCancelAt();
    const collectAt = this.store.busy() ? clock.now() + COLLECT_INTERVAL_MS : null;
    const next = [cancelAt, collectAt].filter((t): t is number => t !== null).sort((a, b) => a - b)[0] ?? null;
    const current = await this.ctx.storage.getAlarm();
    if (next === null) return;
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }
}
