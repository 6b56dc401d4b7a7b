#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { generateKeyPair, publicKeyOf } from '../keys.js';
import { formatVersion, packageVersion, versionReport } from '../version.js';

function main(argv: string[]): void {
  const program = new Command('dnsnat')
    .description('Access private services by domain name through an encrypted tunnel and a NATing gateway.')
    .option('--json', 'print data as JSON')
    .version(packageVersion(), '-V, --version-short', 'print the package version only')
    .option('-v, --version', 'print the package and native build versions')
    .argument('[command]')
    .showHelpAfterError();

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
    .command('demo')
    .description('client, gateway and a resource in three network namespaces (needs root)')
    .action(() => {
      process.stderr.write('dnsnat demo: not yet implemented\n');
      process.exitCode = 2;
    });

  program.parse(argv);
}

main(process.argv);
