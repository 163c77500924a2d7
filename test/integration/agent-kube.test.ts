// The agent against a real kube-apiserver, with real HTTP processors: every phase, the failure modes
// of processors, the skip flags, node ownership, claiming, and 200 Abnormals at once.
// Every Abnormal here names its processors (spec.assigned*): other test files register processors in
// the same cluster at the same time, and the default "all registered" order would pick theirs up too.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { RunningAgent } from '../../agent/agent.js';
import { RECOVERY_LOG } from '../../agent/pipeline/pipeline.js';
import { NODE_LABEL } from '../../agent/api/crds.js';
import type { KubeStore } from '../../agent/store/kube.js';
import type { KubeEventRecorder } from '../../agent/store/kube-events.js';
import { freePort, makeCertificates } from '../cluster/cluster.js';
import { DEFAULTS } from '../../agent/config.js';
import { finished, ref, registerProcessor, spawnAgent, startKubeAgent, waitFor } from '../helpers/agent.js';
import { abnormal, createAbnormal, getAbnormal, kubeConfig, kubeconfigFile, kubectl, testNamespace } from '../helpers/kube.js';
import { ProcessorServer, answer } from '../helpers/processor-server.js';

const ns = await testNamespace('agent');
const node = `node-${ns}`;
const server = await new ProcessorServer().start();
let agent: RunningAgent;

// The processors, as real HTTP endpoints registered as objects.
await registerProcessor('informationcollectors', ns, 'facts', { url: server.route('/facts', (a) => answer(a, { context: { facts: { seen: a.metadata?.name } }, output: 'collected' })) });
await registerProcessor('informationcollectors', ns, 'broken-collector', { url: server.route('/broken-collector', (_a, _req, res) => res.writeHead(500).end('collector exploded')) });
await registerProcessor('diagnosers', ns, 'yes', { url: server.route('/yes', (a) => answer(a, { identifiable: true, reason: 'Found', message: 'it is the shim' })) });
await registerProcessor('diagnosers', ns, 'no', { url: server.route('/no', (a) => answer(a, { identifiable: false, message: 'not mine' })) });
await registerProcessor('diagnosers', ns, 'slow', { url: server.route('/slow', () => new Promise(() => {})), timeoutSeconds: 1 });
await registerProcessor('diagnosers', ns, 'http500', { url: server.route('/http500', (_a, _req, res) => res.writeHead(500).end('internal trouble')) });
await registerProcessor('diagnosers', ns, 'not-json', { url: server.route('/not-json', (_a, _req, res) => res.writeHead(200).end('<html>hello</html>')) });
await registerProcessor('diagnosers', ns, 'rewrites-spec', { url: server.route('/rewrites-spec', (a) => ({ ...a, spec: { ...a.spec, nodeName: 'elsewhere' }, status: { identifiable: true } })) });
await registerProcessor('diagnosers', ns, 'huge', {
  url: server.route('/huge', (_a, _req, res) => {
    // 50 MB of JSON, streamed; the agent must stop reading at its cap.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"status":{"output":"');
    const chunk = 'x'.repeat(1024 * 1024);
    let sent = 0;
    const more = () => {
      while (sent < 50 && res.write(chunk)) sent++;
      if (sent < 50) res.once('drain', () => { sent++; more(); });
      else res.end('"}}');
    };
    res.on('error', () => {});
    more();
  }),
});
await registerProcessor('recoverers', ns, 'fix', { url: server.route('/fix', (a) => answer(a, { recoverable: true, message: 'shim killed' })) });

before(async () => {
  // Its server listens on loopback, so the built-ins it serves need no token (security-http.test.ts has the rest).
  agent = await startKubeAgent(node, { concurrency: 8, builtinProcessors: { ...DEFAULTS.builtinProcessors, serve: true } });
});
after(async () => {
  await agent.stop();
  await server.stop();
});

const assigned = (collectors: string[], diagnosers: string[], recoverers: string[]) => ({
  assignedInformationCollectors: collectors.map((n) => ref(ns, n)),
  assignedDiagnosers: diagnosers.map((n) => ref(ns, n)),
  assignedRecoverers: recoverers.map((n) => ref(ns, n)),
});
const mine = (name: string, spec: Record<string, unknown>) =>
  createAbnormal(abnormal(name, ns, { nodeName: node, ...spec }, { [NODE_LABEL]: node }));

