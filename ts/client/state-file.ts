// The client's state file: the proxy-IP table (so restarts never renumber),
// the upstream resolvers seen before `manageDns` replaced resolv.conf (so a
// crash never leaves the client forwarding to itself), and the original
// resolv.conf to restore.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeAtomically } from './resolv-conf.js';

export interface ClientState {
  version: 1;
  proxyIpTable?: string;
  upstreamDns?: string[];
  resolvConfBackup?: string;
}

export function readState(path: string | undefined): ClientState {
  if (!path) return { version: 1 };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { version: 1 };
  }
  try {
    const v = JSON.parse(text) as Partial<ClientState>;
    if (v.version !== 1) throw new Error(`version: expected 1, got ${JSON.stringify(v.version)}`);
    return v as ClientState;
  } catch (e) {
    throw new Error(`${path}: not a dnsnat client state file: ${(e as Error).message}`);
  }
}

export function writeState(path: string | undefined, state: ClientState): void {
  if (!path) return;
  mkdirSync(dirname(path), { recursive: true });
  writeAtomically(path, `${JSON.stringify(state, null, 2)}\n`);
}
