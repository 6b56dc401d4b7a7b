import native, { type KeyPair } from './native.js';

export type { KeyPair };

/** A new WireGuard key pair, base64 (the same format as `wg genkey` / `wg pubkey`). */
export function generateKeyPair(): KeyPair {
  return native.generateKeypair();
}

/** The public key of a base64 WireGuard private key; throws with code `InvalidArg` if malformed. */
export function publicKeyOf(privateKey: string): string {
  return native.publicKeyOf(privateKey);
}
