import type { WorkerRegistration, WorkflowDefinition } from "@spindle/worker-sdk/protocol";

/**
 * The registry's tables: workers (every worker the engine knows or has tried, with how it is
 * reached and whether it is usable), workflows (the current definition of each), and which worker
 * runs which workflow (several may share one whose definition is equal; one that differs is
 * refused for that workflow alone).
 */
export type WorkerStatus = "active" | "refused" | "unreachable";
export type Transport = "binding" | "https";

export interface WorkerRow extends Record<string, SqlStorageValue> {
  name: string;
  registration: string;
  blocked_reason: string | null;
  registered_at: number;
  transport: Transport;
  url: string | null;
  engine_url: string | null;
  status: WorkerStatus;
  reason: string | null;
  last_seen_at: number | null;
}

export interface WorkflowRow extends Record<string, SqlStorageValue> {
  name: string;
  worker: string;
  definition: string;
}

export interface ClaimRow extends Record<string, SqlStorageValue> {
  worker: string;
  workflow: string;
  status: "active" | "refused";
  reason: string | null;
}

export const REGISTRY_V2_SQL = [
  `ALTER TABLE workers ADD COLUMN transport TEXT NOT NULL DEFAULT 'binding' CHECK (transport IN ('binding', 'https'))`,
  `ALTER TABLE workers ADD COLUMN url TEXT`,
  `ALTER TABLE workers ADD COLUMN engine_url TEXT`,
  `ALTER TABLE workers ADD COLUMN status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'refused', 'unreachable'))`,
  `ALTER TABLE workers ADD COLUMN reason TEXT`,
  `ALTER TABLE workers ADD COLUMN last_seen_at INTEGER`,
  `UPDATE workers SET status = 'unreachable', reason = blocked_reason WHERE blocked_reason IS NOT NULL`,
  `CREATE TABLE worker_workflows (
    worker TEXT NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'refused')),
    reason TEXT,
    PRIMARY KEY (worker, workflow)
  )`,
  `INSERT INTO worker_workflows (worker, workflow, status) SELECT worker, name, 'active' FROM workflows`,
];

/**
 * Which workers take runs: active ones, and ones that answered before and failed since (a restart,
 * a redeploy: their runs queue and wait rather than fail). A refused worker, or one the engine has
 * never reached, takes none: a trigger says why (`unavailable`).
 */
const ROUTABLE = "(w.status = 'active' OR (w.status = 'unreachable' AND w.last_seen_at IS NOT NULL))";

export interface WorkerState {
  name: string;
  transport: Transport;
  url: string | null;
  engineUrl: string | null;
  status: WorkerStatus;
  reason: string | null;
  /** Null when the engine never learned what the worker declares (it could not describe it). */
  registration: WorkerRegistration | null;
}

export class RegistryStore {
  constructor(private readonly sql: SqlStorage) {}

  worker(name: string): WorkerRow | null {
    return this.sql.exec<WorkerRow>("SELECT * FROM workers WHERE name = ?", name).toArray()[0] ?? null;
  }

  workerByUrl(url: string): WorkerRow | null {
    return this.sql.exec<WorkerRow>("SELECT * FROM workers WHERE url = ?", url).toArray()[0] ?? null;
  }

  workers(): WorkerRow[] {
    return this.sql.exec<WorkerRow>("SELECT * FROM workers ORDER BY name").toArray();
  }

  httpsWorkers(): WorkerRow[] {
    return this.sql.exec<WorkerRow>("SELECT * FROM workers WHERE transport = 'https'").toArray();
  }

  claims(worker: string): ClaimRow[] {
    return this.sql.exec<ClaimRow>("SELECT * FROM worker_workflows WHERE worker = ? ORDER BY workflow", worker).toArray();
  }

  workflow(name: string): { definition: WorkflowDefinition; definer: string; workers: string[] } | null {
    const row = this.sql.exec<WorkflowRow>("SELECT * FROM workflows WHERE name = ?", name).toArray()[0];
    if (!row) return null;
    const workers = this.sql
      .exec<{ worker: string }>(
        `SELECT c.worker FROM worker_workflows c JOIN workers w ON w.name = c.worker
         WHERE c.workflow = ? AND c.status = 'active' AND ${ROUTABLE} ORDER BY c.worker`,
        name,
      )
      .toArray()
      .map((r) => r.worker);
    return { definition: JSON.parse(row.definition) as WorkflowDefinition, definer: row.worker, workers };
  }

  workflows(): (WorkflowDefinition & { worker: string })[] {
    return this.sql
      .exec<WorkflowRow>("SELECT * FROM workflows ORDER BY name")
      .toArray()
      .map((r) => ({ ...(JSON.parse(r.definition) as WorkflowDefinition), worker: r.worker }));
  }

  /**
   * Why a workflow that some worker declares cannot run now: its workers are refused or
   * unreachable, or its definition was refused. Null when no worker declares it.
   */
  unavailable(name: string): string | null {
    const reasons: string[] = [];
    for (const w of this.workers()) {
      const registration = JSON.parse(w.registration) as WorkerRegistration | null;
      const claim = this.sql.exec<ClaimRow>("SELECT * FROM worker_workflows WHERE worker = ? AND workflow = ?", w.name, name).toArray()[0];
      const declares = claim !== undefined || (registration?.workflows ?? []).some((wf) => wf.name === name);
      if (!declares) continue;
      if (w.status === "refused" || (w.status === "unreachable" && w.last_seen_at === null)) {
        reasons.push(`worker '${w.name}' is ${w.status}: ${w.reason ?? "no reason recorded"}`);
      }
      else if (claim?.status === "refused") reasons.push(`worker '${w.name}': ${claim.reason ?? "refused"}`);
    }
    return reasons.length ? `workflow '${name}' cannot run: ${reasons.join("; ")}` : null;
  }

