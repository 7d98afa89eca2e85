import { LIVENESS_TIMEOUT_MS } from "./liveness";

/**
 * Messages this run owes to other objects (queue a task, update the run index, cancel a child),
 * written in the same transaction as the state change that caused them and sent right after it
 * commits. Until a message is known sent, the object's alarm covers it (`alarmAt`): a failed send
 * is retried with backoff, and one cut off by a reset is sent after a grace period. So nothing is
 * lost between the commit and the send; receivers are idempotent, so a resend duplicates nothing.
 * Sent rows are deleted by the next write (a run that has ended makes that write at once). A message
 * that fails OUTBOX_MAX_TRIES times is dead-lettered: moved to `dead_letters`, kept and shown in the
 * run's view, and the run that waited on it is told (see `RunMachine.deadLettered`), except the
 * notices in NEVER_GIVEN_UP, which are tried until they land.
 */
export type OutboxKind =
  | "enqueue"
  | "dequeue"
  | "index"
  | "cancel_run"
  | "link_child"
  | "child_ended"
  | "child_lost"
  | "subscribe"
  | "unsubscribe"
  | "flow_release"
  | "flow_started";

export interface OutboxMessage {
  id: number;
  kind: OutboxKind;
  target: string;
  payload: unknown;
  tries: number;
}

interface OutboxRow extends Record<string, SqlStorageValue> {
  id: number;
  kind: string;
  target: string;
  payload: string;
  tries: number;
  next_at: number;
}

export const OUTBOX_RETRY_BASE_MS = 500;
export const OUTBOX_RETRY_MAX_MS = 60_000;
/** Tries before a message is dead-lettered: with the backoff above, about 8.5 minutes of failures. */
export const OUTBOX_MAX_TRIES = 15;
/**
 * Small notices that nothing would repair if they were given up, so they are tried until they land
 * (every OUTBOX_RETRY_MAX_MS at most): a parent told that its child's report was lost (it would
 * wait for that child forever), a cancel for a child run (it would run on), a child's link to its
 * parent (the parent's cancel would never reach it).
 */
export const NEVER_GIVEN_UP: ReadonlySet<OutboxKind> = new Set<OutboxKind>(["child_lost", "cancel_run", "link_child"]);

export interface DeadLetter {
  /** An outbox kind, or `condition_met`: an event bus could not deliver a met condition to this run. */
  kind: OutboxKind | "condition_met";
  target: string;
  payload: unknown;
  tries: number;
  /** The last failure. */
  error: string;
  at: number;
}

interface DeadLetterRow extends Record<string, SqlStorageValue> {
  kind: string;
  target: string;
  payload: string;
  tries: number;
  error: string;
  at: number;
}
/**
 * A message is sent right after the write that adds it; if the object goes away before the send
 * lands, the alarm sends it this long after it was added. As long as a claim's liveness check
 * (`LIVENESS_TIMEOUT_MS`), so that the alarm a new run sets for its enqueue is already early enough
 * for the check its task's start arms, and the start need not move it (see `TimerStore.plan`).
 */
export const OUTBOX_GRACE_MS = LIVENESS_TIMEOUT_MS;

export class Outbox {
  private readonly sending = new Set<number>();
  /**
   * Sent, not yet deleted: the delete rides along with the object's next write instead of costing
   * a commit of its own. If the object goes away first, they are sent again (receivers are
   * idempotent).
   */
  private readonly sent = new Set<number>();
  /** False once everything due has been taken: a write that adds nothing costs no query. */
  private mayHaveDue = true;
  /** The kinds of the messages added since the last `take`. */
  private readonly fresh = new Set<OutboxKind>();
  /** Deleted by the write in progress: forgotten once it commits, still `sent` if it rolls back. */
  private purging: number[] = [];

  constructor(private readonly sql: SqlStorage) {}

  /** The alarm fired: retries may have come due. */
  wake(): void {
    this.mayHaveDue = true;
  }

  add(kind: OutboxKind, target: string, payload: unknown, now: number): void {
    if (kind === "index") {
      // Only the newest index update of a run matters; drop older ones not already on the wire.
      // One statement text whatever is in flight (the ids are a bound JSON array), so it is
      // prepared once per object.
      this.sql.exec(
        "DELETE FROM outbox WHERE kind = 'index' AND target = ? AND id NOT IN (SELECT value FROM json_each(?))",
        target,
        JSON.stringify([...this.sending, ...this.sent]),
      );
    }
    this.sql.exec("INSERT INTO outbox (kind, target, payload, next_at) VALUES (?, ?, ?, ?)", kind, target, JSON.stringify(payload), now);
    this.mayHaveDue = true;
    this.fresh.add(kind);
  }

