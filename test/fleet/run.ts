// `npm run fleet [-- --agents N]`: a simulated fleet against one test apiserver. N real `nodemedic
// agent` processes (default 100), each with its own node name, the kube store, the DaemonSet's
// NODE_OPTIONS, and no source but a file of its own (and the cluster's Warning events, which one agent
// at a time watches). Measured from the apiserver's own /metrics and the agents' /proc:
//   1. idle: API requests per agent per minute, watches per agent, the apiserver's CPU and memory;
//   2. a burst: one new symptom on every node at once — creates and writes per second the apiserver
//      sees — and every Abnormal diagnosed and recovered through a cluster budget of 3, the number of
//      nodes recovering at once measured at the recoverer;
//   3. the event-watching agent fed Warning events at 1,000/s for a minute (lag, memory), then
//      SIGKILLed: how long until another agent holds its lock.
// Writes its section of docs/benchmarks.md, with each figure extrapolated to 5,000 nodes.
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import { NODE_LABEL } from '../../agent/api/crds.js';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { loadKubeClient } from '../../agent/kube/client.js';
import { loadKubeConnection } from '../../agent/kube/kubeconfig.js';
import { writeSection } from '../bench/doc-section.js';
import { rssMiB } from '../bench/memory.js';
import { AGENT_NAMESPACE, REPO_ROOT, startCluster } from '../cluster/cluster.js';
import { asShipped, registerProcessor, shippedLine, spawnAgent, startedPort } from '../helpers/agent.js';
import { applyAgentRBAC, applyCRDs } from '../helpers/kube.js';
import { answer, ProcessorServer } from '../helpers/processor-server.js';
import { waitFor } from '../helpers/wait.js';

