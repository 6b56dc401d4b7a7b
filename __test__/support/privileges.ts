// Gate for tests that need root, TUN devices or network namespaces.
//
// Outside CI such a test skips with a printed reason when the machine cannot
// run it. Under CI=true it must run: a missing privilege there is a failure,
// never a silent skip counted as a pass.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Capability {
  ok: boolean;
  reason: string;
}

function probeNetns(): Capability {
  if (process.platform !== 'linux') return { ok: false, reason: 'needs Linux' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (CAP_NET_ADMIN)' };
  if (!existsSync('/dev/net/tun')) return { ok: false, reason: '/dev/net/tun is missing' };
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: "the 'ip' command (iproute2) is missing or has no netns support" };
  }
  return { ok: true, reason: '' };
}

let cached: Capability | undefined;

/** Whether root, /dev/net/tun and `ip netns` are all available. */
export function netnsCapability(): Capability {
  cached ??= probeNetns();
  return cached;
}

/**
 * True when privileged tests should run. Prints why when they will not, and
 * throws under CI=true, where skipping is not allowed.
 */
export function canRunPrivileged(what: string): boolean {
  const cap = netnsCapability();
  if (cap.ok) return true;
  if (process.env.CI === 'true') {
    throw new Error(`${what}: cannot run under CI=true: ${cap.reason}`);
  }
  console.warn(`skipping ${what}: ${cap.reason}`);
  return false;
}