test('the happy path: collected, identified, recovered, with conditions, evidence and events', async (t) => {
  const writesBefore = { ...(agent.store as KubeStore).writes };
  const eventsBefore = (agent.events as KubeEventRecorder).written;
  const before = { fix: server.count('/fix') };
  await mine('happy', assigned(['facts'], ['yes'], ['fix']));
  const done = await finished(ns, 'happy');
  assert.equal(done.status?.phase, 'Succeeded', JSON.stringify(done.status));
  assert.equal(done.status?.identifiable, true);
  assert.equal(done.status?.recoverable, true);
  assert.deepEqual(done.status?.diagnoser, ref(ns, 'yes'));
  assert.deepEqual(done.status?.recoverer, ref(ns, 'fix'));
  assert.deepEqual(done.status?.context?.facts, { seen: 'happy' });
  assert.ok(done.status?.startTime);
  assert.deepEqual(done.status?.conditions?.map((c) => [c.type, c.status, c.reason]), [
    ['InformationCollected', 'True', 'Collected'],
    ['Identified', 'True', 'Found'],
    ['Recovered', 'True', 'Recovered'],
  ]);
  assert.equal(done.status?.reason, 'Recovered');
  assert.match(done.status?.message ?? '', /recovered by .*\/fix: shim killed/);
  assert.equal(server.count('/fix') - before.fix, 1, 'the recoverer ran once');
  const log = done.status?.context?.[RECOVERY_LOG] as Array<{ recoverer: string; result: string }>;
  assert.deepEqual(log.map((a) => [a.recoverer, a.result]), [[`${ns}/fix`, 'Recovered']]);

  // The story, as `kubectl describe ab happy` shows it.
  // The Event of the last phase change is recorded just after its status write: wait for it.
  const events = await waitFor('four events', async () => {
    const list = await kubeConfig().makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=happy' });
    return list.items.length >= 4 ? list : undefined;
  });
  // In order as the apiserver lists them (by name: <abnormal>.<hex nanoseconds>), each with its eventTime.
  const story = events.items;
  const reasons = ['Accepted', 'Collected', 'Identified', 'Recovered'];
  assert.deepEqual(story.map((e) => e.reason), reasons);
  assert.match(story[3]?.message ?? '', /Recovering → Succeeded/);
  const times = story.map((e) => new Date(e.eventTime as unknown as string).getTime());
  assert.ok(times.every((time, i) => Number.isFinite(time) && (i === 0 || time >= times[i - 1]!)), `eventTimes in order: ${times.join(', ')}`);
  // They happen within a second or two, which kubectl (sorting by the second-precision lastTimestamp) cannot tell apart.
  const described = await kubectl('-n', ns, 'describe', 'abnormal', 'happy');
  const table = described.slice(described.indexOf('Events:'));
  const at = reasons.map((reason) => table.search(new RegExp(`\\s${reason}\\s`)));
  assert.ok(at.every((i, n) => i > 0 && (n === 0 || i > at[n - 1]!)), `kubectl describe lists the Events in order:\n${table}`);
  const writes = (agent.store as KubeStore).writes;
  const eventWrites = (agent.events as KubeEventRecorder).written;
  // For the docs: the API writes one Abnormal costs, create to Succeeded.
  t.diagnostic(`API writes for one Abnormal: ${writes.status - writesBefore.status} status writes, ${eventWrites - eventsBefore} events, ${writes.claim - writesBefore.claim} claims`);
});

test('the same Event again is counted on the first one, as its series', async () => {
  await mine('repeated', assigned(['facts'], ['no'], []));
  const done = await finished(ns, 'repeated', 60_000);
  for (let i = 0; i < 3; i++) await agent.events.recordEvent(done, 'Warning', 'RecoveryHeld', 'the cluster budget is spent; retrying');
  const events = await kubeConfig().makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=repeated,reason=RecoveryHeld' });
  assert.equal(events.items.length, 1, 'one Event');
  assert.equal(events.items[0]!.count, 3);
  assert.equal(events.items[0]!.series?.count, 3);
});