const agentsFlag = process.argv.indexOf('--agents');
const N = agentsFlag > 0 ? Number(process.argv[agentsFlag + 1]) : 100;
const FLEET = 5000;
const BUDGET = 3;
const RECOVERY_MS = 1000;
const EVENTS_PER_SECOND = 1000;
const EVENT_SECONDS = 60;
const IDLE_SECONDS = 60;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nodeName = (i: number) => `fleet-${String(i).padStart(4, '0')}`;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** One agent of the fleet: a real process, its /metrics port read from its start line. */
class FleetAgent {
  readonly child: ReturnType<typeof spawnAgent>;
  port = 0;
  constructor(readonly node: string, readonly dir: string) {
    this.child = spawnAgent(['--config', path.join(dir, 'config.yaml')], path.join(dir, 'agent.log'), asShipped());
  }
  async started(): Promise<this> {
    this.port = await startedPort(path.join(this.dir, 'agent.log'), 120_000);
    return this;
  }
  async metric(name: string): Promise<number> {
    const read = async () => (await fetch(`http://127.0.0.1:${this.port}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    // A kept-alive connection the agent closed just as it was reused ("other side closed", when this
    // process is too busy feeding to drop it in time) fails the read: it is asked once more, anew.
    return sumOf(await read().catch(read), name);
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await this.child.exited;
  }
}

/** A Prometheus metric summed over the label sets that contain every `label="value"` given. */
function sumOf(text: string, name: string, labels: string[] = []): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !/[ {]/.test(line[name.length] ?? '')) continue;
    if (labels.every((l) => line.includes(l))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The apiserver's /metrics, read as the admin (Prometheus text, so not through the JSON client). */
async function apiserverMetrics(): Promise<string> {
  const { server, ca, token } = loadKubeConnection(cluster.kubeconfigs.admin);
  return new Promise((resolve, reject) => {
    https.get(`${server}/metrics`, { ca, headers: { Authorization: `Bearer ${token}` }, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text)).on('error', reject);
    }).on('error', reject);
  });
}

/** Requests the agents made (resource requests only: the runner's own /metrics reads are not), by verb. */
function requestsByVerb(text: string): Map<string, number> {
  const byVerb = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{') || /[{,]resource=""/.test(line)) continue;
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? '?';
    byVerb.set(verb, (byVerb.get(verb) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return byVerb;
}
const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const minus = (a: Map<string, number>, b: Map<string, number>) => new Map([...a].map(([k, v]) => [k, v - (b.get(k) ?? 0)]));
const WRITES = ['POST', 'PUT', 'PATCH', 'DELETE'];

const base = await mkdtemp(path.join(tmpdir(), 'nodemedic-fleet-'));
const cluster = await startCluster();
process.env.NODEMEDIC_TEST_KUBECONFIG = cluster.kubeconfigs.admin;
process.env.NODEMEDIC_TEST_AGENT_KUBECONFIG = cluster.kubeconfigs.agent;
process.env.NODEMEDIC_TEST_UNPRIVILEGED_KUBECONFIG = cluster.kubeconfigs.unprivileged;
process.env.NODEMEDIC_TEST_KUBE_BIN = cluster.binDir;
const server = await new ProcessorServer().start();
const fleet: FleetAgent[] = [];
// The feeder sends 100 events every 100 ms and keeps its connections between bursts, so that the feed
// measures the apiserver, not TLS handshakes (it made no difference: 427 a second, against 536 in
// a run that opened them anew — on this 2-core machine the apiserver and etcd are the limit).
const admin = loadKubeClient(cluster.kubeconfigs.admin, 128);
/** The agent holding the event watchers' lock, if one does. */
const eventLockHolder = async () =>
  (await admin.get<{ spec?: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${AGENT_NAMESPACE}/leases/nodemedic-event-watcher`))?.spec?.holderIdentity;
/** Stops everything; the agents' logs are kept when the run failed. */
const stopAll = async (failed = false) => {
  const died = fleet.filter((a) => a.child.exitCode !== null || a.child.signalCode !== null).map((a) => `${a.node} (${a.child.exitCode ?? a.child.signalCode})`);
  if (died.length > 0) console.error(`agents that ended before the run did: ${died.join(', ')}`);
  await Promise.all(fleet.map((a) => a.stop('SIGKILL')));
  admin.close();
  await server.stop();
  await cluster.stop();
  if (failed) console.error(`the run failed: the agents' logs are in ${base}`);
  else await rm(base, { recursive: true, force: true });
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stopAll().finally(() => process.exit(130)));

/** Ends the burst's sampling of the apiserver, if it is running (set when it starts). */
let stopSampling = () => {};
try {
  await applyCRDs();
  await applyAgentRBAC();
  // The recoverer: holds each call RECOVERY_MS and records how many nodes it was recovering at once.
  const recovering = new Set<string>();
  let mostNodesAtOnce = 0;
  let recoveries = 0;
  await registerProcessor('diagnosers', AGENT_NAMESPACE, 'fleet-diagnose', { url: server.route('/diagnose', (a) => answer(a, { identifiable: true })) });
  await registerProcessor('recoverers', AGENT_NAMESPACE, 'fleet-recover', {
    url: server.route('/recover', async (a) => {
      recovering.add(a.spec.nodeName);
      mostNodesAtOnce = Math.max(mostNodesAtOnce, recovering.size);
      recoveries++;
      await pause(RECOVERY_MS);
      recovering.delete(a.spec.nodeName);
      return answer(a, { recoverable: true });
    }),
  });

  const before = await apiserverMetrics();
  // Start the fleet ten at a time (each start is half a CPU-second of module loading on this machine).
  for (let i = 0; i < N; i++) {
    const dir = path.join(base, nodeName(i));
    await mkdir(dir, { recursive: true });
    const log = path.join(dir, 'app.log');
    await writeFile(log, '');
    await writeFile(path.join(dir, 'rules.yaml'), `kind: LogRules\nplugin: file\nlogPath: ${log}\nsource: fleet\nrules:\n` +
      `  - {reason: FleetFault, pattern: 'fleet: fault [0-9]+', abnormal: {assignedDiagnosers: [{namespace: ${AGENT_NAMESPACE}, name: fleet-diagnose}], assignedRecoverers: [{namespace: ${AGENT_NAMESPACE}, name: fleet-recover}], assignedInformationCollectors: []}}\n`);
    await writeFile(path.join(dir, 'config.yaml'), [
      `nodeName: ${nodeName(i)}`, 'store: kube', `kubeconfig: ${cluster.kubeconfigs.agent}`, `stateDir: ${dir}/state`, 'logLevel: info', 'listen: 127.0.0.1:0',
      `sources: {defaultRules: false, kernelLogFallback: "", ruleFiles: [${path.join(dir, 'rules.yaml')}]}`,
      'stuckPods: {enabled: false}', 'events: {enabled: true}',
      `recovery: {maxPerHour: 1000, cooldownSeconds: 0, maxNodesAtOnce: ${BUDGET}}`,
    ].join('\n') + '\n');
    fleet.push(new FleetAgent(nodeName(i), dir));
    if (fleet.length % 10 === 0 || i === N - 1) await Promise.all(fleet.slice(-10).map((a) => a.started()));
  }
  console.log(`${N} agents started`);

  // 1. Idle: once every agent has listed and watches what it watches (catalog, its Abnormals: 5
  // each) and one holds the event lock, a minute measured.
  await waitFor('every agent watching, and the event lock held', async () => {
    const watching = sumOf(await apiserverMetrics(), 'apiserver_registered_watchers') - sumOf(before, 'apiserver_registered_watchers');
    return watching >= 5 * N && (await eventLockHolder()) ? true : undefined;
  }, 300_000);
  const idleFrom = await apiserverMetrics();
  await pause(IDLE_SECONDS * 1000);
  const idleTo = await apiserverMetrics();
  const idleRequests = minus(requestsByVerb(idleTo), requestsByVerb(idleFrom));
  const watchers = sumOf(idleTo, 'apiserver_registered_watchers') - sumOf(before, 'apiserver_registered_watchers');
  const apiCpu = (sumOf(idleTo, 'process_cpu_seconds_total') - sumOf(idleFrom, 'process_cpu_seconds_total')) / IDLE_SECONDS;
  const apiMemBefore = sumOf(before, 'process_resident_memory_bytes') / 2 ** 20;
  const apiMem = sumOf(idleTo, 'process_resident_memory_bytes') / 2 ** 20;
  const agentRss = fleet.map((a) => rssMiB(a.child.pid!));
  const idle = {
    perAgentPerMinute: total(idleRequests) / N / (IDLE_SECONDS / 60),
    byVerb: [...idleRequests].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', '),
    watchesPerAgent: watchers / N,
    apiCpuPercent: apiCpu * 100, apiMem, apiMemBefore,
    agentRssMean: agentRss.reduce((a, b) => a + b, 0) / N, agentRssMax: Math.max(...agentRss),
  };
  console.log('idle', idle);

  // 2. The burst: one new symptom on every node at once; the apiserver's request counters read each second.
  const burstStart = Date.now();
  const perSecond: Array<{ creates: number; writes: number }> = [];
  let last = requestsByVerb(await apiserverMetrics());
  let sampling = true;
  let samplesMissed = 0;
  const sampler = (async () => {
    while (sampling) {
      await pause(1000);
      // An overloaded apiserver may not answer in time: that second is left out (and counted), and
      // the next reading covers it.
      const now = await apiserverMetrics().then(requestsByVerb, () => undefined);
      if (!now) {
        samplesMissed++;
        continue;
      }
      const d = minus(now, last);
      perSecond.push({ creates: d.get('POST') ?? 0, writes: WRITES.reduce((s, v) => s + (d.get(v) ?? 0), 0) });
      last = now;
    }
  })();
  stopSampling = () => (sampling = false);
  const burstFrom = requestsByVerb(await apiserverMetrics());
  await Promise.all(fleet.map((a) => appendFile(path.join(a.dir, 'app.log'), 'fleet: fault 1\n')));
  // Read until the burst is over; a read the overloaded apiserver fails is asked again.
  const abnormals = () => admin.list<Abnormal>(`/apis/nodemedic.io/v1alpha1/namespaces/${AGENT_NAMESPACE}/abnormals`, { labelSelector: NODE_LABEL })
    .catch((err: Error) => (console.error(`listing the Abnormals failed (asked again): ${err.message}`), { items: [] as Abnormal[] }));
  const allCreatedAt = await waitFor('an Abnormal on every node', async () => ((await abnormals()).items.length >= N ? Date.now() : undefined), 300_000);
  const finished = await waitFor('every Abnormal finished', async () => {
    const items = (await abnormals()).items;
    return items.length >= N && items.every((a) => isTerminal(a.status?.phase)) ? items : undefined;
  }, 900_000);
  const allDoneAt = Date.now();
  sampling = false;
  await sampler;
  const burstRequests = minus(requestsByVerb(await apiserverMetrics()), burstFrom);
  const succeeded = finished.filter((a) => a.status?.phase === 'Succeeded').length;
  // Those that did not succeed, and why, for the report.
  const otherwise = finished.filter((a) => a.status?.phase !== 'Succeeded').map((a) => `${a.spec.nodeName}: ${a.status?.phase} ${a.status?.reason ?? ''} (${a.status?.message ?? ''})`);
  for (const line of otherwise) console.log(`not Succeeded: ${line}`);
  const burst = {
    createdS: (allCreatedAt - burstStart) / 1000, doneS: (allDoneAt - burstStart) / 1000,
    peakCreates: Math.max(...perSecond.map((p) => p.creates)), peakWrites: Math.max(...perSecond.map((p) => p.writes)),
    writes: WRITES.reduce((s, v) => s + (burstRequests.get(v) ?? 0), 0), requests: total(burstRequests), samplesMissed,
    succeeded, otherwise, recoveries, mostNodesAtOnce,
  };
  console.log('burst', burst);

  // 3. Warning events at EVENTS_PER_SECOND for EVENT_SECONDS, about the fleet's nodes, to the agent holding the lock.
  const holder = await waitFor('an agent to hold the event-watcher lock', async () => (await eventLockHolder()) || undefined, 120_000);
  const leader = fleet.find((a) => a.node === holder)!;
  const seenBefore = await leader.metric('nodemedic_symptoms_total');
  const leaderRssBefore = rssMiB(leader.child.pid!);
  let created = 0;
  let failedCreates = 0;
  let leaderRssMax = leaderRssBefore;
  let worstBacklog = 0;
  const feedStart = Date.now();
  const ticks = EVENT_SECONDS * 10;
  let inFlight: Array<Promise<unknown>> = [];
  for (let tick = 0; tick < ticks; tick++) {
    const due = feedStart + tick * 100;
    if (Date.now() < due) await pause(due - Date.now());
    inFlight.push(...Array.from({ length: EVENTS_PER_SECOND / 10 }, (_, k) => {
      const n = tick * (EVENTS_PER_SECOND / 10) + k;
      const node = nodeName(n % N);
      const at = new Date().toISOString();
      return admin.request('POST', '/api/v1/namespaces/default/events', {
        body: {
          metadata: { name: `fleet-warning-${n}` }, type: 'Warning', reason: 'FleetWarning', message: `warning ${n} about ${node}`,
          involvedObject: { kind: 'Node', name: node, uid: node }, source: { component: 'fleet' }, firstTimestamp: at, lastTimestamp: at, count: 1,
        },
      }).then(() => created++, () => failedCreates++);
    }));
    // Each second: what was sent in it is awaited (so what is in flight stays bounded), then the leader's count read.
    if (tick % 10 === 9) {
      await Promise.all(inFlight);
      inFlight = [];
      const seen = (await leader.metric('nodemedic_symptoms_total')) - seenBefore;
      worstBacklog = Math.max(worstBacklog, created - seen);
      leaderRssMax = Math.max(leaderRssMax, rssMiB(leader.child.pid!));
    }
  }
  const feedS = (Date.now() - feedStart) / 1000;
  const caughtUpAt = await waitFor('the event watcher to have seen every event', async () => ((await leader.metric('nodemedic_symptoms_total')) - seenBefore >= created ? Date.now() : undefined), 600_000);
  const events = {
    created, failedCreates, achievedPerSecond: created / feedS, feedS,
    worstBacklog, catchUpS: (caughtUpAt - feedStart) / 1000 - feedS,
    leaderRssBefore, leaderRssMax,
  };
  console.log('events', events);
  const killedAt = Date.now();
  await leader.stop('SIGKILL');
  const successor = await waitFor('another agent to take the event-watcher lock', async () => {
    const h = (await eventLockHolder());
    return h && h !== holder ? h : undefined;
  }, 300_000);
  const takeoverS = (Date.now() - killedAt) / 1000;
  console.log('takeover', { holder, successor, takeoverS });

  // The report, with each figure as it would be for FLEET nodes.
  const scale = FLEET / N;
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB; agents on Node ${process.version} started as shipped (${shippedLine()}); kube-apiserver v1.20.2 and etcd on the same machine`;
  const apiMemPerAgent = (apiMem - apiMemBefore) / N;
  await writeSection(path.join(REPO_ROOT, 'docs/benchmarks.md'), 'fleet', `
## A simulated fleet: ${N} agents, one apiserver

Written by \`npm run fleet\` (test/fleet/run.ts) on ${new Date().toISOString().slice(0, 10)}, commit ${commit}: ${machine}.
${N} real agent processes, each its own node name, on the kube store, with a file source each and the
cluster's Warning events (one agent at a time watches them); figures from the apiserver's /metrics and
the agents' /proc. The last column is each figure extrapolated linearly to ${FLEET.toLocaleString('en')} nodes, on paper.

| measured | ${N} agents | at ${FLEET.toLocaleString('en')} nodes |
|---|---|---|
| API requests per agent per minute, idle (${idle.byVerb} in ${IDLE_SECONDS} s) | ${round(idle.perAgentPerMinute, 2)} | ${Math.round(idle.perAgentPerMinute * FLEET).toLocaleString('en')} a minute (${round((idle.perAgentPerMinute * FLEET) / 60)} a second) |
| watches per agent | ${round(idle.watchesPerAgent, 2)} | ${Math.round(idle.watchesPerAgent * FLEET).toLocaleString('en')} watches |
| apiserver CPU, idle fleet | ${round(idle.apiCpuPercent)} % of a core | ${round((idle.apiCpuPercent * scale) / 100, 2)} cores |
| apiserver resident memory | ${Math.round(idle.apiMem)} MiB (${Math.round(idle.apiMemBefore)} before the agents: ${round(apiMemPerAgent, 2)} MiB per agent) | ${Math.round(idle.apiMemBefore + apiMemPerAgent * FLEET).toLocaleString('en')} MiB |
| agent resident memory (mean, max) | ${round(idle.agentRssMean)}, ${round(idle.agentRssMax)} MiB | — |
| a new symptom on every node at once: all Abnormals created in | ${round(burst.createdS)} s (peak ${burst.peakCreates} creates/s, ${burst.peakWrites} writes/s${burst.samplesMissed ? ` in the seconds sampled, ${burst.samplesMissed} not answered in time` : ''}; ${burst.writes} writes, ${burst.requests} requests in all: ${round(burst.requests / N, 1)} per Abnormal) | ${Math.round(burst.peakWrites * scale).toLocaleString('en')} writes/s at the same per-node rate |
| …diagnosed and recovered (recoverer holds each ${RECOVERY_MS / 1000} s, cluster budget ${BUDGET}) | ${burst.succeeded} of ${N} Succeeded${burst.otherwise.length ? ` (the others: ${burst.otherwise.join('; ')})` : ''}, all finished in ${round(burst.doneS)} s; ${burst.recoveries} recoveries; **at most ${burst.mostNodesAtOnce} nodes recovering at once** | ${round((FLEET / BUDGET) * (burst.doneS / (N / BUDGET)) / 60)} minutes to recover every node, ${BUDGET} at a time |
| Warning events fed to the event-watching agent (asked: ${EVENTS_PER_SECOND}/s for ${EVENT_SECONDS} s) | ${events.created.toLocaleString('en')} created (${Math.round(events.achievedPerSecond)}/s achieved, ${events.failedCreates} refused); worst backlog ${events.worstBacklog} events; caught up ${round(Math.max(0, events.catchUpS))} s after the feed ended; its memory ${Math.round(events.leaderRssBefore)} → at most ${Math.round(events.leaderRssMax)} MiB | one agent watches all events whatever the fleet's size |
| the event-watching agent SIGKILLed: another holds the lock after | ${round(takeoverS)} s (${holder} → ${successor}) | the same |

What would break first at ${FLEET.toLocaleString('en')} nodes: the burst. One symptom on every node at once cost
${round(burst.requests / N, 1)} requests per Abnormal here (its create, status writes through the pipeline, Events,
and the budget Lease read by every node waiting for a slot); at ${FLEET.toLocaleString('en')} nodes the first seconds would
ask ${Math.round(burst.peakWrites * scale).toLocaleString('en')} writes a second, ${round((burst.peakWrites * scale) / events.achievedPerSecond)} times the ${Math.round(events.achievedPerSecond)} creates a second this machine's apiserver
accepted while the events were fed. The apiserver's priority and fairness would queue them and refuse
the rest (429), and each agent's sink keeps what was refused and tries again, so nothing is lost — but
the last Abnormal would appear minutes late. The next limits are linear and known: ${Math.round(idle.watchesPerAgent * FLEET).toLocaleString('en')}
watches (one connection each: the agent speaks HTTP/1.1) and about ${Math.round(idle.apiMemBefore + apiMemPerAgent * FLEET).toLocaleString('en')} MiB in the apiserver;
idle traffic of ${round((idle.perAgentPerMinute * FLEET) / 60)} requests a second, nearly all the event lock's followers checking it
(read from the apiserver's cache, not etcd). Recovery is held to ${BUDGET} nodes at a time by design: a fault on
every node takes ${round((FLEET / BUDGET) * (burst.doneS / (N / BUDGET)) / 60)} minutes to heal at this pace — raise recovery.maxNodesAtOnce for faults
whose fix is safe to run widely.
`);
  console.log(`wrote the fleet section of docs/benchmarks.md`);
} catch (err) {
  console.error(err);
  stopSampling();
  await stopAll(true);
  process.exit(1);
}
await stopAll();
