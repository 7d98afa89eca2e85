import { conditionKey, type ConditionData, type LeafCondition } from "@spindle/worker-sdk/protocol";
import { checkExpression } from "./cel";
import { SpindleError } from "./errors";

/**
 * Conditions, pure: a list is an AND of its entries; an `or` entry holds when any of its leaves
 * does. Leaves are addressed by (group, leaf) so each can be armed, satisfied and reported alone.
 */
export interface LeafRef {
  group: number;
  leaf: number;
  condition: LeafCondition;
}

export function leaves(list: readonly ConditionData[]): LeafRef[] {
  return list.flatMap((entry, group) =>
    entry.kind === "or" ? entry.conditions.map((condition, leaf) => ({ group, leaf, condition })) : [{ group, leaf: 0, condition: entry }],
  );
}

/**
 * Whether the list holds, given which leaves are satisfied (with their results), and the results
 * of the leaves that made it hold, keyed by their readable keys. An empty list holds at once.
 */
export function evaluate(
  list: readonly ConditionData[],
  satisfied: ReadonlyMap<string, unknown>,
): { holds: boolean; fired: Record<string, unknown> } {
  const fired: Record<string, unknown> = {};
  for (const [group, entry] of list.entries()) {
    const options = entry.kind === "or" ? entry.conditions : [entry];
    const hit = options.findIndex((_, leaf) => satisfied.has(leafId(group, leaf)));
    if (hit < 0) return { holds: false, fired: {} };
    fired[conditionKey(options[hit]!)] = satisfied.get(leafId(group, hit));
  }
  return { holds: true, fired };
}

export const leafId = (group: number, leaf: number): string => `${group}.${leaf}`;

export const MAX_LOOKBACK_MS = 24 * 3_600_000;

/** Checks conditions when they are declared: expressions parse, parents exist, windows fit. */
export function validateConditions(list: readonly ConditionData[], where: string, parents?: readonly string[]): void {
  for (const { group, leaf, condition } of leaves(list)) {
    const path = `${where}[${group}]${list[group]?.kind === "or" ? `.conditions[${leaf}]` : ""}`;
    const fail = (message: string): never => {
      throw new SpindleError("condition.invalid", `${path}: ${message}`, { fields: [{ path, message }] });
    };
    if (condition.kind === "event") {
      if (!condition.eventKey) fail("eventKey is required");
      if (condition.expression) checkAt(condition.expression, path);
      if ((condition.lookbackMs ?? 0) > MAX_LOOKBACK_MS) fail(`lookback is at most 24h`);
    } else if (condition.kind === "parent") {
      if (parents && !parents.includes(condition.parent)) fail(`'${condition.parent}' is not a parent of this task`);
      checkAt(condition.expression, path);
    } else if (!(condition.durationMs >= 0)) fail("sleep duration must not be negative");
  }
}

function checkAt(expression: string, path: string): void {
  try {
    checkExpression(expression);
  } catch (err) {
    throw new SpindleError("condition.invalid", `${path}: ${(err as Error).message}`, { fields: [{ path, message: (err as Error).message }] });
  }
}