test('no diagnoser identifies: Failed, with every diagnoser\'s reason', async () => {
  await mine('unidentified', assigned(['broken-collector', 'facts'], ['no', 'slow', 'http500', 'not-json', 'rewrites-spec', 'huge', 'missing'], ['fix']));
  const done = await finished(ns, 'unidentified', 60_000);
  assert.equal(done.status?.phase, 'Failed');
  assert.equal(done.status?.reason, 'NotIdentified');
  const message = done.status?.message ?? '';
  for (const expected of [
    `${ns}/no: not identified (not mine)`,
    `${ns}/slow: Timeout: no complete reply`,
    `${ns}/http500: HTTP500: internal trouble`,
    `${ns}/not-json: InvalidReply: the reply is not JSON`,
    `${ns}/rewrites-spec: ReplyRewritesSpec`,
    `${ns}/huge: ReplyTooLarge`,
    `${ns}/missing: not registered`,
  ]) assert.ok(message.includes(expected), `message lacks "${expected}": ${message}`);
  const collected = done.status?.conditions?.find((c) => c.type === 'InformationCollected');
  assert.equal(collected?.reason, 'PartiallyCollected', 'a failing collector is recorded and the chain goes on');
  assert.match(collected?.message ?? '', /broken-collector: HTTP500: collector exploded/);
  assert.deepEqual(done.status?.context?.facts, { seen: 'unidentified' });
});

test('the second diagnoser identifies after the first does not', async () => {
  const yesBefore = server.count('/yes');
  await mine('second', assigned([], ['no', 'yes'], ['fix']));
  const done = await finished(ns, 'second');
  assert.equal(done.status?.phase, 'Succeeded');
  assert.deepEqual(done.status?.diagnoser, ref(ns, 'yes'));
  assert.equal(server.count('/yes') - yesBefore, 2, 'once to diagnose, once more to confirm right before fix acted');
});

describe('skip flags', () => {
  test('skipDiagnosis goes straight to the recoverers', async () => {
    const yesBefore = server.count('/yes');
    await mine('skip-diagnosis', { ...assigned([], ['yes'], ['fix']), skipDiagnosis: true });
    const done = await finished(ns, 'skip-diagnosis');
    assert.equal(done.status?.phase, 'Succeeded');
    assert.equal(server.count('/yes'), yesBefore, 'no diagnoser ran');
    assert.equal(done.status?.conditions?.find((c) => c.type === 'Identified'), undefined);
  });

  test('skipRecovery succeeds after the diagnosis without acting', async () => {
    const fixBefore = server.count('/fix');
    await mine('skip-recovery', { ...assigned([], ['yes'], ['fix']), skipRecovery: true });
    const done = await finished(ns, 'skip-recovery');
    assert.equal(done.status?.phase, 'Succeeded');
    assert.equal(done.status?.identifiable, true);
    assert.equal(server.count('/fix'), fixBefore, 'no recoverer ran');
  });
});

test('an Abnormal for another node is never touched, labelled or not', async () => {
  await createAbnormal(abnormal('other-labelled', ns, { nodeName: 'other-node', ...assigned([], ['yes'], []) }, { [NODE_LABEL]: 'other-node' }));
  await createAbnormal(abnormal('other-unlabelled', ns, { nodeName: 'other-node', ...assigned([], ['yes'], []) }));
  await mine('marker', assigned([], ['yes'], ['fix'])); // created after them: once it is done, they have been seen
  await finished(ns, 'marker');
  for (const name of ['other-labelled', 'other-unlabelled']) {
    const other = await getAbnormal(ns, name);
    assert.equal(other.status, undefined, name);
  }
  assert.equal((await getAbnormal(ns, 'other-unlabelled')).metadata?.labels?.[NODE_LABEL], undefined, 'not claimed');
});

test('a hand-made Abnormal without the label is claimed and handled', async () => {
  await createAbnormal(abnormal('by-hand', ns, { nodeName: node, ...assigned([], ['yes'], ['fix']) }));
  const done = await finished(ns, 'by-hand');
  assert.equal(done.status?.phase, 'Succeeded');
  assert.equal(done.metadata?.labels?.[NODE_LABEL], node);
});

