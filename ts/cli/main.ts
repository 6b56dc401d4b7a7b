#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { startClient } from '../client/client.js';
import { DEFAULT_CLIENT_STATUS_SOCKET } from '../client/config.js';
import { ConfigError } from '../config/fields.js';
import { readStatus, serveStatus } from '../daemon/status.js';
import { runDemo } from '../demo/demo.js';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { generateKeyPair, publicKeyOf } from '../keys.js';
import { formatVersion, packageVersion, versionReport } from '../version.js';

/** Runs a daemon until SIGINT/SIGTERM; config errors exit 2 with their message, other failures 1. */
async function runDaemon(role: string, start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  let daemon: { stop(): Promise<void> };
  try {
    daemon = await start();
  } catch (e) {
    const config = e instanceof ConfigError;
    process.stderr.write(
      `dnsnat ${role}: ${config ? 'invalid configuration:\n' : ''}${(e as Error).message}\n`,
    );
    process.exit(config ? 2 : 1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    daemon
      .stop()
      .then(() => process.exit(signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : 1))
      .catch((e: unknown) => {
        process.stderr.write(`dnsnat ${role}: stopping failed: ${(e as Error).message}\n`);
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A crash of the JS side still restores what the daemon changed (resolv.conf).
  process.on('uncaughtException', (e) => {
    process.stderr.write(`dnsnat ${role}: ${e.stack ?? e.message}\n`);
    stop('crash');
  });
}

const DEFAULT_GATEWAY_STATUS_SOCKET = '/run/dnsnat/gateway.sock';

/** The gateway's `dnsnat status --json` document. */
function gatewayStatus(gateway: Gateway): unknown {
  const counters: Record<string, number> = {};
  for (const line of gateway.metrics().split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) ([-+0-9.eE]+|NaN)$/.exec(line);
    if (m?.[1] && m[2]) counters[m[1]] = Number(m[2]);
  }
  return {
    role: 'gateway',
    publicKey: gateway.publicKey,
    mappings: gateway.snapshot().map((b) => ({
      clientId: b.client,
      domain: b.domain,
      resourceId: b.resource,
      status: b.status ?? 'resolving',
      proxyIps: b.mappings.map((m) => m.proxyIp),
      realIps: b.mappings.flatMap((m) => (m.realIp ? [m.realIp] : [])),
    })),
    counters,
  };
}

function formatStatus(status: unknown): string {
  const s = status as {
    role?: string;
    domains?: Array<{
      domain: string;
      gatewayId: string;
      resourceId: string;
      state: string;
      sends: number;
      failureReason?: string;
      failureDetail?: string;
    }>;
    mappings?: unknown[];
    peers?: Array<{ publicKey: string; endpoint?: string; up: boolean }>;
    counters?: Record<string, number>;
  };
  const lines = [`role: ${s.role ?? '?'}`];
  for (const p of s.peers ?? [])
    lines.push(`peer ${p.publicKey} ${p.up ? 'up' : 'down'} ${p.endpoint ?? ''}`.trimEnd());
  if (s.domains) {
    lines.push(`domains: ${s.domains.length}`);
    for (const d of s.domains) {
      const why = [d.failureReason, d.failureDetail].filter(Boolean).join(': ');
      lines.push(
        `  ${d.domain.padEnd(40)} ${d.state.padEnd(10)} ${d.resourceId}@${d.gatewayId} sends=${d.sends}${why ? ` (${why})` : ''}`,
      );
    }
  }
  if (s.mappings) {
    lines.push(`mappings: ${s.mappings.length}`);
    for (const m of s.mappings as Array<{
      clientId: string;
      domain: string;
      status: string;
      realIps: string[];
    }>) {
      lines.push(
        `  ${m.domain.padEnd(40)} ${m.status.padEnd(10)} ${m.clientId} -> ${m.realIps.join(' ') || '-'}`,
      );
    }
  }
  const nonzero = Object.entries(s.counters ?? {}).filter(([, v]) => v !== 0);
  if (nonzero.length > 0) lines.push(`counters: ${nonzero.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

function main(argv: string[]): void {
  const program = new Command('dnsnat')
    .description('Access private services by domain name through an encrypted tunnel and a NATing gateway.')
    .option('--json', 'print data as JSON')
    .version(packageVersion(), '-V, --version-short', 'print the package version only')
    .option('-v, --version', 'print the package and native build versions')
    .argument('[command]')
    .usage('[options] [command]')
    .showHelpAfterError('(add --help for usage)');

  program.action((command: string | undefined) => {
    if (command !== undefined) {
      program.error(`error: unknown command '${command}'`);
    }
    const opts = program.opts<{ json?: boolean; version?: boolean }>();
    if (opts.version) {
      const report = versionReport();
      process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : `${formatVersion(report)}\n`);
      return;
    }
    program.help();
  });

  program
    .command('keygen')
    .description('print a new WireGuard private key (like `wg genkey`); --json adds the public key')
    .action(() => {
      const pair = generateKeyPair();
      const json = program.opts<{ json?: boolean }>().json;
      process.stdout.write(json ? `${JSON.stringify(pair)}\n` : `${pair.privateKey}\n`);
    });

  program
    .command('pubkey')
    .description('read a private key on stdin and print its public key (like `wg pubkey`)')
    .action(() => {
      const input = readFileSync(0, 'utf8');
      try {
        process.stdout.write(`${publicKeyOf(input.trim())}\n`);
      } catch (e) {
        program.error(`error: stdin: ${(e as Error).message}`, { exitCode: 1 });
      }
    });

  program
    .command('client')
    .description('run the client: stub DNS, tunnel to the gateways, per-domain NAT setup (needs root)')
    .requiredOption('-c, --config <file>', 'client.yaml')
    .action(async (opts: { config: string }) => {
      await runDaemon('client', async () => {
        const client = await startClient(opts.config);
        const onHup = () => client.reload();
        process.on('SIGHUP', onHup);
        return {
          async stop() {
            process.off('SIGHUP', onHup);
            await client.stop();
          },
        };
      });
    });

  program
    .command('gateway')
    .description('run the gateway: validate, resolve in the background, NAT (needs root)')
    .requiredOption('-c, --config <file>', 'gateway.yaml')
    .option('-s, --status-socket <path>', 'where `dnsnat status` reaches it', DEFAULT_GATEWAY_STATUS_SOCKET)
    .action(async (opts: { config: string; statusSocket: string }) => {
      await runDaemon('gateway', async () => {
        const gateway = await startGateway(opts.config);
        try {
          const server = await serveStatus(opts.statusSocket, () => gatewayStatus(gateway));
          return {
            async stop() {
              server.close();
              await gateway.stop();
            },
          };
        } catch (e) {
          await gateway.stop();
          throw e;
        }
      });
    });

  program
    .command('status')
    .description('show the running daemon: domains and their states, peers, counters')
    .option('-s, --socket <path>', 'status socket of the daemon', DEFAULT_CLIENT_STATUS_SOCKET)
    .action(async (opts: { socket: string }) => {
      try {
        const status = await readStatus(opts.socket);
        const json = program.opts<{ json?: boolean }>().json;
        process.stdout.write(json ? `${JSON.stringify(status)}\n` : formatStatus(status));
      } catch (e) {
        program.error(`error: ${(e as Error).message}`, { exitCode: 3 });
      }
    });

  program
    .command('demo')
    .description('client, gateway and a resource in three network namespaces (needs root)')
    .action(async () => {
      try {
        process.exitCode = await runDemo();
      } catch (e) {
        program.error(`dnsnat demo: ${(e as Error).message}`, { exitCode: 1 });
      }
    });

  program.parseAsync(argv).catch((e: unknown) => {
    process.stderr.write(`dnsnat: ${(e as Error).message}\n`);
    process.exit(1);
  });
}

main(process.argv);
