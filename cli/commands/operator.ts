import type { Command } from 'commander';

/**
 * `kmq operator [flags]`: the Kubernetes operator (operator/main.ts parses and checks its
 * own flags; `kmq operator --help` lists them). Loaded only when run, so other commands do
 * not pay for the Kubernetes client at start-up.
 */
export function registerOperatorCommand(program: Command): void {
  program
    .command('operator')
    .description('run the kmq operator: reconcilers with leader election, health and metrics, the sidecar-injection webhook (kmq operator --help)')
    .helpOption(false)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .argument('[flags...]')
    .action(async (flags: string[]) => {
      const { operatorMain } = await import('../../operator/main.js');
      process.exit(await operatorMain(flags));
    });
}
