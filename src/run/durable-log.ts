import type { CheckpointKind, CheckpointRecord, CheckpointResult, LeafCondition } from "@spindle/worker-sdk/protocol";
import { parseJson } from "../storage/migrate";

/**
 * A run's durable event log: per durable task, its checkpoints in call order, and the conditions of
 * its waits (also the conditions DAG tasks wait on, under sequence number -1).
 */
export interface Checkpoint extends CheckpointRecord {
  task: string;
  invocation: number;
  createdAt: number;
  data: CheckpointData | null;
}

/** What a pending checkpoint waits on. */
export interface CheckpointData {
  children?: string[];
  /** sleep: the fixed deadline, set when the sleep is first reached. */
  dueAt?: number;
  /** wait: the condition list, as given. */
  conditions?: unknown[];
}

interface CheckpointRow extends Record<string, SqlStorageValue> {
  task: string;
  seq: number;
  kind: string;
  key: string;
  occurrence: number;
  status: string;
  result: string | null;
  data: string | null;
  invocation: number;
  created_at: number;
  resolved_order: number | null;
}

const toCheckpoint = (r: CheckpointRow): Checkpoint => {
  const cp: Checkpoint = {
    task: r.task,
    seq: r.seq,
    kind: r.kind as CheckpointKind,
    key: r.key,
    occurrence: r.occurrence,
    status: r.status as Checkpoint["status"],
    invocation: r.invocation,
    createdAt: r.created_at,
    data: parseJson<CheckpointData>(r.data),
  };
  const result = parseJson<CheckpointResult>(r.result);
  if (result) cp.result = result;
  if (r.resolved_order !== null) cp.order = r.resolved_order;
  return cp;
};

/** A checkpoint as it leaves the engine (to a replaying task, or in a run's view). */
export function toRecord({ seq, kind, key, occurrence, status, result, order }: Checkpoint): CheckpointRecord {
  return { seq, kind, key, occurrence, status, ...(result ? { result } : {}), ...(order !== undefined ? { order } : {}) };
}

export type ConditionList = "wait" | "skip" | "cancel";

export interface ConditionRecord {
  task: string;
  seq: number;
  list: ConditionList;
  group: number;
  leaf: number;
  spec: LeafCondition;
  armedAt: number;
  satisfiedAt: number | null;
  result: unknown;
  decided: boolean;
  /** Tells this arming of the condition from an earlier one at the same position (before a replay). */
  arming: string;
}

interface ConditionRow extends Record<string, SqlStorageValue> {
  task: string;
  seq: number;
  list: string;
  grp: number;
  leaf: number;
  spec: string;
  armed_at: number;
  satisfied_at: number | null;
  result: string | null;
  decided: number;
  arming: string;
}

const toCondition = (r: ConditionRow): ConditionRecord => ({
  task: r.task,
  seq: r.seq,
  list: r.list as ConditionList,
  group: r.grp,
  leaf: r.leaf,
  spec: JSON.parse(r.spec) as LeafCondition,
  armedAt: r.armed_at,
  satisfiedAt: r.satisfied_at,
  result: parseJson(r.result),
  decided: r.decided === 1,
  arming: r.arming,
});

/** The next resolution order of a task's checkpoints (bound to the task's name). */
const NEXT_ORDER = "(SELECT COALESCE(MAX(resolved_order), 0) + 1 FROM checkpoints WHERE task = ?)";

/** The sequence number under which DAG-task conditions are kept. */
export const DAG_CONDITIONS_SEQ = -1;

export class DurableLog {
  constructor(private readonly sql: SqlStorage) {}

  get(task: string, seq: number): Checkpoint | null {
    const row = this.sql.exec<CheckpointRow>("SELECT * FROM checkpoints WHERE task = ? AND seq = ?", task, seq).toArray()[0];
    return row ? toCheckpoint(row) : null;
  }

  /** The record of the n-th call with this kind and key, wherever it is in the log. */
  byIdentity(task: string, kind: CheckpointKind, key: string, occurrence: number): Checkpoint | null {
    const row = this.sql
      .exec<CheckpointRow>("SELECT * FROM checkpoints WHERE task = ? AND kind = ? AND key = ? AND occurrence = ?", task, kind, key, occurrence)
      .toArray()[0];
    return row ? toCheckpoint(row) : null;
  }

  all(task: string): Checkpoint[] {
    return this.sql.exec<CheckpointRow>("SELECT * FROM checkpoints WHERE task = ? ORDER BY seq", task).toArray().map(toCheckpoint);
  }

  pending(task: string): Checkpoint[] {
    return this.sql
      .exec<CheckpointRow>("SELECT * FROM checkpoints WHERE task = ? AND status = 'pending' ORDER BY seq", task)
      .toArray()
      .map(toCheckpoint);
  }

