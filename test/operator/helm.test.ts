import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdmissionregistrationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMap, isScalar, parseAllDocuments, parseDocument } from 'yaml';
import type { YAMLMap } from 'yaml';
import { KUBERNETES_COORDINATION_STORE_RBAC_RULES } from '../../broker/cluster/kubernetes-coordination-store.js';
import type { BrokerCluster } from '../../operator/api/v1alpha1/index.js';
import { buildBrokerClusterObjects } from '../../operator/builders/broker-cluster.js';
import { FIELD_MANAGER } from '../../operator/builders/meta.js';
import { buildRole } from '../../operator/builders/role.js';
import { apiLeaseStore } from '../../operator/runtime/leader-election.js';
import { compileWebhookTlsOptions, ensureWebhookCertificates, patchCaBundle } from '../../operator/webhook/certificates.js';
import { ControlPlane, controlPlaneBinary } from '../utils/control-plane.js';

// The Helm chart charts/kmq with a real helm and a real kube-apiserver: lint,
// template, server-side dry-run apply, the values schema, RBAC without wildcards,
// Pod Security `restricted` enforced by the API server, and an install.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHART = path.join(root, 'charts', 'kmq');
const RELEASE = 'kmq';
// The release namespace enforces (and warns about) Pod Security restricted.
const NS = `kmq-helm-${process.pid}`;
const APP_NS = `kmq-helm-app-${process.pid}`;
/** The Secret the operator keeps its webhook certificates in (it creates it; the chart does not). */
const WEBHOOK_SECRET = 'kmq-webhook-tls';

let cp: ControlPlane | undefined;
let helmHome: string | undefined;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
};

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

interface Container {
  name: string;
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { path: string; port: string } };
  readinessProbe?: { httpGet?: { path: string; port: string } };
  securityContext?: Record<string, unknown>;
}

interface PodSpec {
  serviceAccountName: string;
  securityContext?: Record<string, unknown>;
  containers: Container[];
}

