import fs from 'node:fs';
import { ErrorCode, KmqError } from '../../lib/errors.js';

/**
 * The one file-system boundary of broker storage. Every other storage file does
 * I/O only through a FileIo, so every failure surfaces the same way: a
 * KmqError(StorageError) whose message names the operation and the path, with
 * the fs error as `cause`.
 *
 * Appends and reads are synchronous: they are page-cache copies, and doing them
 * inline keeps the order of writes equal to the order of calls without any
 * queueing. `fdatasync` is asynchronous (it runs on a libuv thread), so a flush
 * never blocks the event loop.
 *
 * Concurrency: stateless; callable from anywhere. A caller must not close an fd
 * while an fdatasync on it is in flight.
 *
 * Tests inject a subclass to make chosen operations fail.
 */
export class FileIo {
  /** Opens (creating if absent) for reading and writing; returns the fd. */
  open(path: string): number {
    try {
      return fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    } catch (err) {
      throw storageError('open', path, err);
    }
  }

  close(fd: number, path: string): void {
    try {
      fs.closeSync(fd);
    } catch (err) {
      throw storageError('close', path, err);
    }
  }

  /** Writes all of `data[start, end)` at `position`. */
  write(fd: number, path: string, data: Buffer, position: number, start = 0, end = data.length): void {
    try {
      let at = start;
      let pos = position;
      while (at < end) {
        const n = fs.writeSync(fd, data, at, end - at, pos);
        at += n;
        pos += n;
      }
    } catch (err) {
      throw storageError('write', path, err);
    }
  }

  /** Reads up to `length` bytes at `position` into `into[offset..]`; returns the bytes read (short only at end of file). */
  read(fd: number, path: string, into: Buffer, offset: number, length: number, position: number): number {
    try {
      let got = 0;
      while (got < length) {
        const n = fs.readSync(fd, into, offset + got, length - got, position + got);
        if (n === 0) break;
        got += n;
      }
      return got;
    } catch (err) {
      throw storageError('read', path, err);
    }
  }

  fdatasync(fd: number, path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.fdatasync(fd, (err) => {
        if (err === null) resolve();
        else reject(storageError('fdatasync', path, err));
      });
    });
  }

  truncate(fd: number, path: string, length: number): void {
    try {
      fs.ftruncateSync(fd, length);
    } catch (err) {
      throw storageError('truncate', path, err);
    }
  }

  size(fd: number, path: string): number {
    try {
      return fs.fstatSync(fd).size;
    } catch (err) {
      throw storageError('stat', path, err);
    }
  }

  /** Size of the file at `path`, or -1 when it does not exist. */
  sizeOf(path: string): number {
    try {
      const st = fs.statSync(path, { throwIfNoEntry: false });
      return st === undefined ? -1 : st.size;
    } catch (err) {
      throw storageError('stat', path, err);
    }
  }

  readFile(path: string): Buffer {
    try {
      return fs.readFileSync(path);
    } catch (err) {
      throw storageError('read', path, err);
    }
  }

  /** Replaces the file's contents (not atomic: used only for derived files such as indexes). */
  writeFile(path: string, data: Buffer): void {
    try {
      fs.writeFileSync(path, data);
    } catch (err) {
      throw storageError('write', path, err);
    }
  }

  rename(from: string, to: string): void {
    try {
      fs.renameSync(from, to);
    } catch (err) {
      throw storageError('rename', `${from} -> ${to}`, err);
    }
  }

  /** Removes a file; a file that is already gone is not an error. */
  unlink(path: string): void {
    try {
      fs.rmSync(path, { force: true });
    } catch (err) {
      throw storageError('unlink', path, err);
    }
  }

  readdir(dir: string): string[] {
    try {
      return fs.readdirSync(dir);
    } catch (err) {
      throw storageError('readdir', dir, err);
    }
  }

  mkdir(dir: string): void {
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw storageError('mkdir', dir, err);
    }
  }

  /** Removes a directory and everything in it. */
  removeDir(dir: string): void {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      throw storageError('rmdir', dir, err);
    }
  }

  /** fsyncs a directory so renames and creations in it are durable. */
  async syncDir(dir: string): Promise<void> {
    let fd: number;
    try {
      fd = fs.openSync(dir, fs.constants.O_RDONLY);
    } catch (err) {
      throw storageError('open', dir, err);
    }
    try {
      await new Promise<void>((resolve, reject) => {
        fs.fsync(fd, (err) => (err === null ? resolve() : reject(storageError('fsync', dir, err))));
      });
    } finally {
      this.close(fd, dir);
    }
  }
}

function storageError(operation: string, path: string, err: unknown): KmqError {
  const reason = err instanceof Error ? err.message : String(err);
  return new KmqError(ErrorCode.StorageError, `Storage ${operation} failed on ${path}: ${reason}`, { path, operation }, { cause: err });
}
