/** @jsxImportSource hono/jsx */
import type { WorkerInfo } from "../registry/registry";
import type { TaskQueueStats } from "../scheduler/task-queue";
import { Layout } from "./layout";

export function SignInPage(props: { error?: string }) {
  return (
    <Layout title="Sign in" page="sign-in">
      <form class="signin" method="post" action="/sign-in">
        <h1>Sign in to Spindle</h1>
        <p class="muted">Use your tenant's API token: the one you send as the bearer token to the API.</p>
        {props.error && (
          <p class="error-box" role="alert" id="sign-in-error">
            {props.error}
          </p>
        )}
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required aria-describedby={props.error ? "sign-in-error" : undefined} />
        <button type="submit">Sign in</button>
      </form>
    </Layout>
  );
}

export function NotFoundPage(props: { tenant: string; what: string }) {
  return (
    <Layout title="Not found" page="not-found" tenant={props.tenant}>
      <h1>Not found</h1>
      <p>{props.what}</p>
      <p>
        <a href="/">← Runs</a>
      </p>
    </Layout>
  );
}

export interface WorkerRow {
  worker: WorkerInfo;
  pools: { pool: string; stats: TaskQueueStats | null; slots: number }[];
}

export function WorkersPage(props: { tenant: string; workers: WorkerRow[] }) {
  return (
    <Layout title="Workers" page="workers" tenant={props.tenant}>
      <h1>Workers</h1>
      {props.workers.length === 0 ? (
        <p class="muted">No worker has registered yet.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Worker</th>
                <th scope="col">Transport</th>
                <th scope="col">Status</th>
                <th scope="col">Slots in use</th>
                <th scope="col">Workflows</th>
              </tr>
            </thead>
            <tbody>
              {props.workers.map(({ worker: w, pools }) => (
                <tr>
                  <td>
                    <strong>{w.name}</strong>
                    <div class="muted">registered {w.registeredAt.replace("T", " ").replace(/\.\d+Z$/, "Z")}</div>
                  </td>
                  <td>{w.binding ? `service binding ${w.binding}` : "HTTPS push"}</td>
                  <td>
                    {w.blockedReason ? (
                      <>
                        <span class="status s-FAILED">BLOCKED</span> {w.blockedReason}
                      </>
                    ) : (
                      <span class="status s-COMPLETED">READY</span>
                    )}
                  </td>
                  <td>
                    <ul>
                      {pools.map((p) => (
                        <li>
                          {p.pool}: {p.stats?.inFlight ?? 0} / {p.slots}
                          {p.stats && p.stats.ready > 0 ? ` (${p.stats.ready} waiting)` : ""}
                          {p.stats?.blockedReason ? ` — ${p.stats.blockedReason}` : ""}
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td>{w.workflows.join(", ")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="muted">Flow control (rate limits, concurrency keys) and triggers (crons, schedules) get their pages when those features land.</p>
    </Layout>
  );
}
