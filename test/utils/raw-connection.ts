import net from 'node:net';
import { FrameReader, RESPONSE_PREFIX_BYTES, encodeRequest, parseResponseBody } from '../../protocol/frame.js';
import type { ResponseFrame } from '../../protocol/frame.js';

/**
 * A bare socket speaking the frame format, for tests that must send what a
 * well-behaved client never would (bad CRCs, unknown apis, garbage bytes).
 */
export class RawConnection {
  private readonly responses: ResponseFrame[] = [];
  private waiters: Array<() => void> = [];
  private correlation = 1;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    const reader = new FrameReader(RESPONSE_PREFIX_BYTES, 256 * 1024 * 1024, (body) => {
      this.responses.push(parseResponseBody(body));
      this.wake();
    }, () => socket.destroy());
    socket.on('data', (d: Buffer) => reader.push(d));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /** Sends one request frame and waits for its response (or the close of the socket). */
  async request(apiKey: number, header: Uint8Array, payload: Buffer[] = [], apiVersion = 0): Promise<ResponseFrame | undefined> {
    const id = this.correlation++;
    for (const b of encodeRequest(apiKey, apiVersion, id, header, payload)) this.socket.write(b);
    return this.next(id);
  }

  async next(id: number, timeoutMs = 10_000): Promise<ResponseFrame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.responses.findIndex((r) => r.correlationId === id);
      if (i >= 0) return this.responses.splice(i, 1)[0];
      if (this.closed) return undefined;
      if (Date.now() > deadline) throw new Error(`no response to ${id}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  /** Resolves once the broker has closed the socket. */
  waitClosed(timeoutMs = 5000): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(true);
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
