import { execFile, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort } from './ports.js';

export { freePort };

/** The repository root, from testkit/ here or from dist/testkit/ when built (the benchmarks run the build). */
const root = ((): string => {
  const up = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  return path.basename(up) === 'dist' ? path.dirname(up) : up;
})();
const SETUP_HINT = 'run `bash scripts/setup-control-plane.sh`';
const run = promisify(execFile);

/** A binary of the test control plane. */
export type ControlPlaneBinary = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kubectl' | 'helm';

/** The pinned versions of scripts/control-plane/versions.env. */
export interface ControlPlaneVersions {
  kubernetes: string;
  etcd: string;
  helm: string;
}

export function controlPlaneVersions(): ControlPlaneVersions {
  const vars = new Map<string, string>();
  const text = fs.readFileSync(path.join(root, 'scripts', 'control-plane', 'versions.env'), 'utf8');
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (m) vars.set(m[1]!, m[2]!);
  }
  const get = (key: string): string => {
    const v = vars.get(key);
    if (v === undefined) throw new Error(`scripts/control-plane/versions.env has no ${key}`);
    return v;
  };
  return { kubernetes: get('KUBERNETES_VERSION'), etcd: get('ETCD_VERSION'), helm: get('HELM_VERSION') };
}

/** Where scripts/setup-control-plane.sh puts the binaries it builds. */
export function controlPlaneCacheDir(): string {
  return path.join(os.homedir(), '.cache', 'kmq', 'k8s', controlPlaneVersions().kubernetes, 'bin');
}

function pinnedVersion(name: ControlPlaneBinary): string {
  const v = controlPlaneVersions();
  if (name === 'etcd') return v.etcd;
  if (name === 'helm') return v.helm;
  return v.kubernetes;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The path of a control-plane binary: from KUBEBUILDER_ASSETS when it holds one,
 * else from the cache of scripts/setup-control-plane.sh, built at the pinned version.
 */
export function controlPlaneBinary(name: ControlPlaneBinary): string {
  const assets = process.env.KUBEBUILDER_ASSETS;
  if (assets && isExecutable(path.join(assets, name))) return path.join(assets, name);
  const file = path.join(controlPlaneCacheDir(), name);
  if (!isExecutable(file)) {
    throw new Error(`${name} is not in ${assets ? `KUBEBUILDER_ASSETS (${assets}) nor in ` : ''}${path.dirname(file)}: ${SETUP_HINT}`);
  }
  const built = fs.existsSync(`${file}.version`) ? fs.readFileSync(`${file}.version`, 'utf8').trim() : '(unknown)';
  if (built !== pinnedVersion(name)) {
    throw new Error(`${file} is ${built}, the pinned version is ${pinnedVersion(name)}: ${SETUP_HINT}`);
  }
  return file;
}

/** The version kube-apiserver reports: the pinned one, or that of the binary in KUBEBUILDER_ASSETS. */
export function kubernetesVersion(): string {
  const bin = controlPlaneBinary('kube-apiserver');
  if (bin.startsWith(controlPlaneCacheDir())) return controlPlaneVersions().kubernetes;
  const out = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout;
  const m = /Kubernetes (v\S+)/.exec(out);
  if (!m) throw new Error(`${bin} --version printed no version: ${out}`);
  return m[1]!;
}

const LOG_LINES = 200;

/** One control-plane process with the last lines of its output kept for error messages. */
class ControlPlaneProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(
    readonly name: string,
    readonly bin: string,
    readonly args: string[],
  ) {
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      // A binary that cannot be spawned emits 'error' and never 'exit'.
      this.child.once('error', (err) => {
        this.keep(String(err));
        resolve(null);
      });
    });
    this.child.stdout!.on('data', (chunk: Buffer) => this.keep(chunk.toString()));
    this.child.stderr!.on('data', (chunk: Buffer) => this.keep(chunk.toString()));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exitCode(): number | null {
    return this.child.exitCode;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  private keep(text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.lines.push(line);
    if (this.lines.length > LOG_LINES) this.lines.splice(0, this.lines.length - LOG_LINES);
  }

  tail(n = 30): string {
    return `--- last lines of ${this.name} ---\n${this.lines.slice(-n).join('\n')}`;
  }

  killNow(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return void (await this.exited);
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

// Processes of control planes not yet stopped, killed if the test process exits first.
const live = new Set<ControlPlaneProcess>();
process.once('exit', () => {
  for (const p of live) p.killNow();
});

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
}

/** Paths of the certificates and keys of one control plane (all PEM). */
interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

/** A CA, the apiserver's serving certificate for 127.0.0.1, an admin client certificate in group system:masters, and a service-account key. */
async function makePki(dir: string): Promise<Pki> {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=kmq-test-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = async (name: string, subject: string, ext: string): Promise<void> => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    await openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
  };
  await leaf('serving', '/CN=kube-apiserver', 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await leaf('admin', '/O=system:masters/CN=kmq-test-admin', 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  const sa = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'sec1', format: 'pem' },
  });
  fs.writeFileSync(path.join(dir, 'sa.key'), sa.privateKey, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'sa.pub'), sa.publicKey);
  const p = (f: string): string => path.join(dir, f);
  return {
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    servingCert: p('serving.crt'),
    servingKey: p('serving.key'),
    adminCert: p('admin.crt'),
    adminKey: p('admin.key'),
    serviceAccountKey: p('sa.key'),
    serviceAccountPub: p('sa.pub'),
  };
}