  /**
   * Due messages not already being sent; marks them as being sent. Those of kind `hold` stay due,
   * for a later take.
   */
  take(now: number, hold: OutboxKind | null = null): OutboxMessage[] {
    if (!this.mayHaveDue) return [];
    this.mayHaveDue = false;
    this.fresh.clear();
    const rows = this.sql.exec<OutboxRow>("SELECT * FROM outbox WHERE next_at <= ? ORDER BY id", now).toArray();
    const out: OutboxMessage[] = [];
    for (const r of rows) {
      if (this.sending.has(r.id) || this.sent.has(r.id)) continue;
      if (r.kind === hold) {
        this.mayHaveDue = true;
        continue;
      }
      this.sending.add(r.id);
      out.push({ id: r.id, kind: r.kind as OutboxKind, target: r.target, payload: JSON.parse(r.payload), tries: r.tries });
    }
    return out;
  }

  done(id: number): void {
    this.sending.delete(id);
    this.sent.add(id);
  }

  /**
   * These are no longer on their way (their send failed): each is taken again when it is due. Left
   * marked as on their way, they would never be sent again while this object lives.
   */
  settle(messages: readonly OutboxMessage[]): void {
    for (const m of messages) this.sending.delete(m.id);
  }

  /** The kinds of the messages added since they were last taken to be sent (none: nothing new to send). */
  addedKinds(): ReadonlySet<OutboxKind> {
    return this.fresh;
  }

  /** Whether any message is here, sent or not (as an object finds its outbox when it comes up). */
  holdsAny(): boolean {
    return this.sql.exec("SELECT 1 FROM outbox LIMIT 1").toArray().length > 0;
  }

  /** Something was sent and not yet deleted. */
  hasSent(): boolean {
    return this.sent.size > 0;
  }

  /** Nothing is on its way: every message taken has been sent or has failed. */
  isSettled(): boolean {
    return this.sending.size === 0;
  }

  /** Deletes what has been sent; called at the start of every write. */
  purge(): void {
    if (this.sent.size === 0) return;
    this.purging = [...this.sent];
    this.sql.exec("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", JSON.stringify(this.purging));
  }

  /** The write committed: what it deleted is gone. */
  committed(): void {
    for (const id of this.purging) this.sent.delete(id);
    this.purging = [];
  }

  /**
   * The write rolled back, and with it its deletes, inserts and retry times: the rows it purged are
   * still sent (not to be sent again), and a failure it recorded is to be taken again.
   */
  rolledBack(): void {
    this.purging = [];
    this.mayHaveDue = true;
  }

  /**
   * A send failed: try again later, backing off, or, past OUTBOX_MAX_TRIES, dead-letter it (call
   * inside a write, once `settle` has taken it off the wire, so the alarm is planned for it).
   * Returns the dead letter, if it became one.
   */
  failed(m: OutboxMessage, error: string, now: number): DeadLetter | null {
    if (m.tries + 1 >= OUTBOX_MAX_TRIES && !NEVER_GIVEN_UP.has(m.kind)) {
      const dead: DeadLetter = { kind: m.kind, target: m.target, payload: m.payload, tries: m.tries + 1, error, at: now };
      this.keepDeadLetter(dead);
      this.sql.exec("DELETE FROM outbox WHERE id = ?", m.id);
      return dead;
    }
    const delay = Math.min(OUTBOX_RETRY_BASE_MS * 2 ** m.tries, OUTBOX_RETRY_MAX_MS);
    this.sql.exec("UPDATE outbox SET tries = tries + 1, next_at = ? WHERE id = ?", now + delay, m.id);
    return null;
  }

  /** Keeps a dead letter: one of this outbox's, or a message to this run that another object could not deliver. */
  keepDeadLetter(dead: DeadLetter): void {
    this.sql.exec(
      "INSERT INTO dead_letters (kind, target, payload, tries, error, at) VALUES (?, ?, ?, ?, ?, ?)",
      dead.kind,
      dead.target,
      JSON.stringify(dead.payload),
      dead.tries,
      dead.error.slice(0, 4096),
      dead.at,
    );
  }

  deadLetters(): DeadLetter[] {
    return this.sql
      .exec<DeadLetterRow>("SELECT kind, target, payload, tries, error, at FROM dead_letters ORDER BY id")
      .toArray()
      .map((r) => ({ kind: r.kind as DeadLetter["kind"], target: r.target, payload: JSON.parse(r.payload), tries: r.tries, error: r.error, at: r.at }));
  }

  /**
   * When the alarm must come to send what is still here: a fresh message after its grace period
   * (it is normally sent long before), a failed one at its retry time. Null when nothing is left.
   * A message on its way is left to its send, which settles it; should the send hang, the alarm
   * looks again a grace period from now (not at its grace time, passed already, again and again).
   */
  alarmAt(now: number): number | null {
    const at =
      this.sql
        .exec<{ at: number | null }>(
          "SELECT MIN(CASE WHEN tries = 0 THEN next_at + ? ELSE next_at END) AS at FROM outbox WHERE id NOT IN (SELECT value FROM json_each(?))",
          OUTBOX_GRACE_MS,
          JSON.stringify([...this.sending]),
        )
        .toArray()[0]?.at ?? null;
    if (this.sending.size === 0) return at;
    return at === null ? now + OUTBOX_GRACE_MS : Math.min(at, now + OUTBOX_GRACE_MS);
  }
}
