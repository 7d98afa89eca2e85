/** @jsxImportSource hono/jsx */
import type { WorkerInfo } from "../registry/registry";
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

export function WorkersPage(props: { tenant: string; workers: WorkerInfo[] }) {
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
              {props.workers.map((w) => (
                <tr>
                  <td>
                    <strong>{w.name}</strong>
                    <div class="muted">
                      registered {shortTime(w.registeredAt)}
                      {w.lastSeenAt ? `, last seen ${shortTime(w.lastSeenAt)}` : ""}
                    </div>
                  </td>
                  <td>
                    {w.transport === "https" ? "HTTPS" : "service binding"}
                    <div class="muted">{w.url ?? w.binding ?? ""}</div>
                  </td>
                  <td>
                    <span class={`status s-${w.status === "active" ? "COMPLETED" : "FAILED"}`}>{w.status.toUpperCase()}</span>
                    {w.reason ? <div>{w.reason}</div> : null}
                  </td>
                  <td>
                    <ul>
                      <li>
                        regular: {w.slotsInUse.regular} / {w.slots}
                      </li>
                      <li>
                        durable: {w.slotsInUse.durable} / {w.durableSlots}
                      </li>
                    </ul>
                  </td>
                  <td>
                    <ul>
                      {w.workflows.map((wf) => (
                        <li>
                          {wf.name}
                          {wf.status === "refused" ? (
                            <>
                              {" "}
                              <span class="status s-FAILED">REFUSED</span> {wf.reason ?? ""}
                            </>
                          ) : null}
                        </li>
                      ))}
                    </ul>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Layout>
  );
}

const shortTime = (iso: string) => iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
