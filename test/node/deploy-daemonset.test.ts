// manifests/ as `kubectl apply -k manifests/` installs it: accepted by the apiserver as it is (server-
// side dry run, schema validated: the CRDs, the RBAC, the ConfigMap, the DaemonSet), and deployed for
// real — the image set through kustomize's `images:` in an overlay of manifests/, the DaemonSet
// controller and the scheduler place its pod on a real node (containerd + kubelet), the agent runs in it
// with its service account's token, becomes ready, and turns a line written to the node's /dev/kmsg into
// an Abnormal in the apiserver.
//
// What the test changes in the rendered ConfigMap and DaemonSet, and why: the apiserver's address
// (loopback here: no kube-proxy makes the kubernetes Service reachable), the port (the suite may run two
// nodes on one host), the node's directories (temporary ones, not the host's /var/lib/nodemedic), the
// node it may run on, the names (this run's own), and Warning events off (one agent of the cluster
// watches them; the events test owns that part). The image is this checkout's, built here (no registry
// is reachable: the running node binary, its libraries, dist/ and node_modules/), named by the overlay.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { AppsV1Api, CoreV1Api, type V1ConfigMap, type V1DaemonSet } from '@kubernetes/client-node';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { NODE_LABEL } from '../../agent/api/crds.js';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { AGENT_NAMESPACE, REPO_ROOT, freePort, startControllers } from '../cluster/cluster.js';
import { holdMachineLock } from '../helpers/machine-lock.js';
import { ON_OWN_CLUSTER, buildImage, importImage, skipUnlessOwnCluster, startSuiteNode, type TestNode } from './node.js';
import { imageEntrypoint, waitFor } from '../helpers/agent.js';
import { ABNORMALS, GROUP, VERSION, customObjects, kubeConfig, kubectl, testNamespace } from '../helpers/kube.js';

const run = promisify(execFile);
/** The Dockerfile's ENTRYPOINT, with the node binary where this test's image has it. */
const ENTRYPOINT = ['/usr/bin/node', ...imageEntrypoint().slice(1)];
const skip = skipUnlessOwnCluster('runs a kubelet, a scheduler and a controller manager');
const ns = await testNamespace('deploy'); // names this run's node and objects; the agent itself lives in its namespace
const nodeName = `node-${ns}`;
const name = `nodemedic-${ns}`;
const core = kubeConfig().makeApiClient(CoreV1Api);
const apps = kubeConfig().makeApiClient(AppsV1Api);
let node: TestNode | undefined;
let controllers: { stop(): Promise<void> } | undefined;

test('kubectl apply -k manifests/ installs everything, and passes the apiserver\'s schema validation as it is', async () => {
  const out = await kubectl('apply', '--dry-run=server', '--validate=true', '-k', 'manifests/');
  for (const object of [
    'namespace/nodemedic-system', 'customresourcedefinition.apiextensions.k8s.io/abnormals.nodemedic.io',
    'customresourcedefinition.apiextensions.k8s.io/diagnosers.nodemedic.io', 'customresourcedefinition.apiextensions.k8s.io/recoverers.nodemedic.io',
    'customresourcedefinition.apiextensions.k8s.io/informationcollectors.nodemedic.io', 'serviceaccount/nodemedic',
    'clusterrole.rbac.authorization.k8s.io/nodemedic-agent', 'clusterrolebinding.rbac.authorization.k8s.io/nodemedic-agent',
    'configmap/nodemedic-config', 'daemonset.apps/nodemedic',
  ]) assert.match(out, new RegExp(`^${object.replace(/\./g, '\\.')} (created|configured|unchanged) \\(server dry run\\)$`, 'm'), `${object} in:\n${out}`);
});

