import type { SignatureConfig } from "../core/webhook-signature";

export interface WebhookConfig {
  name: string;
  eventKey: string;
  secret: string;
  signature: SignatureConfig;
}

interface WebhookRow extends Record<string, SqlStorageValue> {
  name: string;
  event_key: string;
  secret: string;
  signature: string;
  updated_at: number;
}

/** A tenant's webhook receivers. The secret is kept to verify deliveries and never shown. */
export class WebhookStore {
  constructor(private readonly sql: SqlStorage) {}

  put(config: WebhookConfig, now: number): void {
    this.sql.exec(
      `INSERT INTO webhooks (name, event_key, secret, signature, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET event_key = excluded.event_key, secret = excluded.secret,
         signature = excluded.signature, updated_at = excluded.updated_at`,
      config.name,
      config.eventKey,
      config.secret,
      JSON.stringify(config.signature),
      now,
    );
  }

  get(name: string): WebhookConfig | null {
    const r = this.sql.exec<WebhookRow>("SELECT * FROM webhooks WHERE name = ?", name).toArray()[0];
    return r ? { name: r.name, eventKey: r.event_key, secret: r.secret, signature: JSON.parse(r.signature) as SignatureConfig } : null;
  }

  delete(name: string): boolean {
    return this.sql.exec("DELETE FROM webhooks WHERE name = ?", name).rowsWritten > 0;
  }

  list(): Omit<WebhookConfig, "secret">[] {
    return this.sql
      .exec<WebhookRow>("SELECT * FROM webhooks ORDER BY name")
      .toArray()
      .map((r) => ({ name: r.name, eventKey: r.event_key, signature: JSON.parse(r.signature) as SignatureConfig }));
  }
}
