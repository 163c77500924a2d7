// Process tree: /proc details of the processes an Abnormal is about — its shims (from
// status.context.containerShims, or found afresh) and the pids it names — with their children, two
// levels deep (a shim's children are its containers' first processes). Writes status.context.processes.
import { childrenOf, readAllStats, readCmdline, readExe, readWchan, type ProcStat } from '../agent/node/procfs.js';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { evidence, shimsOf, subjectOf, type ProcessDetails } from '../agent/processors/evidence.js';

const MAX_CHILDREN = 32;

async function details(pid: number, table: readonly ProcStat[], depth: number): Promise<ProcessDetails | undefined> {
  const stat = table.find((p) => p.pid === pid);
  if (!stat) return undefined;
  const kids = depth > 0 ? childrenOf(pid, table).slice(0, MAX_CHILDREN) : [];
  const children = (await Promise.all(kids.map((child) => details(child, table, depth - 1)))).filter((c): c is ProcessDetails => c !== undefined);
  const wchan = await readWchan(pid);
  return { ...stat, exe: await readExe(pid), cmdline: await readCmdline(pid), ...(wchan && wchan !== '0' ? { wchan } : {}), children };
}

export const processTree: Processor = {
  kind: 'InformationCollector',
  ref: { namespace: BUILTIN_NAMESPACE, name: 'process-tree' },
  async run(abnormal) {
    const shims = await shimsOf(abnormal);
    const pids = [...new Set([...shims.map((s) => s.pid), ...subjectOf(abnormal).pids])];
    if (pids.length === 0) return { ok: true };
    const table = await readAllStats();
    const found = await Promise.all(pids.map((pid) => details(pid, table, 2)));
    const gone = pids.filter((_, i) => !found[i]);
    return {
      ok: true,
      context: evidence({ processes: found.filter((p): p is ProcessDetails => p !== undefined) }),
      ...(gone.length > 0 ? { output: `no longer running: pid ${gone.join(', ')}` } : {}),
    };
  },
};