/** manifests/ rendered by kustomize through an overlay that sets the image, as a user's overlay would. */
async function renderedWithImage(dir: string, image: { newName: string; newTag: string }): Promise<Array<Record<string, unknown>>> {
  const overlay = path.join(dir, 'overlay');
  await mkdir(overlay, { recursive: true });
  // kubectl 1.20's kustomize takes a base outside the overlay only by a relative path.
  await writeFile(path.join(overlay, 'kustomization.yaml'), stringify({
    bases: [path.relative(overlay, path.join(REPO_ROOT, 'manifests'))],
    images: [{ name: 'nodemedic', ...image }],
  }));
  return parseAllDocuments(await kubectl('kustomize', overlay)).map((d) => d.toJS() as Record<string, unknown>);
}

/** An image of this checkout: the node binary running the tests, its libraries, dist/ and node_modules/. */
async function buildAgentImage(dir: string): Promise<string> {
  const root = path.join(dir, 'rootfs');
  await mkdir(path.join(root, 'usr/bin'), { recursive: true });
  await mkdir(path.join(root, 'tmp'), { recursive: true });
  await run('cp', [process.execPath, path.join(root, 'usr/bin/node')]);
  const { stdout } = await run('ldd', [process.execPath]);
  for (const lib of stdout.matchAll(/(\/\S+) \(0x/g)) {
    await mkdir(path.join(root, path.dirname(lib[1]!)), { recursive: true });
    await run('cp', ['-L', lib[1]!, path.join(root, lib[1]!)]);
  }
  const layer = path.join(dir, 'layer.tar');
  await run('tar', ['-C', root, '--owner=0', '--group=0', '-cf', layer, '.']);
  await run('tar', ['-C', REPO_ROOT, '--owner=0', '--group=0', '--transform', 's,^,opt/nodemedic/,', '--exclude=dist/test', '--exclude=dist/scripts', '-rf', layer, 'package.json', 'dist', 'node_modules']);
  return buildImage(dir, 'docker.io/library/nodemedic:test', layer, {
    Entrypoint: ENTRYPOINT, Cmd: ['agent'], WorkingDir: '/opt/nodemedic',
  });
}

/** The ConfigMap and DaemonSet kustomize renders with this checkout's image, changed only as the header says. */
async function testVariant(port: number, hostDir: string): Promise<{ configMap: V1ConfigMap; daemonSet: V1DaemonSet }> {
  const rendered = await renderedWithImage(hostDir, { newName: 'docker.io/library/nodemedic', newTag: 'test' });
  const configMap = rendered.find((o) => o.kind === 'ConfigMap') as V1ConfigMap;
  const daemonSet = rendered.find((o) => o.kind === 'DaemonSet') as V1DaemonSet;
  const config = parse(configMap.data!['config.yaml']!) as Record<string, unknown>;
  configMap.metadata!.name = name;
  configMap.data!['config.yaml'] = stringify({ ...config, listen: `0.0.0.0:${port}`, events: { enabled: false }, recovery: { ...(config.recovery as object), dryRun: true } });
  daemonSet.metadata!.name = name;
  daemonSet.spec!.selector.matchLabels = { 'app.kubernetes.io/name': name };
  const pod = daemonSet.spec!.template;
  pod.metadata!.labels = { 'app.kubernetes.io/name': name };
  pod.spec!.nodeSelector = { 'kubernetes.io/hostname': nodeName };
  const agent = pod.spec!.containers[0]!;
  assert.equal(agent.image, 'docker.io/library/nodemedic:test', 'the image, as the overlay set it');
  agent.imagePullPolicy = 'Never';
  const apiserver = new URL(kubeConfig().getCurrentCluster()!.server);
  agent.env!.push({ name: 'KUBERNETES_SERVICE_HOST', value: apiserver.hostname }, { name: 'KUBERNETES_SERVICE_PORT', value: apiserver.port });
  agent.readinessProbe!.httpGet!.port = port;
  agent.livenessProbe!.httpGet!.port = port;
  agent.ports = [{ name: 'http', containerPort: port }];
  for (const volume of pod.spec!.volumes!) {
    if (volume.configMap) volume.configMap.name = name;
    if (volume.name === 'state' || volume.name === 'scripts') volume.hostPath!.path = path.join(hostDir, volume.name);
  }
  return { configMap, daemonSet };
}

before(async () => {
  if (!ON_OWN_CLUSTER) return;
  // Its agent reads the machine's kernel log and the test writes a line there: not while the kmsg tests count lines.
  await holdMachineLock('kmsg');
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-deploy-'));
  const kubeconfig = process.env.NODEMEDIC_TEST_KUBECONFIG!;
  controllers = await startControllers({ clusterDir: path.dirname(kubeconfig), kubeconfig, binDir: process.env.NODEMEDIC_TEST_KUBE_BIN!, logDir: dir });
  node = await startSuiteNode(nodeName);
  await importImage(node, await buildAgentImage(path.join(dir, 'image')));
});
after(async () => {
  await apps.deleteNamespacedDaemonSet({ namespace: AGENT_NAMESPACE, name }).catch(() => {});
  await core.deleteNamespacedConfigMap({ namespace: AGENT_NAMESPACE, name }).catch(() => {});
  // No garbage collector runs here: the DaemonSet's pod goes with the node.
  await node?.stop();
  await controllers?.stop();
});

/** The agent's process on the host (hostPID: it is one of the node's processes). */
async function agentPid(): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline === [...ENTRYPOINT, 'agent', '--config', '/config/config.yaml', ''].join('\0')) {
      const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
      if (environ.includes(`NODE_NAME=${nodeName}\0`)) return Number(entry);
    }
  }
  return undefined;
}

