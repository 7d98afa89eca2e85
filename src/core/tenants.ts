import { sha256Hex } from "./ids";

/**
 * Tenants come from tokens. `SPINDLE_API_TOKEN` is the token of the tenant `default`;
 * `SPINDLE_TENANTS` (JSON, `{"acme": "<token>", ...}`) adds more. Tokens are compared by their
 * SHA-256, so a lookup is a map access and never a string comparison that leaks timing.
 */
export interface TenantSource {
  SPINDLE_API_TOKEN?: string;
  SPINDLE_TENANTS?: string;
}

const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

let cached: { key: string; byHash: Promise<Map<string, string>> } | null = null;

function tenantsByHash(env: TenantSource): Promise<Map<string, string>> {
  const key = `${env.SPINDLE_API_TOKEN ?? ""}\u0000${env.SPINDLE_TENANTS ?? ""}`;
  if (cached?.key === key) return cached.byHash;
  const byHash = (async () => {
    const entries: [string, string][] = [];
    if (env.SPINDLE_API_TOKEN) entries.push(["default", env.SPINDLE_API_TOKEN]);
    if (env.SPINDLE_TENANTS) {
      const parsed = JSON.parse(env.SPINDLE_TENANTS) as Record<string, unknown>;
      for (const [tenant, token] of Object.entries(parsed)) {
        if (!TENANT_NAME.test(tenant)) throw new Error(`SPINDLE_TENANTS: invalid tenant name '${tenant}'`);
        if (typeof token !== "string" || token.length < 16) {
          throw new Error(`SPINDLE_TENANTS: the token of '${tenant}' must be a string of 16 or more characters`);
        }
        entries.push([tenant, token]);
      }
    }
    const map = new Map<string, string>();
    for (const [tenant, token] of entries) map.set(await sha256Hex(token), tenant);
    return map;
  })();
  cached = { key, byHash };
  return byHash;
}

/** Tokens already seen by this isolate (every RPC carries one: hashing each time is waste). */
const known = new Map<string, string | null>();
const MAX_KNOWN_TOKENS = 1_000;

export async function tenantForToken(env: TenantSource, token: string): Promise<string | null> {
  if (!token) return null;
  const key = `${env.SPINDLE_API_TOKEN ?? ""}\u0000${env.SPINDLE_TENANTS ?? ""}\u0000${token}`;
  const cachedTenant = known.get(key);
  if (cachedTenant !== undefined) return cachedTenant;
  const tenant = await tenantForTokenHash(env, await sha256Hex(token));
  if (known.size >= MAX_KNOWN_TOKENS) known.clear();
  known.set(key, tenant);
  return tenant;
}

export async function tenantForTokenHash(env: TenantSource, hash: string): Promise<string | null> {
  return (await tenantsByHash(env)).get(hash) ?? null;
}

/** Whether a tenant of this name exists (a webhook delivery names its tenant in the path). */
export async function knownTenant(env: TenantSource, tenant: string): Promise<boolean> {
  return [...(await tenantsByHash(env)).values()].includes(tenant);
}

/** The token of a tenant: what its HTTPS workers' signing key derives from. */
export function tokenOfTenant(env: TenantSource, tenant: string): string | null {
  if (tenant === "default") return env.SPINDLE_API_TOKEN ?? null;
  if (!env.SPINDLE_TENANTS) return null;
  const token = (JSON.parse(env.SPINDLE_TENANTS) as Record<string, unknown>)[tenant];
  return typeof token === "string" ? token : null;
}
