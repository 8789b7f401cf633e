import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessGroup, freePort, portOpen, waitReady } from './peer-process.js';

/** Running or sleeping: a zombie (killed, not yet reaped by whoever inherited it) counts as ended. */
const alive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

describe('ProcessGroup', () => {
  const dirs: string[] = [];
  const groups: ProcessGroup[] = [];
  afterEach(async () => {
    for (const g of groups.splice(0)) g.kill('SIGKILL');
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const tmp = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-peer-test-'));
    dirs.push(d);
    return d;
  };

  it('stops the whole tree, children that ignore SIGTERM included', async () => {
    const dir = tmp();
    // A leader with two children; one ignores SIGTERM, so only the SIGKILL after the grace period ends it.
    const g = ProcessGroup.spawn('tree', 'bash', ['-c', "sleep 60 & bash -c 'trap \"\" TERM; sleep 60' & wait"], path.join(dir, 'log'));
    groups.push(g);
    await waitReady(g, 5000, async () => g.pids().length >= 3);
    const pids = g.pids();
    await g.stop(300);
    await new Promise((r) => setTimeout(r, 100));
    expect(pids.filter(alive)).toEqual([]);
    expect(g.running).toBe(false);
  });

  it('names the last output when the process exits before it is ready', async () => {
    const dir = tmp();
    const g = ProcessGroup.spawn('failing', 'bash', ['-c', 'echo "bad setting: x"; exit 3'], path.join(dir, 'log'));
    groups.push(g);
    await expect(waitReady(g, 5000, async () => false)).rejects.toThrow(/failing exited during start \(code 3\):\nbad setting: x/);
    expect(fs.readFileSync(path.join(dir, 'log'), 'utf8')).toBe('bad setting: x\n');
  });

  it('finds a free port that nothing listens on', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(await portOpen(port)).toBe(false);
  });
});
