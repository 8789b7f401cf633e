/**
 * Samples a process's resident memory (VmRSS of /proc/PID/status) every
 * `intervalMs`, and reads its CPU time (utime + stime of /proc/PID/stat) on
 * demand. Linux only; elsewhere every figure stays 0.
 */
import fs from 'node:fs';

// USER_HZ: 100 on every Linux architecture Node supports.
const TICK_MS = 10;

export class ProcSampler {
  /** Peak RSS since start, bytes. */
  peakRss = 0;
  /** Peak RSS since the last takePhasePeak(), bytes. */
  private phasePeak = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly pid: number,
    private readonly intervalMs = 200,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Peak RSS of the phase that just ended, bytes; starts a new phase. */
  takePhasePeak(): number {
    this.sample();
    const p = this.phasePeak;
    this.phasePeak = 0;
    return p;
  }

  /** CPU time the process has used so far (user + system), ms. */
  cpuMs(): number {
    try {
      const stat = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      // Fields after the command name, which may hold spaces, closed by the last ')'.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) * TICK_MS;
    } catch {
      return 0;
    }
  }

  /** Machine-wide CPU time so far from /proc/stat, ms summed over all CPUs: busy (not idle, not iowait) and iowait. */
  static machineCpuMs(): { busyMs: number; iowaitMs: number } {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
      // user nice system idle iowait irq softirq steal (guest time is inside user).
      const [user = 0, nice = 0, system = 0, , iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
      return { busyMs: (user + nice + system + irq + softirq + steal) * TICK_MS, iowaitMs: iowait * TICK_MS };
    } catch {
      return { busyMs: 0, iowaitMs: 0 };
    }
  }

  private sample(): void {
    let rss = 0;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      if (m !== null) rss = Number(m[1]) * 1024;
    } catch {
      return;
    }
    if (rss > this.peakRss) this.peakRss = rss;
    if (rss > this.phasePeak) this.phasePeak = rss;
  }
}
