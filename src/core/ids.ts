/**
 * Run ids are ULIDs: 48 bits of milliseconds then 80 bits of entropy, Crockford base32, so they sort
 * by creation time. Child runs take their entropy from a hash of their parent link, so a duplicate
 * dispatch of one parent attempt derives the same child ids.
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

function encodeTime(ms: number): string {
  let out = "";
  let rest = Math.floor(ms);
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[rest % 32] + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

function encodeEntropy(bytes: Uint8Array): string {
  // 80 bits → 16 base32 characters.
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes.subarray(0, 10)) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

export function ulid(nowMs: number, entropy: Uint8Array = crypto.getRandomValues(new Uint8Array(10))): string {
  return encodeTime(nowMs) + encodeEntropy(entropy);
}

export async function deterministicUlid(nowMs: number, seed: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(seed)));
  return ulid(nowMs, digest);
}

const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;
export function isUlid(value: string): boolean {
  return ULID_PATTERN.test(value);
}

/** The creation time encoded in a ULID. */
export function ulidTime(id: string): number {
  let ms = 0;
  for (const ch of id.slice(0, 10)) ms = ms * 32 + ALPHABET.indexOf(ch);
  return ms;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A small stable hash for sharding (FNV-1a, 32 bits). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
