// dnsnat's tunnel is plain WireGuard: a standard peer (wireguard-go configured
// with wg(8)) completes a handshake with it and carries traffic both ways,
// control packets included. Needs root and wireguard-go/wireguard-tools.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';

const fixture = join(__dirname, '..', 'fixtures', 'tunnel-node.cjs');

function haveWireguardGo(): boolean {
  const ok = !spawnSync('wireguard-go', ['--version']).error && !spawnSync('wg', ['--version']).error;
  if (!ok && process.env.CI === 'true') throw new Error('wireguard-go and wg must be installed under CI');
  if (!ok) console.warn('skipping WireGuard interop: wireguard-go or wg missing');
  return ok;
}

const run = canRunPrivileged('WireGuard interop tests') && haveWireguardGo();

describe.runIf(run)('interop with wireguard-go', () => {
  const lab = new Lab('wgi');
  let a: string;
  let b: string;
  let pa: JsonLineProcess;
  const ours = native.generateKeypair();
  const theirs = native.generateKeypair();
  let keyFile = '';

  beforeAll(async () => {
    a = lab.netns('a');
    b = lab.netns('b');
    lab.link(a, ['198.18.1.1/24'], b, ['198.18.1.2/24']);
    // wireguard-go refuses to run on Linux unless told the kernel module is not an option.
    const env = { ...process.env, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' };
    const wg = spawnSync('ip', ['netns', 'exec', b, 'wireguard-go', 'wgo0'], { env, encoding: 'utf8' });
    expect(wg.status, wg.stderr).toBe(0);
    keyFile = join(tmpdir(), `dnsnat-wgi-${process.pid}.key`);
    writeFileSync(keyFile, `${theirs.privateKey}\n`, { mode: 0o600 });
    lab.exec(b, 'wg', [
      'set',
      'wgo0',
      'private-key',
      keyFile,
      'listen-port',
      '51820',
      'peer',
      ours.publicKey,
      'allowed-ips',
      '100.64.0.1/32,::/128',
    ]);
    lab.exec(b, 'ip', ['addr', 'add', '100.64.0.2/32', 'dev', 'wgo0']);
    lab.exec(b, 'ip', ['link', 'set', 'wgo0', 'up']);
    lab.exec(b, 'ip', ['route', 'add', '100.64.0.1/32', 'dev', 'wgo0']);
    pa = lab.node(a, fixture, {
      tunnel: {
        name: 'dnsnat-a',
        privateKey: ours.privateKey,
        ipv4: '100.64.0.1',
        routes: ['100.64.0.2/32'],
      },
      peers: [{ publicKey: theirs.publicKey, endpoint: '198.18.1.2:51820', allowedIps: ['100.64.0.2/32'] }],
    });
    await pa.waitFor((l) => l.ready === true, 10_000, 'dnsnat tunnel ready');
  });

  afterAll(() => {
    lab.cleanup();
    if (keyFile) rmSync(keyFile, { force: true });
  });

  it('pings through a handshake with wireguard-go, both directions', () => {
    expect(lab.exec(a, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', '100.64.0.2'])).toMatch(/3 received/);
    expect(lab.exec(b, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', '100.64.0.1'])).toMatch(/2 received/);
  });

  it('wg(8) sees the handshake and the transferred bytes', () => {
    const dump = lab.exec(b, 'wg', ['show', 'wgo0', 'dump']);
    const peerLine = dump.split('\n').find((l) => l.startsWith(ours.publicKey));
    expect(peerLine).toBeDefined();
    const fields = (peerLine as string).split('\t');
    expect(Number(fields[4])).toBeGreaterThan(0); // latest handshake, seconds since epoch
    expect(Number(fields[5])).toBeGreaterThan(0); // bytes received from us
    expect(fields[2]).toMatch(/^198\.18\.1\.1:\d+$/); // our endpoint, learned by roaming
  });
});
