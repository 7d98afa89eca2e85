import { parse } from "@marcbachmann/cel-js";
import { toMs } from "./duration.js";
import { SpindleError } from "./errors.js";
import type { ConditionData, Duration, LeafCondition } from "./protocol.js";
import type { TaskRef } from "./runnable.js";

/**
 * Conditions for `ctx.waitFor` and for a DAG task's `waitFor`, `skipIf` and `cancelIf`. A list
 * holds when all its entries hold; an `Or(...)` entry holds when any of its conditions does.
 */
export class SleepCondition {
  readonly kind = "sleep";
  constructor(
    readonly duration: Duration,
    /** The key the result is reported under (default `sleep`). */
    readonly key?: string,
  ) {}
}

export class UserEventCondition {
  readonly kind = "event";
  constructor(
    readonly eventKey: string,
    /** CEL over `input` (the payload) and `additional_metadata`. */
    readonly expression?: string,
    readonly options: { scope?: string; lookback?: Duration; key?: string } = {},
  ) {}
}

export class ParentCondition {
  readonly kind = "parent";
  readonly parent: string;
  readonly expression: string;
  constructor(options: { parent: TaskRef<any, any> | string; expression: string; key?: string });
  constructor(parent: TaskRef<any, any> | string, expression: string);
  constructor(
    a: { parent: TaskRef<any, any> | string; expression: string; key?: string } | TaskRef<any, any> | string,
    expression?: string,
  ) {
    const options = typeof a === "object" && "expression" in a ? a : { parent: a as TaskRef<any, any> | string, expression: expression ?? "" };
    this.parent = typeof options.parent === "string" ? options.parent : options.parent.name;
    this.expression = options.expression;
  }
}

export class OrGroup {
  readonly kind = "or";
  constructor(readonly conditions: LeafSpec[]) {}
}

/** Any one of these conditions. */
export function Or(...conditions: LeafSpec[]): OrGroup {
  if (conditions.length === 0) throw new SpindleError("condition.invalid", "Or() needs at least one condition");
  return new OrGroup(conditions);
}

export type LeafSpec =
  | SleepCondition
  | UserEventCondition
  | ParentCondition
  | { sleepFor: Duration; key?: string }
  | { eventKey: string; expression?: string; scope?: string; lookback?: Duration; key?: string };

export type ConditionSpec = LeafSpec | OrGroup;

/** Turns what the user wrote into wire conditions, checking CEL expressions as they are declared. */
export function toConditionData(specs: readonly ConditionSpec[], where: string): ConditionData[] {
  return specs.map((spec, i) => {
    if (spec instanceof OrGroup) return { kind: "or", conditions: spec.conditions.map((c, j) => toLeaf(c, `${where}[${i}].conditions[${j}]`)) };
    return toLeaf(spec, `${where}[${i}]`);
  });
}

function toLeaf(spec: LeafSpec, where: string): LeafCondition {
  let leaf: LeafCondition;
  if (spec instanceof SleepCondition) leaf = { kind: "sleep", durationMs: toMs(spec.duration, `${where}.duration`) };
  else if (spec instanceof UserEventCondition) {
    leaf = { kind: "event", eventKey: spec.eventKey };
    if (spec.expression) leaf.expression = checkCel(spec.expression, where);
    if (spec.options.scope !== undefined) leaf.scope = spec.options.scope;
    if (spec.options.lookback !== undefined) leaf.lookbackMs = toMs(spec.options.lookback, `${where}.lookback`);
    if (spec.options.key) leaf.key = spec.options.key;
  } else if (spec instanceof ParentCondition) {
    leaf = { kind: "parent", parent: spec.parent, expression: checkCel(spec.expression, where) };
  } else if ("sleepFor" in spec) {
    leaf = { kind: "sleep", durationMs: toMs(spec.sleepFor, `${where}.sleepFor`) };
  } else if ("eventKey" in spec) {
    leaf = { kind: "event", eventKey: spec.eventKey };
    if (spec.expression) leaf.expression = checkCel(spec.expression, where);
    if (spec.scope !== undefined) leaf.scope = spec.scope;
    if (spec.lookback !== undefined) leaf.lookbackMs = toMs(spec.lookback, `${where}.lookback`);
  } else {
    throw new SpindleError("condition.invalid", `${where}: not a condition (use SleepCondition, UserEventCondition, ParentCondition or Or)`);
  }
  const key = (spec as { key?: string }).key;
  if (key) leaf.key = key;
  if (leaf.kind === "event" && !leaf.eventKey) throw new SpindleError("condition.invalid", `${where}: eventKey is required`);
  return leaf;
}

const parsed = new Map<string, true>();

/** Refuses an expression that does not parse, with the parser's message. */
export function checkCel(expression: string, where: string): string {
  if (parsed.has(expression)) return expression;
  try {
    parse(expression);
  } catch (err) {
    throw new SpindleError("condition.invalid", `${where}: CEL expression ${JSON.stringify(expression)} does not parse: ${(err as Error).message.split("\n")[0]}`, {
      fields: [{ path: where, message: (err as Error).message.split("\n")[0]! }],
    });
  }
  parsed.set(expression, true);
  return expression;
}
