import { describe, expect, it } from 'vitest';
import { runCli } from '../utils/cli.js';

// `kmq operator` is how the chart and the image start the operator.
describe('kmq operator', () => {
  it('prints its flags with --help and exits 0', async () => {
    const r = await runCli(['operator', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: kmq operator [options]');
    expect(r.stdout).toContain('--broker-address-override');
  });

  it('refuses an unknown flag or a bad value with exit 2, naming it', async () => {
    const unknown = await runCli(['operator', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown option '--bogus'");
    const bad = await runCli(['operator', '--health-port=70000', '--leader-elect=false', '--no-webhook']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('health-port');
  });
});
