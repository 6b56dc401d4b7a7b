// Network namespaces for integration tests: unique names per run, veth links
// with addresses from the benchmarking ranges (198.18.0.0/15, 2001:db8::/32),
// processes started inside them, and a cleanup that removes everything even
// when a test failed half-way.
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export function sh(cmd: string, args: string[], opts: { allowFail?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    if (opts.allowFail) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/** A child process whose stdout is JSON lines, with a way to wait for one. */
export class JsonLineProcess {
  readonly lines: unknown[] = [];
  readonly stderr: string[] = [];
  private waiters: Array<{ pred: (l: unknown) => boolean; resolve: (l: unknown) => void }> = [];
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line: unknown;
      try {
        line = JSON.parse(text);
      } catch {
        line = { text };
      }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(line)) return true;
        w.resolve(line);
        return false;
      });
    });
    child.stderr.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    // A command written while the process exits fails with EPIPE; the test
    // learns of the exit through `exited` and its waits, not through a crash
    // of the runner.
    child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  send(command: unknown): void {
    if (this.child.stdin.writable) this.child.stdin.write(`${JSON.stringify(command)}\n`);
  }

  waitFor<T = Record<string, unknown>>(
    pred: (l: T) => boolean,
    timeoutMs = 10_000,
    what = 'line',
  ): Promise<T> {
    const seen = this.lines.find((l) => pred(l as T));
    if (seen) return Promise.resolve(seen as T);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `timed out waiting for ${what}; stdout: ${JSON.stringify(this.lines)} stderr: ${this.stderr.join('')}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push({
        pred: (l) => pred(l as T),
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l as T);
        },
      });
    });
  }
}

export class Lab {
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcessWithoutNullStreams[] = [];
  private readonly tag: string;
  private links = 0;

  constructor(label: string) {
    // Short: interface names are limited to 15 characters.
    this.tag = `${label.slice(0, 4)}${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
  }

  /** Creates a namespace with loopback up; returns its full name. */
  netns(role: string): string {
    const name = `dn-${this.tag}-${role}`;
    sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth pair between two namespaces with the given addresses (CIDR). */
  link(a: string, aAddrs: string[], b: string, bAddrs: string[]): void {
    const n = this.links++;
    const va = `v${this.tag}${n}a`.slice(0, 15);
    const vb = `v${this.tag}${n}b`.slice(0, 15);
    sh('ip', ['link', 'add', va, 'netns', a, 'type', 'veth', 'peer', 'name', vb, 'netns', b]);
    for (const [ns, dev, addrs] of [
      [a, va, aAddrs],
      [b, vb, bAddrs],
    ] as const) {
      for (const addr of addrs) {
        sh('ip', ['-n', ns, 'addr', 'add', addr, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : [])]);
      }
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
  }

  exec(ns: string, cmd: string, args: string[], opts: { allowFail?: boolean } = {}): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** Runs `node script arg` inside a namespace, speaking JSON lines. */
  node(ns: string, script: string, arg: unknown): JsonLineProcess {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, JSON.stringify(arg)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.children.push(child);
    return new JsonLineProcess(child);
  }

  /** Kills what runs inside and deletes every namespace. Safe to call twice. */
  cleanup(): void {
    for (const c of this.children) {
      if (c.exitCode === null) c.kill('SIGKILL');
    }
    for (const ns of this.namespaces.splice(0)) {
      for (const pid of sh('ip', ['netns', 'pids', ns], { allowFail: true }).split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      sh('ip', ['netns', 'del', ns], { allowFail: true });
    }
  }
}
