import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { AppsV1Api, AuthorizationV1Api, CoreV1Api, VersionApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlane, controlPlaneBinary, controlPlaneCacheDir, controlPlaneVersions, kubernetesVersion } from '../utils/control-plane.js';

// The test control plane itself: a real etcd, kube-apiserver and kube-controller-manager
// built by scripts/setup-control-plane.sh, reached with the admin kubeconfig.

const run = promisify(execFile);
const ns = `cp-test-${process.pid}`;
let cp: ControlPlane | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s\n${cp?.logs() ?? ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: true });
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

describe('test control plane', () => {
  it('serves the pinned Kubernetes version', async () => {
    const version = await cp!.kubeConfig.makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe(kubernetesVersion());
    if (!process.env.KUBEBUILDER_ASSETS) expect(version.gitVersion).toBe(controlPlaneVersions().kubernetes);
    expect(`v${version.major}.${version.minor}`).toBe(/^v\d+\.\d+/.exec(version.gitVersion)![0]);
  });

  it('stores objects: a namespace and a ConfigMap', async () => {
    const core = cp!.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'settings' }, data: { greeting: 'hello' } } });
    const read = await core.readNamespacedConfigMap({ namespace: ns, name: 'settings' });
    expect(read.data).toEqual({ greeting: 'hello' });
    expect(read.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('authorizes with RBAC: the admin is allowed, a user without bindings is not', async () => {
    const authz = cp!.kubeConfig.makeApiClient(AuthorizationV1Api);
    const review = (user: string, groups: string[]) =>
      authz.createSubjectAccessReview({
        body: { spec: { user, groups, resourceAttributes: { namespace: ns, verb: 'get', resource: 'configmaps' } } },
      });
    expect((await review('kmq-test-admin', ['system:masters'])).status?.allowed).toBe(true);
    expect((await review('nobody', ['system:authenticated'])).status?.allowed).toBe(false);
  });

  it('runs controllers: a StatefulSet gets its Pod, and deleting it garbage-collects the Pod', async () => {
    const apps = cp!.kubeConfig.makeApiClient(AppsV1Api);
    const core = cp!.kubeConfig.makeApiClient(CoreV1Api);
    const labels = { app: 'web' };
    const sts = await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 1,
          serviceName: 'web',
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: 'web', image: 'registry.invalid/web:1' }] } },
        },
      },
    });
    // The serviceaccount controller creates `default`, then the statefulset controller creates web-0.
    const pod = await eventually('Pod web-0 is created', 30_000, async () => {
      const pods = await core.listNamespacedPod({ namespace: ns });
      return pods.items.find((p) => p.metadata?.name === 'web-0');
    });
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'StatefulSet', name: 'web', uid: sts.metadata?.uid });
    expect(pod.spec?.nodeName).toBeUndefined();

    await apps.deleteNamespacedStatefulSet({ namespace: ns, name: 'web', propagationPolicy: 'Background' });
    await eventually('Pod web-0 is garbage-collected', 30_000, async () => {
      const pods = await core.listNamespacedPod({ namespace: ns });
      return pods.items.length === 0 ? true : undefined;
    });
  });

  it('has helm at the pinned version, and helm reaches the apiserver', async () => {
    const helm = controlPlaneBinary('helm');
    const env = { ...process.env, HELM_CACHE_HOME: `${cp!.dir}/helm/cache`, HELM_CONFIG_HOME: `${cp!.dir}/helm/config`, HELM_DATA_HOME: `${cp!.dir}/helm/data` };
    const { stdout: version } = await run(helm, ['version', '--short'], { env });
    expect(version.trim()).toMatch(new RegExp(`^${controlPlaneVersions().helm.replaceAll('.', '\\.')}(\\+|$)`));
    const { stdout: list } = await run(helm, ['list', '--all-namespaces', '--kubeconfig', cp!.kubeconfigPath], { env });
    expect(list).toMatch(/^NAME\s+NAMESPACE/);
  });

  it('has kubectl at the same version, and a server-side dry run creates nothing', async () => {
    const kubectl = controlPlaneBinary('kubectl');
    const { stdout: version } = await run(kubectl, ['version', '-o', 'json', '--kubeconfig', cp!.kubeconfigPath]);
    const v = JSON.parse(version) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    if (kubectl.startsWith(controlPlaneCacheDir())) expect(v.clientVersion.gitVersion).toBe(controlPlaneVersions().kubernetes);
    expect(v.serverVersion.gitVersion).toBe(kubernetesVersion());

    const manifest = path.join(cp!.dir, 'dry-run.yaml');
    fs.writeFileSync(manifest, `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry, namespace: ${ns}}\ndata: {a: "1"}\n`);
    const { stdout: applied } = await run(kubectl, ['apply', '--dry-run=server', '-f', manifest, '--kubeconfig', cp!.kubeconfigPath]);
    expect(applied.trim()).toBe('configmap/dry created (server dry run)');
    const core = cp!.kubeConfig.makeApiClient(CoreV1Api);
    const names = (await core.listNamespacedConfigMap({ namespace: ns })).items.map((c) => c.metadata?.name);
    expect(names).toContain('settings');
    expect(names).not.toContain('dry');
  });

  it('finalizes a deleted namespace: the namespace controller empties and removes it', async () => {
    const core = cp!.kubeConfig.makeApiClient(CoreV1Api);
    await core.deleteNamespace({ name: ns });
    await eventually(`namespace ${ns} is gone`, 30_000, async () => {
      const all = await core.listNamespace();
      return all.items.some((n) => n.metadata?.name === ns) ? undefined : true;
    });
  });

  it('stops every process and removes its folder', async () => {
    const { pids, dir } = cp!;
    expect(pids).toHaveLength(3);
    expect(pids.every(alive)).toBe(true);
    await cp!.stop();
    cp = undefined;
    expect(pids.filter(alive)).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describe('control-plane binaries', () => {
  it('name the setup script when one is missing', async () => {
    const saved = { home: process.env.HOME, assets: process.env.KUBEBUILDER_ASSETS };
    process.env.HOME = '/nonexistent';
    delete process.env.KUBEBUILDER_ASSETS;
    try {
      expect(() => controlPlaneBinary('kube-apiserver')).toThrow(/kube-apiserver is not in .*run `bash scripts\/setup-control-plane\.sh`/);
    } finally {
      process.env.HOME = saved.home;
      if (saved.assets !== undefined) process.env.KUBEBUILDER_ASSETS = saved.assets;
    }
  });
});