  /** Records a call; one that already has its result (a memo, a spawn) is recorded resolved. */
  insert(
    cp: {
      task: string;
      seq: number;
      kind: CheckpointKind;
      key: string;
      occurrence: number;
      invocation: number;
      data: CheckpointData | null;
      result?: CheckpointResult;
    },
    now: number,
  ): void {
    this.sql.exec(
      `INSERT INTO checkpoints (task, seq, kind, key, occurrence, status, result, data, invocation, created_at, resolved_at, resolved_order)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ${cp.result ? NEXT_ORDER : "NULL"})`,
      cp.task,
      cp.seq,
      cp.kind,
      cp.key,
      cp.occurrence,
      cp.result ? "resolved" : "pending",
      cp.result ? JSON.stringify(cp.result) : null,
      cp.data ? JSON.stringify(cp.data) : null,
      cp.invocation,
      now,
      cp.result ? now : null,
      ...(cp.result ? [cp.task] : []),
    );
  }

  /**
   * Marks a checkpoint resolved. `null`: its result is assembled on read from rows of its own (a
   * fan-out's children, a wait's conditions), so no one value grows with their number.
   */
  resolve(task: string, seq: number, result: CheckpointResult | null, now: number): boolean {
    return (
      this.sql.exec(
        `UPDATE checkpoints SET status = 'resolved', result = ?, resolved_at = ?, resolved_order = ${NEXT_ORDER}
         WHERE task = ? AND seq = ? AND status = 'pending'`,
        result === null ? null : JSON.stringify(result),
        now,
        task,
        task,
        seq,
      ).rowsWritten > 0
    );
  }

  /** The stored size of a task's recorded results, in bytes. */
  resultBytes(task: string): number {
    return this.sql.exec<{ n: number | null }>("SELECT SUM(LENGTH(CAST(result AS BLOB))) AS n FROM checkpoints WHERE task = ?", task).toArray()[0]?.n ?? 0;
  }

  /** Forgets a task's log (a replay starts the task afresh). */
  clear(task: string): void {
    this.sql.exec("DELETE FROM checkpoints WHERE task = ?", task);
    this.sql.exec("DELETE FROM conditions WHERE task = ?", task);
  }

  // --- conditions ---

  addCondition(c: Omit<ConditionRecord, "satisfiedAt" | "result" | "decided">): void {
    this.sql.exec(
      "INSERT INTO conditions (task, seq, list, grp, leaf, spec, armed_at, arming) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
      c.task,
      c.seq,
      c.list,
      c.group,
      c.leaf,
      JSON.stringify(c.spec),
      c.armedAt,
      c.arming,
    );
  }

  conditions(task: string, seq: number): ConditionRecord[] {
    return this.sql
      .exec<ConditionRow>("SELECT * FROM conditions WHERE task = ? AND seq = ? ORDER BY list, grp, leaf", task, seq)
      .toArray()
      .map(toCondition);
  }

  condition(task: string, seq: number, list: ConditionList, group: number, leaf: number): ConditionRecord | null {
    const row = this.sql
      .exec<ConditionRow>("SELECT * FROM conditions WHERE task = ? AND seq = ? AND list = ? AND grp = ? AND leaf = ?", task, seq, list, group, leaf)
      .toArray()[0];
    return row ? toCondition(row) : null;
  }

  /** Marks one leaf met, if it is still armed, undecided, and the same arming. */
  satisfy(ref: { task: string; seq: number; list: ConditionList; group: number; leaf: number; arming: string }, result: unknown, now: number): boolean {
    return (
      this.sql.exec(
        `UPDATE conditions SET satisfied_at = ?, result = ?
         WHERE task = ? AND seq = ? AND list = ? AND grp = ? AND leaf = ? AND arming = ? AND satisfied_at IS NULL AND decided = 0`,
        now,
        JSON.stringify(result ?? null),
        ref.task,
        ref.seq,
        ref.list,
        ref.group,
        ref.leaf,
        ref.arming,
      ).rowsWritten > 0
    );
  }

  /** The wait was decided: its remaining leaves no longer count. */
  markDecided(task: string, seq: number): void {
    this.sql.exec("UPDATE conditions SET decided = 1 WHERE task = ? AND seq = ?", task, seq);
  }

  /** Waits of a task that are still armed (undecided). */
  armedSeqs(task: string): number[] {
    return this.sql
      .exec<{ seq: number }>("SELECT DISTINCT seq FROM conditions WHERE task = ? AND decided = 0 ORDER BY seq", task)
      .toArray()
      .map((r) => r.seq);
  }

  /** DAG tasks waiting on their conditions. */
  armedTasks(): Set<string> {
    return new Set(
      this.sql
        .exec<{ task: string }>("SELECT DISTINCT task FROM conditions WHERE seq = ? AND decided = 0", DAG_CONDITIONS_SEQ)
        .toArray()
        .map((r) => r.task),
    );
  }
}