test('deployed: the pod runs on the node with its service account, is ready, and reports the node\'s kernel log', { skip, timeout: 240_000 }, async (t) => {
  const port = await freePort();
  const { configMap, daemonSet } = await testVariant(port, await mkdtemp(path.join(tmpdir(), 'nodemedic-deploy-host-')));
  await core.createNamespacedConfigMap({ namespace: AGENT_NAMESPACE, body: configMap });
  const started = Date.now();
  await apps.createNamespacedDaemonSet({ namespace: AGENT_NAMESPACE, body: daemonSet });
  const ready = await waitFor('the DaemonSet\'s pod to be ready', async () => {
    const status = (await apps.readNamespacedDaemonSet({ namespace: AGENT_NAMESPACE, name })).status;
    return status?.numberReady === 1 && status.desiredNumberScheduled === 1 ? status : undefined;
  }, 120_000);
  t.diagnostic(`DaemonSet created → its pod ready: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(ready.numberReady, 1);
  const [pod] = (await core.listNamespacedPod({ namespace: AGENT_NAMESPACE, labelSelector: `app.kubernetes.io/name=${name}` })).items;
  assert.equal(pod?.spec?.nodeName, nodeName);
  assert.ok(pod?.spec?.volumes?.some((v) => v.secret?.secretName?.startsWith('nodemedic-token-')), 'the service account\'s token is mounted');

  // A kernel line on the node, read by the agent in the pod through the mounted /dev/kmsg.
  const marker = `nodemedic-ds-${ns}`;
  await writeFile('/dev/kmsg', `<3>INFO: task ${marker}:4242 blocked for more than 120 seconds.\n`);
  const abnormal = await waitFor('the Abnormal of the agent in the pod', async () => {
    const list = await customObjects().listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: AGENT_NAMESPACE, plural: ABNORMALS, labelSelector: `${NODE_LABEL}=${nodeName}` }) as { items: Abnormal[] };
    // (Dedup may count the line on an Abnormal of another test's hung-task line, read first: any will do.)
    return list.items.find((a) => a.spec.source === 'Log' && a.spec.log?.filePath === '/dev/kmsg' && isTerminal(a.status?.phase));
  }, 60_000);
  assert.equal(abnormal.spec.nodeName, nodeName);
  const facts = abnormal.status?.context?.nodeFacts as { kernel?: string } | undefined;
  assert.match(facts?.kernel ?? '', /^Linux /, 'collected in the pod: the node facts');

  const pid = await agentPid();
  assert.ok(pid, 'the agent is one of the node\'s processes');
  const rss = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1];
  t.diagnostic(`the agent in the pod (kube store, ${process.version}): ${Math.round(Number(rss) / 1024)} MiB resident`);
});
