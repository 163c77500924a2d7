// Disk usage: identifies a filesystem fuller than a threshold. Reads spec.context.path (default "/")
// and spec.context.thresholdPercent (default 90). It looks only at Abnormals about a disk — one that
// names a path or threshold, or whose rule or alert speaks of a disk or filesystem — so a full disk
// never stands in as the diagnosis of an unrelated fault (a stuck pod, say). The figure is df's: used / (used + available to
// unprivileged users), so reserved blocks count as full, as they do for a pod writing there.
import { statfs } from 'node:fs/promises';
import { Reason } from '../agent/api/reasons.js';
import { BUILTIN_NAMESPACE, failure, type Processor } from '../agent/processors/contract.js';
import { evidence } from '../agent/processors/evidence.js';

export const diskUsage: Processor = {
  kind: 'Diagnoser',
  ref: { namespace: BUILTIN_NAMESPACE, name: 'disk-usage' },
  async run(abnormal) {
    const context = abnormal.spec.context ?? {};
    const about = JSON.stringify([(context.rule as { reason?: unknown } | undefined)?.reason, abnormal.spec.prometheusAlert?.labels?.alertname]);
    if (context.path === undefined && context.thresholdPercent === undefined && !/disk|filesystem|readonly|no ?space/i.test(about)) {
      return { ok: true, identified: false, message: 'not about a disk (no spec.context.path, no disk rule or alert)' };
    }
    const path = typeof context.path === 'string' ? context.path : '/';
    const threshold = typeof context.thresholdPercent === 'number' ? context.thresholdPercent : 90;
    let stats;
    try {
      stats = await statfs(path);
    } catch (err) {
      return failure(Reason.StatfsFailed, `cannot read the filesystem of ${path}: ${(err as Error).message}`);
    }
    const used = stats.blocks - stats.bfree;
    const usedPercent = Math.round((1000 * used) / Math.max(1, used + stats.bavail)) / 10;
    const identified = usedPercent >= threshold;
    return {
      ok: true,
      identified,
      reason: identified ? Reason.DiskFull : Reason.DiskNotFull,
      message: `${path} is ${usedPercent}% full (threshold ${threshold}%)`,
      context: evidence({ diskUsage: { path, usedPercent, thresholdPercent: threshold, availableBytes: stats.bavail * stats.bsize } }),
    };
  },
};
