/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import type { RunStatus, TaskStatus } from "@spindle/worker-sdk/protocol";

export type Page = "runs" | "run" | "workers" | "sign-in" | "not-found";

/** The page shell: navigation, sign-out, the live region's status line, the script. */
export function Layout(props: { title: string; page: Page; tenant?: string; data?: Record<string, string>; children: Child }) {
  const data = Object.fromEntries(Object.entries(props.data ?? {}).map(([k, v]) => [`data-${k}`, v]));
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Spindle`}</title>
        <link rel="stylesheet" href="/assets/app.css" />
      </head>
      <body data-page={props.page} {...data}>
        <header class="top">
          <a class="brand" href="/">Spindle</a>
          {props.tenant !== undefined && (
            <>
              <nav aria-label="Main">
                <a href="/" aria-current={props.page === "runs" ? "page" : undefined}>Runs</a>
                <a href="/workers" aria-current={props.page === "workers" ? "page" : undefined}>Workers</a>
              </nav>
              <span class="muted">
                tenant <strong>{props.tenant}</strong>
              </span>
              <form method="post" action="/sign-out">
                <button type="submit">Sign out</button>
              </form>
            </>
          )}
        </header>
        <main>
          {props.children}
          <p id="status-message" role="status" aria-live="polite" class="muted"></p>
        </main>
        <script src="/assets/app.js" defer></script>
      </body>
    </html>
  );
}

/** A status shown as text and colour, never colour alone. */
export function Status(props: { status: RunStatus | TaskStatus; evicted?: boolean | undefined }) {
  return (
    <span class={`status s-${props.status}`}>
      {props.status}
      {props.evicted ? " (waiting)" : ""}
    </span>
  );
}

export function Json(props: { value: unknown; label: string }) {
  return <pre aria-label={props.label}>{JSON.stringify(props.value, null, 2)}</pre>;
}

export function time(iso: string | null | undefined): string {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—";
}

export function duration(from: string | null | undefined, to: string | null | undefined, now = Date.now()): string {
  if (!from) return "—";
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  const text = ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 3_600_000 ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s` : `${(ms / 3_600_000).toFixed(1)} h`;
  return to ? text : `${text} so far`;
}
