// `sudo npx dnsnat demo`, as a user runs it: every step shown, exit 0, and
// nothing left behind — after a full run and after Ctrl-C. Root.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canRunPrivileged } from '../support/privileges.js';

const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const run = canRunPrivileged('demo tests');

function leftovers(pid: number): string[] {
  const tag = `d${pid.toString(36)}-`;
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith(tag));
  const etc = ['client', 'gateway', 'site'].map((r) => join('/etc/netns', `${tag}${r}`)).filter(existsSync);
  return [...ns, ...etc];
}

function collect(child: ChildProcess): { out: () => string; exit: Promise<number | null> } {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return { out: () => out, exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

describe.runIf(run)('dnsnat demo', () => {
  it('shows a name resolving to proxy IPs, HTTP and ping through the tunnel, a failed name, and the state table', async () => {
    const child = spawn(process.execPath, [cli, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const { out, exit } = collect(child);
    expect(await exit).toBe(0);
    const text = out();
    expect(text).toMatch(/DNS {2}app\.corp\.example -> 100\.96\.\d+\.\d+ /);
    expect(text).toMatch(/HTTP http:\/\/app\.corp\.example\/ -> 200 hello from the site service/);
    expect(text).toMatch(/ping app\.corp\.example through the NAT: 2 packets transmitted, 2 received/);
    expect(text).toMatch(/empty\.corp\.example\s+failed/);
    expect(text).toMatch(/wiki\.corp\.example\s+confirmed/);
    expect(leftovers(child.pid as number)).toEqual([]);
  }, 90_000);

  it('cleans up everything on Ctrl-C', async () => {
    const child = spawn(process.execPath, [cli, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const { out, exit } = collect(child);
    const deadline = Date.now() + 30_000;
    while (!out().includes('3. gateway and client daemons running') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(leftovers(child.pid as number).length).toBeGreaterThan(0);
    child.kill('SIGINT');
    expect(await exit).toBe(130);
    expect(out()).toContain('interrupted: cleaning up');
    expect(leftovers(child.pid as number)).toEqual([]);
  }, 90_000);
});
