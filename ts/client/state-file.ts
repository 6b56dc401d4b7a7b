// The client's state file: the proxy-IP table (so restarts never renumber)
// and the upstream resolvers seen before `manageDns` replaced resolv.conf (so a
// crash never leaves the client forwarding to itself).
//
// It is read once at start and must never stop the client: a file that is not
// a state file is moved aside (kept for a person to look at) and the client
// starts fresh, saying so. Writes are atomic and private (0600).
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileSafely } from '../common/safe-write.js';

/** What the client's state file holds between runs. */
export interface SavedState {
  version: 1;
  /** The proxy-IP table as the addon exports it (JSON text). */
  proxyIpTable?: string;
  upstreamDns?: string[];
}

/** A state file's text is not a state file. */
export class StateFileError extends Error {
  override readonly name = 'StateFileError';
}

/** Reads a state file's text; anything else throws `StateFileError` naming `source` and the field. */
export function parseState(text: string, source: string): SavedState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new StateFileError(`${source}: not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new StateFileError(`${source}: expected a JSON object`);
  }
  const o = v as Record<string, unknown>;
  if (o.version !== 1) {
    throw new StateFileError(`${source}: version: expected 1, got ${JSON.stringify(o.version) ?? 'nothing'}`);
  }
  const state: SavedState = { version: 1 };
  if (o.proxyIpTable !== undefined) {
    if (typeof o.proxyIpTable !== 'string') {
      throw new StateFileError(`${source}: proxyIpTable: expected a string`);
    }
    state.proxyIpTable = o.proxyIpTable;
  }
  if (o.upstreamDns !== undefined) {
    if (!Array.isArray(o.upstreamDns) || !o.upstreamDns.every((s) => typeof s === 'string')) {
      throw new StateFileError(`${source}: upstreamDns: expected a list of strings`);
    }
    state.upstreamDns = o.upstreamDns as string[];
  }
  return state;
}

export interface LoadedState {
  state: SavedState;
  /**
   * The original resolv.conf that versions before the backup record kept in the state file: what a
   * `manageDns` client upgraded after a crash restores, if resolv.conf still holds what dnsnat wrote.
   */
  legacyResolvConf?: string;
  /** Set when the file was not a state file: why, and where it was moved. */
  corrupt?: { problem: string; movedTo: string };
}

/** The state at `path`: fresh when there is none, fresh (with the old file moved aside) when it is corrupt. */
export function loadState(path: string | undefined, now: Date = new Date()): LoadedState {
  if (!path) return { state: { version: 1 } };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: { version: 1 } };
    throw new Error(`${path}: cannot read the state file: ${(e as Error).message}`);
  }
  try {
    const state = parseState(text, path);
    const legacy = (JSON.parse(text) as { resolvConfBackup?: unknown }).resolvConfBackup;
    return typeof legacy === 'string' ? { state, legacyResolvConf: legacy } : { state };
  } catch (e) {
    if (!(e instanceof StateFileError)) throw e;
    const movedTo = `${path}.corrupt-${now.toISOString().replace(/[:.]/g, '-')}`;
    renameSync(path, movedTo);
    return { state: { version: 1 }, corrupt: { problem: e.message, movedTo } };
  }
}

export function writeState(path: string | undefined, state: SavedState): void {
  if (!path) return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSafely(path, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}
