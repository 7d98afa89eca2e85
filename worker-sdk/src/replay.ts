import { NonDeterminismError } from "./errors.js";
import { describeCall, type CheckpointKind, type CheckpointRecord } from "./protocol.js";

/** Where a checkpoint call lands: its record when replaying, or a fresh position past the log. */
export interface ReplayMatch {
  seq: number;
  /** How many calls with the same identity (kind and key) this invocation made before this one. */
  occurrence: number;
  record: CheckpointRecord | null;
}

/**
 * Matches a durable task's checkpoint calls with its event log. A call's identity is its kind and
 * key (a memo's name, a sleep's duration, a wait's conditions, ...); the n-th call with an identity
 * gets the record of the n-th recorded call with it, whatever the order and timing of the calls, so
 * parallel branches each find their own records. A call that matches nothing is new: it gets a
 * position past every recorded one. No timing is involved, so no replay can hand a call another
 * call's result.
 *
 * A replay cannot tell, while it runs, a branch that took another path from one that is only slow
 * to get to its records: a task that returns while recorded calls were never made again has
 * diverged from its log (`divergence()`).
 */
export class ReplayLog {
  private readonly byIdentity = new Map<string, CheckpointRecord>();
  private readonly unmatched = new Map<number, CheckpointRecord>();
  private readonly made = new Map<string, number>();
  private next: number;
  private firstNew: { seq: number; call: string } | null = null;

  constructor(log: readonly CheckpointRecord[]) {
    let last = -1;
    for (const r of log) {
      this.byIdentity.set(identity(r.kind, r.key, r.occurrence), r);
      this.unmatched.set(r.seq, r);
      last = Math.max(last, r.seq);
    }
    this.next = last + 1;
  }

  /** Takes the next call with this identity: its record if it has one, else a fresh position. */
  match(kind: CheckpointKind, key: string): ReplayMatch {
    const id = `${kind}\u0000${key}`;
    const occurrence = this.made.get(id) ?? 0;
    this.made.set(id, occurrence + 1);
    const record = this.byIdentity.get(identity(kind, key, occurrence)) ?? null;
    if (record) {
      this.unmatched.delete(record.seq);
      return { seq: record.seq, occurrence, record };
    }
    const seq = this.next++;
    this.firstNew ??= { seq, call: describeCall(kind, key, occurrence) };
    return { seq, occurrence, record: null };
  }

  /** Whether every recorded call has been made again. */
  get replayed(): boolean {
    return this.unmatched.size === 0;
  }

  /** The error a task that returns now deserves: a recorded call it never made again. */
  divergence(): NonDeterminismError | null {
    if (this.unmatched.size === 0) return null;
    const first = [...this.unmatched.values()].sort((a, b) => a.seq - b.seq)[0]!;
    const recorded = describeCall(first.kind, first.key, first.occurrence);
    const called = this.firstNew ? `${this.firstNew.call} (checkpoint ${this.firstNew.seq})` : "nothing new";
    return new NonDeterminismError(
      first.seq,
      recorded,
      called,
      `non-deterministic replay at checkpoint ${first.seq}: the log recorded ${recorded} but the task returned without making that call again; it called ${called} instead`,
    );
  }
}

function identity(kind: string, key: string, occurrence: number): string {
  return `${kind}\u0000${key}\u0000${occurrence}`;
}
