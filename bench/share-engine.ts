/**
 * Shared-group engine micro-benchmark: records/s through acquire + ack on the
 * SharedGroupCoordinator, journal writes included (into memory: the cost measured is
 * the engine's, encoding and group commit included, not the disk's).
 *
 * Scenarios: N members on P partitions, each in a loop acquire(batch) then ack, with
 * one ack call per batch or one per record.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/share-engine.js [scenario label filter]
 */
import { SharedGroupCoordinator } from '../broker/groups/shared/shared-group-coordinator.js';
import type { JournalEntry, ShareStateJournal } from '../broker/groups/shared/share-state-journal.js';

const RUN_MS = 2000;
const only = process.argv[2];

/** Accepts appends as a compacted partition would, without keeping them. */
class CountingJournal implements ShareStateJournal {
  appends = 0;
  entries = 0;
  bytes = 0;
  append(entries: JournalEntry[]): Promise<void> {
    this.appends++;
    this.entries += entries.length;
    for (const e of entries) this.bytes += e.key.length + (e.value?.length ?? 0);
    return Promise.resolve();
  }
  load(): Iterable<JournalEntry> {
    return [];
  }
}

async function scenario(label: string, partitions: number, members: number, batch: number, ackEach: boolean): Promise<void> {
  if (only !== undefined && !label.includes(only)) return;
  const journal = new CountingJournal();
  const c = new SharedGroupCoordinator({ journal });
  await c.start();
  const parts = Array.from({ length: partitions }, (_, i) => c.partition('bench', 'queue', i));
  const logEndOffset = Number.MAX_SAFE_INTEGER - 1;
  let records = 0;
  const deadline = Date.now() + RUN_MS;
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const member = async (id: string, p: (typeof parts)[number]): Promise<void> => {
    const offsets: number[] = [];
    while (Date.now() < deadline) {
      const r = await p.acquire(id, batch, Date.now(), { lockTimeoutMs: 30_000, logEndOffset });
      offsets.length = 0;
      for (const x of r.acquired) for (let o = x.firstOffset; o <= x.lastOffset; o++) offsets.push(o);
      if (ackEach) await Promise.all(offsets.map((o) => p.ack(id, [o])));
      else await p.ack(id, offsets);
      records += offsets.length;
    }
  };
  await Promise.all(Array.from({ length: members }, (_, i) => member(`m${i}`, parts[i % partitions]!)));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  await c.close();
  const perSec = records / secs;
  console.log(
    `${label.padEnd(44)} ${(perSec / 1e6).toFixed(2).padStart(5)} M acquire+ack/s  ` +
      `cpu ${((cpu.user + cpu.system) / 1e6 / secs).toFixed(2)} cores  ` +
      `journal: ${(journal.appends / secs).toFixed(0)} appends/s, ${(journal.entries / records).toFixed(3)} entries and ${(journal.bytes / records).toFixed(1)} B per record`,
  );
}

console.log(`Node ${process.version}, ${RUN_MS} ms per scenario`);
await scenario('1 partition, 8 members, batch 100, one ack', 1, 8, 100, false);
await scenario('1 partition, 8 members, batch 500, one ack', 1, 8, 500, false);
await scenario('16 partitions, 32 members, batch 100, one ack', 16, 32, 100, false);
await scenario('1 partition, 8 members, batch 100, ack each', 1, 8, 100, true);
await scenario('1 partition, 64 members, batch 10, ack each', 1, 64, 10, true);