test('200 Abnormals at once all finish, never more than `concurrency` at a time', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  // Each call is held until every Abnormal being worked on is held here: how many run at once is then
  // the agent's doing, not the machine's speed.
  const held: Array<() => void> = [];
  let allDone = false; // then the collector (which later Abnormals run too) answers at once
  const slowFacts = server.route('/slow-facts', async (a) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    if (!allDone) await new Promise<void>((resolve) => held.push(resolve));
    inFlight--;
    return answer(a, {});
  });
  const releasing = (async () => {
    while (!allDone) {
      await waitFor('the running Abnormals to reach the collector', async () =>
        allDone || (held.length > 0 && held.length === agent.pipeline.queueSize.running) || undefined, 120_000);
      held.splice(0).forEach((release) => release());
    }
  })();
  await registerProcessor('informationcollectors', ns, 'slow-facts', { url: slowFacts });
  const started = Date.now();
  const names = Array.from({ length: 200 }, (_, i) => `bulk-${i}`);
  for (let i = 0; i < names.length; i += 20) {
    await Promise.all(names.slice(i, i + 20).map((name) => mine(name, assigned(['slow-facts'], ['yes'], ['fix']))));
  }
  try {
    for (const name of names) assert.equal((await finished(ns, name, 120_000)).status?.phase, 'Succeeded', name);
  } finally {
    allDone = true;
    held.splice(0).forEach((release) => release());
    await releasing;
  }
  const seconds = (Date.now() - started) / 1000;
  assert.ok(maxInFlight <= 8, `at most 8 Abnormals collected at once, saw ${maxInFlight}`);
  assert.ok(maxInFlight > 1, `work ran concurrently (saw ${maxInFlight})`);
  t.diagnostic(`200 Abnormals: created and finished in ${seconds.toFixed(1)} s with concurrency 8`);
});

test('HTTPS processors are verified with their caBundle and get the bearer token from their Secret', async () => {
  const certs = await mkdtemp(path.join(tmpdir(), 'nodemedic-certs-'));
  await makeCertificates(certs);
  const [ca, key, cert] = await Promise.all(['ca.crt', 'apiserver.key', 'apiserver.crt'].map((f) => readFile(path.join(certs, f), 'utf8')));
  const https = await new ProcessorServer({ key: key!, cert: cert! }).start();
  try {
    const url = https.route('/secure', (a, req, res) =>
      req.headers.authorization === 'Bearer s3cret' ? answer(a, { identifiable: true }) : res.writeHead(401).end('who are you?'));
    const core = kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'processor-token' }, stringData: { token: 's3cret\n' } } });
    // As an admin registering a processor with a token outside nodemedic-system would: let the agent read it.
    const rbac = kubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: 'tokens' }, rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['processor-token'], verbs: ['get'] }] } });
    await rbac.createNamespacedRoleBinding({ namespace: ns, body: {
      metadata: { name: 'tokens' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tokens' },
      subjects: [{ kind: 'ServiceAccount', name: 'nodemedic', namespace: 'nodemedic-system' }],
    } });
    const caBundle = Buffer.from(ca!).toString('base64');
    await registerProcessor('diagnosers', ns, 'secure', { url, caBundle, bearerTokenSecretRef: { name: 'processor-token', key: 'token' } });
    await registerProcessor('diagnosers', ns, 'secure-without-ca', { url, bearerTokenSecretRef: { name: 'processor-token', key: 'token' } });
    await registerProcessor('diagnosers', ns, 'secure-without-token', { url, caBundle });

    await mine('tls', { ...assigned([], ['secure'], []), skipRecovery: true });
    assert.deepEqual((await finished(ns, 'tls')).status?.diagnoser, ref(ns, 'secure'));

    await mine('tls-refused', { ...assigned([], ['secure-without-ca', 'secure-without-token'], []), skipRecovery: true });
    const refused = await finished(ns, 'tls-refused');
    assert.equal(refused.status?.phase, 'Failed');
    assert.match(refused.status?.message ?? '', /secure-without-ca: Unreachable: .*(certificate|self.signed)/i);
    assert.match(refused.status?.message ?? '', /secure-without-token: HTTP401: who are you\?/);
  } finally {
    await https.stop();
  }
});

