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
 *
 * Logs recorded before memos had identities (by an SDK that matched calls by position, and keyed
 * every memo by its deps alone: `legacyMemoKey`) still replay: a memo call that matches no record
 * by identity takes the record at its own position (the n-th call of the invocation, as that SDK
 * numbered them) if that record has the call's old key. That is what the old SDK would have done
 * with the same log and code, so a task in flight across the upgrade replays as it would have.
 */
export class ReplayLog {
  private readonly byIdentity = new Map<string, CheckpointRecord>();
  private readonly unmatched = new Map<number, CheckpointRecord>();
  private readonly made = new Map<string, number>();
  private next: number;
  private calls = 0;
  private firstNew: { seq: number; call: string } | null = null;
  /** Whether the log holds memo records in the old form (only then is a call's old key worth computing). */
  readonly hasLegacyMemos: boolean;

  constructor(log: readonly CheckpointRecord[]) {
    let last = -1;
    for (const r of log) {
      this.byIdentity.set(identity(r.kind, r.key, r.occurrence), r);
      this.unmatched.set(r.seq, r);
      last = Math.max(last, r.seq);
    }
    this.next = last + 1;
    this.hasLegacyMemos = log.some((r) => r.kind === "memo" && LEGACY_MEMO_KEY.test(r.key));
  }

  /**
   * Takes the next call with this identity: its record if it has one, else a fresh position.
   * `legacyKey`: the key an SDK from before memo identities gave this call (see the class).
   */
  match(kind: CheckpointKind, key: string, legacyKey?: string): ReplayMatch {
    const ordinal = this.calls++;
    const id = `${kind}\u0000${key}`;
    const occurrence = this.made.get(id) ?? 0;
    this.made.set(id, occurrence + 1);
    const record = this.byIdentity.get(identity(kind, key, occurrence)) ?? null;
    if (record) {
      this.unmatched.delete(record.seq);
      return { seq: record.seq, occurrence, record };
    }
    const legacy = legacyKey === undefined ? undefined : this.unmatched.get(ordinal);
    if (legacy && legacy.kind === kind && legacy.key === legacyKey) {
      this.unmatched.delete(legacy.seq);
      return { seq: legacy.seq, occurrence: legacy.occurrence, record: legacy };
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

/** The key an SDK from before memo identities recorded: `memo:` and the digest of the deps (or of null). */
const LEGACY_MEMO_KEY = /^memo:[0-9a-f]{24}$/;
