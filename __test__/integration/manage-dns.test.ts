// `manageDns`: the client points resolv.conf at its stub and restores it on
// exit; after a crash (SIGKILL) the next start takes the original from the
// state file, never the stub's own address, and restores it on its exit.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';
import { fixtures } from '../support/topology.js';

const run = canRunPrivileged('manageDns tests');
const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const ORIGINAL = "# the machine's own\nnameserver 198.18.0.1\nsearch corp.example\n";

describe.runIf(run)('client manageDns', () => {
  const lab = new Lab('mdns');
  let c = '';
  let dir = '';
  let resolvConf = '';

  const start = () =>
    lab.node(c, join(fixtures, 'daemon.cjs'), { args: ['client', '-c', join(dir, 'client.yaml')] });
  async function ready(p: JsonLineProcess): Promise<number> {
    const { pid } = await p.waitFor<{ pid?: number }>((l) => typeof l.pid === 'number');
    for (let i = 0; i < 100; i++) {
      try {
        lab.exec(c, process.execPath, [cli, 'status', '--socket', join(dir, 'client.sock')]);
        return pid as number;
      } catch {
        await sleep(100);
      }
    }
    throw new Error(`client did not start: ${JSON.stringify(p.lines)}`);
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-mdns-'));
    c = lab.netns('c');
    lab.link(c, ['198.18.0.2/24'], lab.netns('g'), ['198.18.0.1/24']);
    // `ip netns exec` bind-mounts this file over /etc/resolv.conf in the namespace.
    mkdirSync(join('/etc/netns', c), { recursive: true });
    resolvConf = join('/etc/netns', c, 'resolv.conf');
    writeFileSync(resolvConf, ORIGINAL);
    const k = native.generateKeypair();
    writeFileSync(
      join(dir, 'client.yaml'),
      [
        `privateKey: ${k.privateKey}`,
        'tunnel: { ipv4: 100.64.0.2 }',
        'manageDns: true',
        `stateFile: ${join(dir, 'state.json')}`,
        `statusSocket: ${join(dir, 'client.sock')}`,
        'gateways:',
        `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${native.generateKeypair().publicKey} }`,
        'resources:',
        '  - { id: web, pattern: "*.corp.example", gateway: gw1 }',
        '',
      ].join('\n'),
    );
  });

  afterAll(() => {
    lab.cleanup();
    if (c) rmSync(join('/etc/netns', c), { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('points resolv.conf at the stub while running and restores it on SIGTERM', async () => {
    const p = start();
    await ready(p);
    const managed = readFileSync(resolvConf, 'utf8');
    expect(managed).toContain('nameserver 100.100.111.1');
    expect(managed).toContain('search corp.example');
    expect(managed).not.toContain('198.18.0.1');
    p.child.kill('SIGTERM');
    await p.waitFor((l) => l.exited !== undefined, 10_000, 'client exit');
    expect(readFileSync(resolvConf, 'utf8')).toBe(ORIGINAL);
  });

  it('after a crash, the next start keeps the real upstream and restores the original on exit', async () => {
    const first = start();
    const pid = await ready(first);
    process.kill(pid, 'SIGKILL');
    await first.waitFor((l) => l.exited !== undefined, 10_000, 'client killed');
    // The crash left resolv.conf pointing at the stub.
    expect(readFileSync(resolvConf, 'utf8')).toContain('nameserver 100.100.111.1');
    const second = start();
    await ready(second);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    expect(state.upstreamDns).toEqual(['198.18.0.1']);
    expect(state.resolvConfBackup).toBe(ORIGINAL);
    second.child.kill('SIGTERM');
    await second.waitFor((l) => l.exited !== undefined, 10_000, 'client exit');
    expect(readFileSync(resolvConf, 'utf8')).toBe(ORIGINAL);
  });
});
