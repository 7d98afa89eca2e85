import { Cron } from "croner";
import type { FilterSpec, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { checkExpression, evaluateFilter } from "./cel";
import { SpindleError } from "./errors";

/**
 * What starts a run besides a direct call, as plain logic: which workflows an event key starts,
 * which filter lets an event through, and when a cron ticks. No `cloudflare:*` import: unit-tested
 * in Node, used by the engine's objects.
 */

/** `order:*` matches any key that starts with `order:`; any other pattern matches itself only. */
export function eventKeyMatches(pattern: string, key: string): boolean {
  return pattern.endsWith("*") ? key.startsWith(pattern.slice(0, -1)) : pattern === key;
}

/** The workflows whose `onEvents` match the key, in name order. */
export function workflowsForEvent<W extends Pick<WorkflowDefinition, "name" | "onEvents">>(workflows: W[], key: string): W[] {
  return workflows.filter((w) => w.onEvents?.some((p) => eventKeyMatches(p, key))).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export interface StoredFilter extends FilterSpec {
  id: string;
}

export interface FilterDecision {
  /** Whether the workflow runs for this event. */
  run: boolean;
  /** The filter that let it through (none when no filter applied). */
  filter?: StoredFilter;
  /** Evaluation errors of the filters that applied (each counted as not holding). */
  errors: string[];
}

/**
 * Whether an event starts a workflow, given the workflow's filters. A filter applies to an event
 * when it has no scope or the event's scope; with no filter applying the workflow runs, otherwise
 * it runs when one holds (the first, by id, gives its payload to the run).
 */
export function decideFilters(
  filters: StoredFilter[],
  event: { scope: string | null; payload: unknown; metadata: Record<string, string> },
): FilterDecision {
  const applying = filters.filter((f) => f.scope === undefined || f.scope === null || f.scope === event.scope);
  if (applying.length === 0) return { run: true, errors: [] };
  const errors: string[] = [];
  for (const f of [...applying].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const result = evaluateFilter(f.expression, { input: event.payload ?? null, additional_metadata: event.metadata, payload: f.payload ?? null });
    if (result.error !== undefined) errors.push(`filter ${f.id}: ${result.error}`);
    if (result.matched) return { run: true, filter: f, errors };
  }
  return { run: false, errors };
}

/** Refuses an expression that does not compile, naming the field. */
export function checkFilterExpression(expression: string, path: string): void {
  try {
    checkExpression(expression);
  } catch (err) {
    throw invalid(path, (err as Error).message);
  }
}

// ---------------------------------------------------------------------------------------------
// Crons
// ---------------------------------------------------------------------------------------------

/** The most missed ticks counted one by one; past that the count says "at least". */
export const MAX_COUNTED_TICKS = 10_000;

function cron(expression: string, timezone: string): Cron {
  return new Cron(expression, { timezone, paused: true });
}

/**
 * Parses a cron expression (five fields, six with seconds, or a name such as `@hourly`) in an IANA
 * time zone with croner, and refuses what does not parse with croner's message, naming the field.
 */
export function checkCron(expression: string, timezone: string, paths: { expression: string; timezone: string }): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch (err) {
    throw invalid(paths.timezone, `'${timezone}' is not an IANA time zone: ${(err as Error).message}`);
  }
  let parsed: Cron;
  try {
    parsed = cron(expression, timezone);
  } catch (err) {
    throw invalid(paths.expression, (err as Error).message);
  }
  try {
    parsed.nextRun(new Date(0));
  } catch (err) {
    throw invalid(paths.timezone, (err as Error).message);
  }
}

/** The first tick strictly after `afterMs`, or null if the expression never ticks again. */
export function nextTick(expression: string, timezone: string, afterMs: number): number | null {
  return cron(expression, timezone).nextRun(new Date(afterMs))?.getTime() ?? null;
}

/**
 * The ticks due at `nowMs` of a cron whose next tick was `dueMs`: the latest one (the one to run)
 * and how many there were. Several missed ticks (the engine was down) run once, as the latest.
 */
export function dueTicks(expression: string, timezone: string, dueMs: number, nowMs: number): { latest: number; count: number; next: number | null } | null {
  if (dueMs > nowMs) return null;
  const c = cron(expression, timezone);
  let latest = dueMs;
  let count = 1;
  for (let t = c.nextRun(new Date(dueMs))?.getTime(); t !== undefined && t <= nowMs; t = c.nextRun(new Date(t))?.getTime()) {
    latest = t;
    if (++count >= MAX_COUNTED_TICKS) {
      latest = c.previousRuns(1, new Date(nowMs + 1))[0]?.getTime() ?? latest;
      break;
    }
  }
  return { latest, count, next: c.nextRun(new Date(Math.max(latest, nowMs)))?.getTime() ?? null };
}

function invalid(path: string, message: string): SpindleError {
  return new SpindleError("request.invalid", `${path}: ${message}`, { fields: [{ path, message }] });
}
