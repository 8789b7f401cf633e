import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, KmqError } from '../../lib/errors.js';
import type {
  CoordinationLease,
  CoordinationStore,
  DeleteOptions,
  GrantLeaseOptions,
  PutOptions,
  StopWatch,
  VersionedEntry,
  VersionedValue,
  WatchEvent,
  WriteResult,
} from './coordination-store.js';
import { MemoryCoordinationStore } from './memory-coordination-store.js';
import type { DurableState } from './memory-coordination-store.js';

/**
 * The `local` coordination store (DESIGN.md §4): a single node's, in one file.
 * The semantics are the memory store's (one process holds every key, lease and
 * watch); keys not bound to a lease and the version counter are written to the
 * file (temp file, fdatasync, rename) before a change is answered, so they and
 * growing versions survive a restart. Leases, and the keys bound to them, end
 * with the process, as an expired lease would. A file that does not parse stops
 * the open with StorageError: it is never silently replaced.
 */
export class LocalCoordinationStore implements CoordinationStore {
  private constructor(
    private readonly memory: MemoryCoordinationStore,
    readonly file: string,
  ) {}

  static open(file: string): LocalCoordinationStore {
    const initial = readState(file);
    const holder: { store?: LocalCoordinationStore } = {};
    const memory = new MemoryCoordinationStore({ initial, onChange: () => holder.store?.persist() });
    holder.store = new LocalCoordinationStore(memory, file);
    return holder.store;
  }

  get(key: string): Promise<VersionedValue | undefined> {
    return this.memory.get(key);
  }

  put(key: string, value: string, options?: PutOptions): Promise<WriteResult> {
    return this.memory.put(key, value, options);
  }

  delete(key: string, options?: DeleteOptions): Promise<WriteResult> {
    return this.memory.delete(key, options);
  }

  list(prefix: string): Promise<VersionedEntry[]> {
    return this.memory.list(prefix);
  }

  grantLease(ttlMs: number, options?: GrantLeaseOptions): Promise<CoordinationLease> {
    return this.memory.grantLease(ttlMs, options);
  }

  watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StopWatch> {
    return this.memory.watch(prefix, onEvent);
  }

  close(): Promise<void> {
    return this.memory.close();
  }

  private persist(): void {
    const tmp = `${this.file}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      const fd = fs.openSync(tmp, 'w');
      try {
        fs.writeSync(fd, JSON.stringify(this.memory.durableState()));
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
    } catch (err) {
      throw new KmqError(ErrorCode.StorageError, `Cannot write the coordination store ${this.file}: ${(err as Error).message}`, { path: this.file }, { cause: err });
    }
  }
}

function readState(file: string): DurableState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KmqError(ErrorCode.StorageError, `Cannot read the coordination store ${file}: ${(err as Error).message}`, { path: file }, { cause: err });
  }
  const bad = (why: string): KmqError => new KmqError(ErrorCode.StorageError, `The coordination store ${file} is damaged: ${why}`, { path: file });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw bad((err as Error).message);
  }
  const state = parsed as Partial<DurableState>;
  if (typeof state !== 'object' || state === null || !Number.isSafeInteger(state.revision) || !Array.isArray(state.entries)) throw bad('expected {revision, entries}');
  for (const e of state.entries) {
    if (typeof e?.key !== 'string' || typeof e.value !== 'string' || !Number.isSafeInteger(e.version) || e.version > state.revision!) throw bad(`bad entry ${JSON.stringify(e)}`);
  }
  return state as DurableState;
}