  /** Records a worker the engine tried and could not use, keeping what it knew of it. */
  recordFailure(state: Omit<WorkerState, "registration"> & { registration?: WorkerRegistration | null }, now: number): void {
    const existing = this.worker(state.name);
    const registration = state.registration !== undefined ? state.registration : existing ? (JSON.parse(existing.registration) as WorkerRegistration | null) : null;
    this.upsertWorker({ ...state, registration }, now, existing?.last_seen_at ?? null);
    if (state.status !== "active") this.refreshNotes(this.claims(state.name).map((c) => c.workflow));
  }

  /**
   * Records a worker that described itself. Each workflow is claimed on its own: a workflow no
   * other active worker runs takes this definition; one that others run is shared when the
   * definitions are equal and refused for this worker (with the reason on both sides) when not.
   */
  applyRegistration(state: WorkerState & { registration: WorkerRegistration }, now: number): { accepted: string[]; refused: { workflow: string; reason: string }[] } {
    const accepted: string[] = [];
    const refused: { workflow: string; reason: string }[] = [];
    const touched = new Set<string>(this.claims(state.name).map((c) => c.workflow));
    this.upsertWorker(state, now, state.status === "active" ? now : (this.worker(state.name)?.last_seen_at ?? null));
    const declared = new Set(state.registration.workflows.map((w) => w.name));
    for (const c of this.claims(state.name)) {
      if (!declared.has(c.workflow)) this.sql.exec("DELETE FROM worker_workflows WHERE worker = ? AND workflow = ?", state.name, c.workflow);
    }
    for (const wf of state.registration.workflows) {
      touched.add(wf.name);
      const definition = JSON.stringify(wf);
      const others = this.differingOwners(state.name, wf);
      if (others.length > 0) {
        const reason = `its definition of '${wf.name}' differs from the one registered by worker ${others.map((o) => `'${o}'`).join(", ")}`;
        this.claim(state.name, wf.name, "refused", reason);
        refused.push({ workflow: wf.name, reason });
        continue;
      }
      this.sql.exec(
        `INSERT INTO workflows (name, worker, definition, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET worker = excluded.worker, definition = excluded.definition, updated_at = excluded.updated_at
         WHERE workflows.definition != excluded.definition`,
        wf.name,
        state.name,
        definition,
        now,
      );
      this.claim(state.name, wf.name, "active", null);
      accepted.push(wf.name);
    }
    this.refreshNotes([...touched]);
    return { accepted, refused };
  }

  /**
   * The other active workers of a workflow, when its current definition differs from `wf` (the
   * worker would be refused for it); empty when it would take or share it.
   */
  differingOwners(worker: string, wf: WorkflowDefinition): string[] {
    const current = this.sql.exec<WorkflowRow>("SELECT * FROM workflows WHERE name = ?", wf.name).toArray()[0];
    if (!current || current.definition === JSON.stringify(wf)) return [];
    return this.sql
      .exec<{ worker: string }>(
        "SELECT worker FROM worker_workflows WHERE workflow = ? AND status = 'active' AND worker != ? ORDER BY worker",
        wf.name,
        worker,
      )
      .toArray()
      .map((r) => r.worker);
  }

  private claim(worker: string, workflow: string, status: ClaimRow["status"], reason: string | null): void {
    this.sql.exec(
      `INSERT INTO worker_workflows (worker, workflow, status, reason) VALUES (?, ?, ?, ?)
       ON CONFLICT (worker, workflow) DO UPDATE SET status = excluded.status, reason = excluded.reason`,
      worker,
      workflow,
      status,
      reason,
    );
  }

  /** An active claim notes the workers refused for the same workflow, so both entries say why. */
  private refreshNotes(workflows: string[]): void {
    for (const workflow of workflows) {
      const refused = this.sql
        .exec<{ worker: string }>("SELECT worker FROM worker_workflows WHERE workflow = ? AND status = 'refused' ORDER BY worker", workflow)
        .toArray()
        .map((r) => r.worker);
      const note = refused.length
        ? `worker ${refused.map((r) => `'${r}'`).join(", ")} declare${refused.length === 1 ? "s" : ""} a different definition of '${workflow}' and ${refused.length === 1 ? "was" : "were"} refused for it`
        : null;
      this.sql.exec("UPDATE worker_workflows SET reason = ? WHERE workflow = ? AND status = 'active'", note, workflow);
    }
  }

  private upsertWorker(state: WorkerState, now: number, lastSeenAt: number | null): void {
    this.sql.exec(
      `INSERT INTO workers (name, registration, hash, blocked_reason, registered_at, transport, url, engine_url, status, reason, last_seen_at)
       VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET registration = excluded.registration, blocked_reason = excluded.blocked_reason,
         registered_at = excluded.registered_at, transport = excluded.transport, url = excluded.url, engine_url = excluded.engine_url,
         status = excluded.status, reason = excluded.reason, last_seen_at = excluded.last_seen_at`,
      state.name,
      JSON.stringify(state.registration),
      state.status === "active" ? null : state.reason,
      now,
      state.transport,
      state.url,
      state.engineUrl,
      state.status,
      state.reason,
      lastSeenAt,
    );
  }
}