function kubeconfigYaml(server: string, pki: Pki): string {
  const b64 = (f: string): string => fs.readFileSync(f).toString('base64');
  // JSON is YAML; kubectl, helm and client-node all read it.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'kmq-test', cluster: { server, 'certificate-authority-data': b64(pki.caCert) } }],
      users: [{ name: 'kmq-test-admin', user: { 'client-certificate-data': b64(pki.adminCert), 'client-key-data': b64(pki.adminKey) } }],
      contexts: [{ name: 'kmq-test', context: { cluster: 'kmq-test', user: 'kmq-test-admin' } }],
      'current-context': 'kmq-test',
    },
    null,
    2,
  );
}

interface Probe {
  status: number;
  body: string;
}

function get(url: string, tls: https.RequestOptions): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...tls, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Polls `check` every 200 ms until it returns true; fails after `timeoutMs` or as soon as `proc` exits. */
async function waitUntil(what: string, proc: ControlPlaneProcess, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (!proc.running) throw new Error(`${proc.name} exited (code ${proc.exitCode}) before ${what}`);
    try {
      if (await check()) return;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s${last ? ` (last error: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Options of ControlPlane.start(). */
export interface ControlPlaneOptions {
  /**
   * Also run kube-controller-manager (default false): StatefulSets get Pods, the
   * garbage collector deletes dependents, namespaces are finalized, and every
   * namespace gets its `default` ServiceAccount. Without it, create that
   * ServiceAccount before creating Pods (the ServiceAccount admission plugin is on).
   */
  controllerManager?: boolean;
  /** How long to wait for each component to become ready (default 60 s). */
  readyTimeoutMs?: number;
}

/**
 * A real Kubernetes control plane on loopback ports: etcd, kube-apiserver (RBAC,
 * client-certificate authentication) and optionally kube-controller-manager, all
 * under one temp folder. There is no kubelet and no scheduler: Pods are objects
 * that never run. Binaries come from scripts/setup-control-plane.sh (or KUBEBUILDER_ASSETS).
 */
export class ControlPlane {
  /** The admin kubeconfig (a client certificate in group system:masters). */
  readonly kubeconfigPath: string;
  readonly kubeConfig: KubeConfig;

  private constructor(
    readonly dir: string,
    /** https://127.0.0.1:<port> */
    readonly server: string,
    private readonly processes: ControlPlaneProcess[],
  ) {
    this.kubeconfigPath = path.join(dir, 'kubeconfig');
    this.kubeConfig = new KubeConfig();
    this.kubeConfig.loadFromFile(this.kubeconfigPath);
  }

  /** Process ids of the running components, to check that stop() leaves none. */
  get pids(): number[] {
    return this.processes.map((p) => p.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** The last output lines of each component. */
  logs(): string {
    return this.processes.map((p) => p.tail()).join('\n');
  }

  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ControlPlane.startOnce(opts);
      } catch (err) {
        // A free port is found by binding and closing it; another process may take it in between.
        if (attempt === 3 || !/address already in use/.test(String(err))) throw err;
      }
    }
  }

  private static async startOnce(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const timeoutMs = opts.readyTimeoutMs ?? 60_000;
    const bins = {
      etcd: controlPlaneBinary('etcd'),
      apiserver: controlPlaneBinary('kube-apiserver'),
      controllerManager: opts.controllerManager ? controlPlaneBinary('kube-controller-manager') : undefined,
    };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-control-plane-'));
    const processes: ControlPlaneProcess[] = [];
    const launch = (name: string, bin: string, args: string[]): ControlPlaneProcess => {
      const p = new ControlPlaneProcess(name, bin, args);
      processes.push(p);
      live.add(p);
      return p;
    };
    try {
      const pki = await makePki(path.join(dir, 'pki'));

      const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
      const etcdUrl = `http://127.0.0.1:${etcdPort}`;
      const etcd = launch('etcd', bins.etcd, [
        '--name=kmq-test',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=kmq-test=http://127.0.0.1:${peerPort}`,
        // The data is thrown away after the test.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]);
      await waitUntil('etcd is healthy', etcd, timeoutMs, async () => {
        const res = await fetch(`${etcdUrl}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      });

      const server = `https://127.0.0.1:${apiPort}`;
      const apiserver = launch('kube-apiserver', bins.apiserver, [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${path.join(dir, 'apiserver')}`,
        `--tls-cert-file=${pki.servingCert}`,
        `--tls-private-key-file=${pki.servingKey}`,
        `--client-ca-file=${pki.caCert}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.serviceAccountPub}`,
        `--service-account-signing-key-file=${pki.serviceAccountKey}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        // No Pod runs here to reach the `kubernetes` Service, so its Endpoints are not kept.
        '--endpoint-reconciler-type=none',
      ]);
      const tls = { ca: fs.readFileSync(pki.caCert), cert: fs.readFileSync(pki.adminCert), key: fs.readFileSync(pki.adminKey) };
      await waitUntil('kube-apiserver is ready', apiserver, timeoutMs, async () => (await get(`${server}/readyz`, tls)).status === 200);
      await waitUntil('the default namespace exists', apiserver, timeoutMs, async () => (await get(`${server}/api/v1/namespaces/default`, tls)).status === 200);

      const kubeconfig = kubeconfigYaml(server, pki);
      fs.writeFileSync(path.join(dir, 'kubeconfig'), kubeconfig, { mode: 0o600 });

      if (bins.controllerManager) {
        const kcmPort = await freePort();
        const kubeconfigPath = path.join(dir, 'kubeconfig');
        const kcm = launch('kube-controller-manager', bins.controllerManager, [
          `--kubeconfig=${kubeconfigPath}`,
          `--authentication-kubeconfig=${kubeconfigPath}`,
          `--authorization-kubeconfig=${kubeconfigPath}`,
          // The apiserver has no front proxy, so there is no request-header CA to look up.
          '--authentication-skip-lookup',
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${kcmPort}`,
          `--cert-dir=${path.join(dir, 'controller-manager')}`,
          `--root-ca-file=${pki.caCert}`,
          `--service-account-private-key-file=${pki.serviceAccountKey}`,
          `--cluster-signing-cert-file=${pki.caCert}`,
          `--cluster-signing-key-file=${pki.caKey}`,
          '--service-cluster-ip-range=10.0.0.0/24',
          // Every default controller (namespace, garbage collector, statefulset, serviceaccount, ...); those
          // that need a cloud provider or node CIDRs stay off by themselves.
          '--controllers=*',
        ]);
        await waitUntil('kube-controller-manager is healthy', kcm, timeoutMs, async () => {
          const res = await get(`https://127.0.0.1:${kcmPort}/healthz`, { rejectUnauthorized: false });
          return res.status === 200;
        });
      }
      return new ControlPlane(dir, server, processes);
    } catch (err) {
      const logs = processes.map((p) => p.tail()).join('\n');
      await stopAll(processes);
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`The test control plane did not start: ${err instanceof Error ? err.message : String(err)}\n${logs}`, { cause: err });
    }
  }

  /** Stops kube-apiserver only (etcd keeps its data), for tests of clients riding out an API server outage. */
  async stopApiserver(): Promise<void> {
    await this.component('kube-apiserver').stop();
  }

  /** Starts a stopped kube-apiserver again with the same flags and port, and waits until it is ready. */
  async startApiserver(timeoutMs = 60_000): Promise<void> {
    const old = this.component('kube-apiserver');
    if (old.running) return;
    const p = new ControlPlaneProcess(old.name, old.bin, old.args);
    this.processes[this.processes.indexOf(old)] = p;
    live.delete(old);
    live.add(p);
    const pki = (f: string): Buffer => fs.readFileSync(path.join(this.dir, 'pki', f));
    const tls = { ca: pki('ca.crt'), cert: pki('admin.crt'), key: pki('admin.key') };
    await waitUntil('kube-apiserver is ready again', p, timeoutMs, async () => (await get(`${this.server}/readyz`, tls)).status === 200);
  }

  private component(name: string): ControlPlaneProcess {
    const p = this.processes.find((c) => c.name === name);
    if (!p) throw new Error(`The control plane has no ${name}`);
    return p;
  }

  /** Stops every component (the controller-manager and apiserver first, etcd last) and removes the temp folder. */
  async stop(): Promise<void> {
    await stopAll(this.processes);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function stopAll(processes: ControlPlaneProcess[]): Promise<void> {
  for (const p of [...processes].reverse()) {
    await p.stop();
    live.delete(p);
  }
}
