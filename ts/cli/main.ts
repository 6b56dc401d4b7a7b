#!/usr/bin/env node
import { Command } from 'commander';
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
    .command('demo')
    .description('client, gateway and a resource in three network namespaces (needs root)')
    .action(() => {
      process.stderr.write('dnsnat demo: not yet implemented\n');
      process.exitCode = 2;
    });

  program.parse(argv);
}

main(process.argv);