function exec(bin: string, args: string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      // helm keeps its cache and settings under these; a temp folder keeps the test's to itself.
      env: { ...process.env, HELM_CACHE_HOME: path.join(helmHome!, 'cache'), HELM_CONFIG_HOME: path.join(helmHome!, 'config'), HELM_DATA_HOME: path.join(helmHome!, 'data') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

async function ok(bin: string, args: string[], input?: string): Promise<Result> {
  const r = await exec(bin, args, input);
  if (r.code !== 0) throw new Error(`${path.basename(bin)} ${args.join(' ')} exited with ${r.code}\n${r.stderr}\n${r.stdout}`);
  return r;
}

function helm(...args: string[]): Promise<Result> {
  return exec(controlPlaneBinary('helm'), [...args, '--kubeconfig', cp!.kubeconfigPath]);
}

function kubectl(args: string[], input?: string): Promise<Result> {
  return exec(controlPlaneBinary('kubectl'), [...args, '--kubeconfig', cp!.kubeconfigPath], input);
}

/** `helm template` of the chart in namespace NS; extra args such as --set are appended. */
async function render(...extra: string[]): Promise<{ text: string; objects: Obj[] }> {
  const r = await helm('template', RELEASE, CHART, '--namespace', NS, ...extra);
  if (r.code !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  const objects = parseAllDocuments(r.stdout)
    .map((d) => d.toJSON() as Obj | null)
    .filter((o): o is Obj => o !== null);
  return { text: r.stdout, objects };
}

function find(objects: Obj[], kind: string): Obj[] {
  return objects.filter((o) => o.kind === kind);
}

function one<T = Obj>(objects: Obj[], kind: string): T {
  const found = find(objects, kind);
  expect(found, `one ${kind}`).toHaveLength(1);
  return found[0] as T;
}

function podSpecOf(objects: Obj[]): PodSpec {
  return one<{ spec: { template: { spec: PodSpec } } }>(objects, 'Deployment').spec.template.spec;
}

beforeAll(async () => {
  helmHome = fs.mkdtempSync(path.join(os.tmpdir(), 'kmq-helm-'));
  cp = await ControlPlane.start();
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const restricted = {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
    // enforce applies to Pods only; warn also reports a Deployment whose template would be rejected.
    'pod-security.kubernetes.io/warn': 'restricted',
    'pod-security.kubernetes.io/warn-version': 'latest',
  };
  await core.createNamespace({ body: { metadata: { name: NS, labels: restricted } } });
  await core.createNamespace({ body: { metadata: { name: APP_NS } } });
}, 120_000);

afterAll(async () => {
  await cp?.stop();
  if (helmHome) fs.rmSync(helmHome, { recursive: true, force: true });
});

describe('Helm chart charts/kmq', () => {
  it('carries the CRDs of crds/ byte for byte', () => {
    const list = (dir: string): string[] =>
      fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.yaml'))
        .sort();
    const crds = list(path.join(root, 'crds'));
    const hint = 'charts/kmq/crds differs from crds/: copy crds/ to charts/kmq/crds/';
    expect(crds.length, 'crds/ has CRDs').toBeGreaterThan(0);
    expect(list(path.join(CHART, 'crds')), hint).toEqual(crds);
    for (const f of crds) {
      const want = fs.readFileSync(path.join(root, 'crds', f));
      const got = fs.readFileSync(path.join(CHART, 'crds', f));
      expect(got.equals(want), `${f}: ${hint}`).toBe(true);
    }
  });

  it('passes helm lint, with --strict too', async () => {
    for (const args of [[], ['--strict']]) {
      const r = await helm('lint', CHART, ...args);
      expect(r.code, `helm lint ${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
      expect(r.stdout).not.toMatch(/\[(ERROR|WARNING)\]/);
    }
  });

  it('renders the operator, its RBAC, the webhook Service and configuration', async () => {
    const { objects } = await render();
    const kinds = objects.map((o) => o.kind).sort();
    expect(kinds).toEqual(['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'MutatingWebhookConfiguration', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount'].sort());
    for (const o of objects) if (!o.kind.startsWith('Cluster') && o.kind !== 'MutatingWebhookConfiguration') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(NS);

    const deploy = one<{ spec: { replicas: number } }>(objects, 'Deployment');
    expect(deploy.spec.replicas).toBe(2);
    const pod = podSpecOf(objects);
    expect(pod.serviceAccountName).toBe(one(objects, 'ServiceAccount').metadata.name);
    const [operator] = pod.containers;
    expect(operator!.args![0]).toBe('operator');
    const port = (name: string): number | undefined => operator!.ports!.find((p) => p.name === name)?.containerPort;
    expect(port('health')).toBe(8081);
    expect(port('webhook')).toBe(9443);
    expect(operator!.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(operator!.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'health' });

    const svc = one<Obj & { spec: { ports: Array<{ port: number; targetPort: string }> } }>(objects, 'Service');
    expect(svc.spec.ports).toEqual([expect.objectContaining({ port: 443, targetPort: 'webhook' })]);

    const mwc = one<Obj & { webhooks: Array<Record<string, unknown>> }>(objects, 'MutatingWebhookConfiguration');
    expect(mwc.webhooks).toHaveLength(1);
    const hook = mwc.webhooks[0] as {
      failurePolicy: string;
      sideEffects: string;
      admissionReviewVersions: string[];
      clientConfig: { caBundle?: string; service: { name: string; namespace: string; port: number } };
      objectSelector: unknown;
      namespaceSelector: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> };
      rules: Array<{ operations: string[]; resources: string[] }>;
    };
    expect(hook.failurePolicy).toBe('Fail');
    expect(hook.sideEffects).toBe('None');
    expect(hook.admissionReviewVersions).toEqual(['v1']);
    expect(hook.clientConfig.caBundle).toBeUndefined();
    expect(hook.clientConfig.service).toEqual({ name: svc.metadata.name, namespace: NS, path: '/mutate-pods', port: 443 });
    expect(hook.objectSelector).toEqual({ matchLabels: { 'kmq.dev/inject': 'true' } });
    expect(hook.namespaceSelector.matchExpressions).toEqual([{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', NS] }]);
    expect(hook.rules).toEqual([expect.objectContaining({ operations: ['CREATE'], resources: ['pods'] })]);

    // With release kmq, the names are the operator's defaults (operator/webhook/README.md); it is told them anyway.
    expect([svc.metadata.name, mwc.metadata.name]).toEqual(['kmq-webhook', 'kmq-sidecar-injector']);
    const args = operator!.args!;
    // Every namespace by default: --namespace only with watchNamespace.
    expect(args.some((a: string) => a.startsWith('--namespace'))).toBe(false);
    expect(operator!.env).toEqual(expect.arrayContaining([{ name: 'NODE_OPTIONS', value: '--max-old-space-size=96' }]));
    const scoped = podSpecOf((await render('--set', 'watchNamespace=shop')).objects).containers[0]!.args!;
    expect(scoped).toEqual(expect.arrayContaining(['--namespace=shop']));
    expect(args).toEqual(expect.arrayContaining([`--webhook-service=${svc.metadata.name}`, `--webhook-configuration=${mwc.metadata.name}`, `--webhook-secret=${WEBHOOK_SECRET}`, '--webhook-port=9443', '--health-port=8081']));
  });

  it('documents every value in values.yaml and in the chart README, and the schema knows each', () => {
    type SchemaNode = { $ref?: string; properties?: Record<string, SchemaNode> };
    const schema = JSON.parse(fs.readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as SchemaNode & { definitions: Record<string, SchemaNode> };
    const resolve = (n: SchemaNode): SchemaNode => (n.$ref ? schema.definitions[n.$ref.replace('#/definitions/', '')]! : n);
    const readme = fs.readFileSync(path.join(CHART, 'README.md'), 'utf8');
    const doc = parseDocument(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
    const leaves: string[] = [];
    // A value is a leaf where the schema stops describing properties (a free-form map, a list, a scalar).
    const walk = (map: YAMLMap, node: SchemaNode, prefix: string, parentComment: boolean): void => {
      map.items.forEach((pair, i) => {
        const key = isScalar(pair.key) ? String(pair.key.value) : '';
        const at = `${prefix}${key}`;
        const sub = node.properties?.[key];
        expect(sub, `values.schema.json describes ${at}`).toBeDefined();
        // The comment above a map's first key belongs to the map in the yaml package's tree.
        const comment = (isScalar(pair.key) ? pair.key.commentBefore : undefined) ?? (i === 0 ? map.commentBefore : undefined);
        const own = comment !== undefined && comment !== null && comment.trim() !== '';
        const resolved = resolve(sub!);
        if (resolved.properties && isMap(pair.value)) return walk(pair.value, resolved, `${at}.`, own);
        leaves.push(at);
        expect(own || parentComment, `values.yaml has a comment for ${at}`).toBe(true);
      });
    };
    walk(doc.contents as YAMLMap, schema, '', false);
    expect(leaves.length).toBeGreaterThan(30);
    for (const leaf of leaves) expect(readme, `charts/kmq/README.md documents ${leaf}`).toContain(`| \`${leaf}\` |`);
  });

  it('rejects bad values with a message naming the value', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--set', 'replicaCount=-1'], /at '\/replicaCount': minimum: got -1, want 1/],
      [['--set-string', 'replicaCount=two'], /at '\/replicaCount': got string, want integer/],
      [['--set', 'webhook.failurePolicy=Maybe'], /at '\/webhook\/failurePolicy': value must be one of 'Fail', 'Ignore'/],
      [['--set', 'healthPort=80'], /at '\/healthPort': minimum: got 80, want 1,?024/],
      [['--set', 'replicas=3'], /additional properties 'replicas' not allowed/],
      [['--set', 'rbac.brokerRules[0].apiGroups[0]=*'], /at '\/rbac\/brokerRules\/0\/apiGroups\/0'/],
      [['--set', 'leaderElection.enabled=false'], /leaderElection.enabled=false needs replicaCount: 1/],
    ];
    for (const [args, message] of cases) {
      const r = await helm('template', RELEASE, CHART, '--namespace', NS, ...args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    // The same settings with good values render.
    const { objects } = await render('--set', 'replicaCount=1', '--set', 'leaderElection.enabled=false');
    expect(one<{ spec: { replicas: number } }>(objects, 'Deployment').spec.replicas).toBe(1);
    expect(find(objects, 'PodDisruptionBudget')).toHaveLength(0);
  });

  it('gives the operator, by default, exactly the rules of the brokers\' kubernetes coordination store to grant them', async () => {
    const values = parseDocument(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8')).toJSON() as { rbac: { brokerRules: Rule[] } };
    expect(values.rbac.brokerRules).toEqual(KUBERNETES_COORDINATION_STORE_RBAC_RULES);
    const { objects } = await render();
    const clusterRules = (one(objects, 'ClusterRole') as unknown as { rules: Rule[] }).rules;
    for (const rule of KUBERNETES_COORDINATION_STORE_RBAC_RULES) expect(clusterRules).toContainEqual(rule);
  });

  it('grants RBAC without a wildcard anywhere', async () => {
    const { objects } = await render();
    const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    expect(roles.map((r) => r.kind).sort()).toEqual(['ClusterRole', 'Role']);
    let strings = 0;
    for (const role of roles) {
      const rules = (role as unknown as { rules: Rule[] }).rules;
      expect(rules.length).toBeGreaterThan(0);
      for (const rule of rules) {
        for (const field of ['apiGroups', 'resources', 'resourceNames', 'verbs', 'nonResourceURLs'] as const) {
          for (const value of rule[field] ?? []) {
            strings++;
            expect(value, `${role.kind} ${role.metadata.name} ${field}`).not.toContain('*');
          }
        }
        expect(rule.nonResourceURLs).toBeUndefined();
      }
    }
    expect(strings).toBeGreaterThan(50);
    // Secrets only in the release namespace: create, and reading or writing the webhook's alone.
    const clusterRules = (one(objects, 'ClusterRole') as unknown as { rules: Rule[] }).rules;
    expect(clusterRules.flatMap((r) => r.resources ?? [])).not.toContain('secrets');
    const secretRules = (one(objects, 'Role') as unknown as { rules: Rule[] }).rules.filter((r) => r.resources?.includes('secrets'));
    expect(secretRules).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: [WEBHOOK_SECRET], verbs: ['get', 'update', 'patch'] },
    ]);
  });

  it('applies with kubectl apply --dry-run=server, CRDs included, without a Pod Security warning', async () => {
    const { text, objects } = await render('--include-crds');
    expect(find(objects, 'CustomResourceDefinition')).toHaveLength(fs.readdirSync(path.join(CHART, 'crds')).length);
    const r = await kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], text);
    expect(r.code, r.stderr).toBe(0);
    const applied = r.stdout.split('\n').filter((l) => l.endsWith('(server dry run)'));
    expect(applied).toHaveLength(objects.length);
    for (const o of objects) expect(r.stdout).toContain(`/${o.metadata.name} created (server dry run)`);
    expect(r.stderr).not.toMatch(/PodSecurity|Warning/);
  });

  it('installs with helm into a namespace that enforces Pod Security restricted', async () => {
    const r = await helm('install', RELEASE, CHART, '--namespace', NS);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('STATUS: deployed');
    expect(r.stdout).toContain(`kmq.dev/inject=true`);
    expect(r.stderr).not.toMatch(/PodSecurity/);
    const crds = await ok(controlPlaneBinary('kubectl'), ['get', 'crds', '-l', 'app.kubernetes.io/part-of=kmq', '-o', 'name', '--kubeconfig', cp!.kubeconfigPath]);
    expect(crds.stdout.trim().split('\n')).toHaveLength(fs.readdirSync(path.join(root, 'crds')).length);
    const deploy = await kubectl(['get', 'deployment', RELEASE, '-n', NS, '-o', 'name']);
    expect(deploy.stdout.trim()).toBe(`deployment.apps/${RELEASE}`);
  });

  it("the operator's pod spec passes the API server's Pod Security restricted admission; a weaker one does not", async () => {
    const { objects } = await render();
    const spec = podSpecOf(objects);
    const pod = (name: string, podSpec: PodSpec): string => JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec: podSpec });

    const good = await kubectl(['create', '--dry-run=server', '-f', '-'], pod('operator-template', spec));
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain('pod/operator-template created (server dry run)');

    // Proof that the namespace enforces: the same pod without the container's hardening is refused.
    const weak = structuredClone(spec);
    delete weak.containers[0]!.securityContext;
    const bad = await kubectl(['create', '--dry-run=server', '-f', '-'], pod('operator-weak', weak));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
    expect(bad.stderr).toMatch(/unrestricted capabilities/);
  });

  it("the operator's ServiceAccount may do what the operator needs and nothing broader", async () => {
    const { objects } = await render();
    const sa = `system:serviceaccount:${NS}:${one(objects, 'ServiceAccount').metadata.name}`;
    const mwc = one(objects, 'MutatingWebhookConfiguration').metadata.name;
    const secret = WEBHOOK_SECRET;
    const canI = async (...args: string[]): Promise<string> => (await kubectl(['auth', 'can-i', '--as', sa, ...args])).stdout.trim();
    const table: Array<[string[], 'yes' | 'no']> = [
      [['create', 'statefulsets.apps', '-n', APP_NS], 'yes'],
      [['patch', 'topics.kmq.dev/orders', '-n', APP_NS], 'yes'],
      [['update', 'subscriptions.kmq.dev', '--subresource=status', '-n', APP_NS], 'yes'],
      [['create', 'rolebindings.rbac.authorization.k8s.io', '-n', APP_NS], 'yes'],
      [['watch', 'pods', '-n', APP_NS], 'yes'],
      [['update', `leases.coordination.k8s.io/${RELEASE}`, '-n', NS], 'yes'],
      // What the brokers' Role grants, so the operator may grant it.
      [['delete', 'leases.coordination.k8s.io', '-n', APP_NS], 'yes'],
      [['watch', 'configmaps', '-n', APP_NS], 'yes'],
      [['patch', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${mwc}`], 'yes'],
      [['update', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${mwc}`], 'yes'],
      [['patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-else'], 'no'],
      [['patch', 'validatingwebhookconfigurations.admissionregistration.k8s.io/someone-else'], 'no'],
      [['get', `secrets/${secret}`, '-n', NS], 'yes'],
      [['create', 'secrets', '-n', NS], 'yes'],
      [['get', 'secrets/other', '-n', NS], 'no'],
      [['list', 'secrets', '-n', NS], 'no'],
      [['get', 'secrets', '-n', APP_NS], 'no'],
      [['create', 'pods', '-n', APP_NS], 'no'],
      [['delete', 'namespaces'], 'no'],
      [['create', 'topics.kmq.dev', '-n', APP_NS], 'no'],
      [['create', 'clusterroles.rbac.authorization.k8s.io'], 'no'],
    ];
    for (const [args, want] of table) expect(`${args.join(' ')}: ${await canI(...args)}`).toBe(`${args.join(' ')}: ${want}`);

    // A Role can grant only what its creator holds: one that grants more than the operator holds is refused.
    const role = (name: string, rules: Rule[]): string => JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: APP_NS }, rules });
    const refused = await kubectl(['create', '--as', sa, '-f', '-'], role('too-much', [{ apiGroups: [''], resources: ['pods/exec'], verbs: ['create'] }]));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/is attempting to grant RBAC permissions not currently held/);
  });

  it("the operator's ServiceAccount can apply every object the BrokerCluster reconciler builds, the brokers' Role included", async () => {
    const { objects } = await render();
    const sa = `system:serviceaccount:${NS}:${one(objects, 'ServiceAccount').metadata.name}`;
    const example = parseAllDocuments(fs.readFileSync(path.join(root, 'examples', 'kubernetes', 'broker-cluster.yaml'), 'utf8'))[0]!.toJSON() as Obj;
    await ok(controlPlaneBinary('kubectl'), ['apply', '--kubeconfig', cp!.kubeconfigPath, '-f', '-'], JSON.stringify({ ...example, metadata: { ...example.metadata, namespace: APP_NS } }));
    const bc = JSON.parse((await ok(controlPlaneBinary('kubectl'), ['get', 'brokerclusters.kmq.dev', example.metadata.name, '-n', APP_NS, '-o', 'json', '--kubeconfig', cp!.kubeconfigPath])).stdout) as BrokerCluster;
    const children = buildBrokerClusterObjects(bc);
    expect(children.map((c) => c.kind)).toContain(buildRole(bc).kind);
    // As the operator applies them: server-side apply, first creating, then patching.
    for (const round of ['created', 'patched']) {
      const r = await kubectl(['apply', '--server-side', `--field-manager=${FIELD_MANAGER}`, '--as', sa, '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: children }));
      expect(r.code, `${round}: ${r.stderr}`).toBe(0);
      for (const c of children) expect(r.stdout, round).toMatch(new RegExp(`/${c.metadata!.name} serverside-applied$`, 'm'));
      expect(r.stdout.trim().split('\n'), round).toHaveLength(children.length);
    }
  });

  it("the operator's own code, with the ServiceAccount's token, keeps its webhook certificates and caBundle and holds its Lease", async () => {
    const { objects } = await render();
    const saName = one(objects, 'ServiceAccount').metadata.name;
    const token = (await ok(controlPlaneBinary('kubectl'), ['create', 'token', saName, '-n', NS, '--kubeconfig', cp!.kubeconfigPath])).stdout.trim();
    const asOperator = new KubeConfig();
    asOperator.loadFromOptions({
      clusters: [{ name: 'test', server: cp!.server, caData: cp!.kubeConfig.getCurrentCluster()!.caData }],
      users: [{ name: 'operator', token }],
      contexts: [{ name: 'operator', cluster: 'test', user: 'operator' }],
      currentContext: 'operator',
    });
    const service = one(objects, 'Service').metadata.name;
    const configuration = one(objects, 'MutatingWebhookConfiguration').metadata.name;

    // The Secret does not exist yet: the operator creates it, then reuses it.
    const tls = compileWebhookTlsOptions({ namespace: NS, secretName: WEBHOOK_SECRET, serviceName: service });
    const core = asOperator.makeApiClient(CoreV1Api);
    const certs = await ensureWebhookCertificates(core, tls);
    expect((await ensureWebhookCertificates(core, tls)).cert).toBe(certs.cert);
    expect(await patchCaBundle(asOperator.makeApiClient(AdmissionregistrationV1Api), configuration, certs.caCert)).toBe(true);
    const mwc = await cp!.kubeConfig.makeApiClient(AdmissionregistrationV1Api).readMutatingWebhookConfiguration({ name: configuration });
    expect(mwc.webhooks?.map((w) => w.clientConfig.caBundle)).toEqual([Buffer.from(certs.caCert).toString('base64')]);

    const leases = apiLeaseStore(asOperator);
    const lease = one<{ spec: { template: { spec: PodSpec } } }>(objects, 'Deployment').spec.template.spec.containers[0]!.args!.find((a) => a.startsWith('--lease-name='))!.slice('--lease-name='.length);
    const created = await leases.create(NS, { metadata: { name: lease, namespace: NS }, spec: { holderIdentity: 'replica-a', leaseDurationSeconds: 15 } });
    const read = await leases.get(NS, lease);
    expect(read?.spec?.holderIdentity).toBe('replica-a');
    const renewed = await leases.replace(NS, { ...created, spec: { ...created.spec, holderIdentity: 'replica-b' } });
    expect(renewed.spec?.holderIdentity).toBe('replica-b');
  });

  it('uninstalls with helm, leaving the CRDs (and so the users\' objects) in place', async () => {
    const r = await helm('uninstall', RELEASE, '--namespace', NS, '--wait');
    expect(r.code, r.stderr).toBe(0);
    const deploy = await kubectl(['get', 'deployment', RELEASE, '-n', NS, '--ignore-not-found', '-o', 'name']);
    expect(deploy.stdout.trim()).toBe('');
    const crds = await kubectl(['get', 'crds', '-l', 'app.kubernetes.io/part-of=kmq', '-o', 'name']);
    expect(crds.stdout.trim().split('\n')).toHaveLength(fs.readdirSync(path.join(root, 'crds')).length);
  });
});