describe('the agent\'s HTTP server', () => {
  const call = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${agent.port}${path}`, init);
  const post = (path: string, body: unknown) => call(path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });

  test('/healthz and /readyz answer once the store has synced, with one Date header, the time now', async () => {
    const healthz = await call('/healthz');
    assert.equal(healthz.status, 200);
    const date = healthz.headers.get('date') ?? ''; // two headers would read "a, b", which does not parse
    assert.match(date, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/);
    assert.ok(Math.abs(Date.parse(date) - Date.now()) < 60_000, `the time now: ${date}`);
    assert.equal(await (await call('/readyz')).text(), 'ok\n');
  });

  test('/readyz says why the agent is not ready: an identity the apiserver refuses', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-unready-'));
    const port = await freePort();
    const config = path.join(dir, 'config.yaml');
    await writeFile(config, stringify({ nodeName: `unready-${ns}`, store: 'kube', kubeconfig: kubeconfigFile('unprivileged'), stateDir: path.join(dir, 'state'), events: { enabled: false } }));
    const child = spawnAgent(['--config', config, '--listen', `127.0.0.1:${port}`], path.join(dir, 'agent.log'));
    try {
      const said = await waitFor('/readyz to say why not', async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        const body = await res?.text();
        return res?.status === 503 && body?.includes('HTTP 403') ? body : undefined;
      });
      assert.match(said, /^not ready: the store has not listed its Abnormals yet: \S+: HTTP 403: .*forbidden/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'alive all the same');
    } finally {
      child.kill('SIGTERM');
      await child.exited;
    }
  });

  test('built-in processors speak the processor contract at /processors/<kind>/<name>', async () => {
    const sent = abnormal('asked', ns, { nodeName: node, context: { path: '/', thresholdPercent: 0 } });
    const res = await post('/processors/diagnosers/disk-usage', sent);
    assert.equal(res.status, 200);
    const reply = (await res.json()) as typeof sent;
    assert.equal(reply.status?.identifiable, true);
    assert.deepEqual(reply.spec, sent.spec, 'the reply keeps the spec');
    assert.equal((await post('/processors/informationcollectors/node-facts', sent)).status, 200);
  });

  test('bad requests get a clear error', async () => {
    const invalid = await post('/processors/diagnosers/disk-usage', { spec: { source: 'Custom' } });
    assert.equal(invalid.status, 400);
    assert.deepEqual(await invalid.json(), { reason: 'InvalidAbnormal', message: 'spec.nodeName: is required' });
    assert.equal((await post('/processors/diagnosers/disk-usage', '{not json')).status, 400);
    assert.equal((await post('/processors/diagnosers/no-such', {})).status, 404);
    assert.equal((await call('/processors/diagnosers/disk-usage')).status, 405);
    const huge = await post('/processors/diagnosers/disk-usage', 'x'.repeat(3 * 1024 * 1024)).catch((err: Error) => err);
    assert.ok(huge instanceof Error || huge.status === 413, 'an oversized body is refused');
    assert.equal((await call('/healthz')).status, 200, 'and the agent is still there');
  });
});

test('a hard stop cancels the processor call in flight and writes nothing: the step is left to resume', async () => {
  let called!: () => void;
  const calledOnce = new Promise<void>((resolve) => (called = resolve));
  await registerProcessor('diagnosers', ns, 'hangs', { url: server.route('/hangs', () => (called(), new Promise(() => {}))) });
  const otherNode = `${node}-b`;
  const second = await startKubeAgent(otherNode);
  await createAbnormal(abnormal('hard-stop', ns, { nodeName: otherNode, assignedDiagnosers: [ref(ns, 'hangs')] }, { [NODE_LABEL]: otherNode }));
  await calledOnce;
  await second.stop(true);
  const left = await getAbnormal(ns, 'hard-stop');
  assert.equal(left.status?.phase, 'Diagnosing', JSON.stringify(left.status));
  assert.equal(left.status?.conditions?.find((c) => c.type === 'Identified'), undefined, 'no failure recorded');
});
