// Node conditions, as node-problem-detector sets them, kept as a projection of this node's Abnormals:
//   - at start, every condition the rule files declare is written (NPD restores the defaults);
//   - a condition is True while an Abnormal from a permanent rule of that condition is open: not
//     recovered (any phase but Succeeded) and not over (its source has not said the fault is gone,
//     spec.occurrences.endedAt, as a custom plugin's check does when it passes again);
//   - otherwise it is False, with the default reason and message its rule file declares.
// So, beyond NPD, a recovery clears the condition, and so does deleting the Abnormal (by hand, or by
// garbage collection once a Failed one has waited gc.failedTTLSeconds). Nothing is kept but the
// Abnormals: a restart computes the same conditions again.
//
// Only declared conditions are written, and only for the (condition, reason) pairs the loaded rules
// name: an Abnormal anyone can create by hand cannot set Ready, or any condition of its choosing.
// A change of status is also told as an Event on the Node (Warning when set, Normal when cleared).
import type { Logger } from 'pino';
import type { Abnormal } from '../api/types.generated.js';
import { Backoff } from '../lib/backoff.js';
import type { AbnormalStore, NodeCondition, NodeReporter } from '../store/store.js';

/** A condition a rule file declares, with the reason and message it has while no fault holds it. */
export type DeclaredCondition = { type: string; reason: string; message: string };

/** A condition message, at most (the line that set it can be long). */
const MAX_MESSAGE = 1024;

export type NodeConditionsOptions = {
  store: AbnormalStore;
  reporter: NodeReporter;
  declared: DeclaredCondition[];
  /** The permanent rules: which reasons may set which condition. */
  permanentRules: Array<{ condition: string; reason: string }>;
  log: Logger;
  /** Computed again this often whatever happens (an Abnormal deleted by hand, a write that failed). */
  resyncMs: number;
};

export class NodeConditions {
  /** What the Node holds, as last written. */
  private readonly written = new Map<string, NodeCondition>();
  private readonly allowed: Set<string>;
  private timer?: NodeJS.Timeout;
  private syncing?: Promise<void>;
  private again = false;
  private lastFailure?: string;
  /** After a failure: no write before retryAt (0.5 s doubling to 30 s), whatever nudges it. */
  private readonly backoff = new Backoff();
  private retryAt = 0;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly opts: NodeConditionsOptions) {
    this.allowed = new Set(opts.permanentRules.map((r) => pairKey(r.condition, r.reason)));
  }

  async start(): Promise<void> {
    if (this.opts.declared.length === 0) return;
    await this.sync();
    this.timer = setInterval(() => this.nudge(), this.opts.resyncMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    await this.syncing;
  }

  /** Something changed (an Abnormal created, moved on, ended): compute the conditions again soon. */
  nudge(): void {
    if (this.opts.declared.length === 0 || this.stopped) return;
    // After a failed write (no Node of that name, no grant), not at every change: once the backoff is over.
    if (this.lastFailure !== undefined && Date.now() < this.retryAt) {
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.nudge();
      }, this.retryAt - Date.now());
      return;
    }
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = this.sync().finally(() => {
      this.syncing = undefined;
      if (this.again) {
        this.again = false;
        this.nudge();
      }
    });
  }

  /** The conditions the Node should hold now, one per declared type. */
  desired(abnormals: Abnormal[]): NodeCondition[] {
    const holding = new Map<string, Abnormal>();
    for (const abnormal of abnormals) {
      const rule = abnormal.spec.context?.rule as { type?: unknown; condition?: unknown; reason?: unknown } | undefined;
      if (rule?.type !== 'permanent' || typeof rule.condition !== 'string' || typeof rule.reason !== 'string') continue;
      if (!this.allowed.has(pairKey(rule.condition, rule.reason)) || !isOpen(abnormal)) continue;
      const other = holding.get(rule.condition);
      if (!other || newer(abnormal, other)) holding.set(rule.condition, abnormal);
    }
    return this.opts.declared.map(({ type, reason, message }) => {
      const abnormal = holding.get(type);
      if (!abnormal) return { type, status: 'False', reason, message };
      const rule = abnormal.spec.context!.rule as { reason: string };
      return { type, status: 'True', reason: rule.reason, message: nodeMessageOf(abnormal) };
    });
  }

  private async sync(): Promise<void> {
    let changed: NodeCondition[];
    try {
      changed = this.desired(await this.opts.store.listOfNode()).filter((c) => !same(this.written.get(c.type), c));
      if (changed.length === 0) return;
      await this.opts.reporter.setConditions(changed);
    } catch (err) {
      // Said once per cause (a missing Node, a missing grant), not at every resync.
      const why = (err as Error).message;
      this.retryAt = Date.now() + this.backoff.next();
      if (why !== this.lastFailure) this.opts.log.warn({ err: why, retryInMs: this.retryAt - Date.now() }, 'could not set the node conditions; trying again after a backoff');
      this.lastFailure = why;
      return;
    }
    this.lastFailure = undefined;
    this.backoff.reset();
    for (const condition of changed) {
      const before = this.written.get(condition.type);
      this.written.set(condition.type, condition);
      this.opts.log.info({ condition }, 'node condition set');
      if (condition.status === 'True' && before?.status !== 'True') {
        await this.opts.reporter.recordNodeEvent('Warning', condition.reason, condition.message);
      } else if (condition.status === 'False' && before?.status === 'True') {
        await this.opts.reporter.recordNodeEvent('Normal', condition.reason, condition.message);
      }
    }
  }
}

const pairKey = (condition: string, reason: string) => `${condition}\u0000${reason}`;

/** Not recovered, and not over: seen again after its source last said it was over, if it ever did. */
function isOpen(abnormal: Abnormal): boolean {
  if (abnormal.status?.phase === 'Succeeded' || abnormal.metadata?.deletionTimestamp) return false;
  const { endedAt, lastSeen } = abnormal.spec.occurrences ?? {};
  return !endedAt || (lastSeen !== undefined && Date.parse(lastSeen) > Date.parse(endedAt));
}

function newer(a: Abnormal, b: Abnormal): boolean {
  const at = (x: Abnormal) => Date.parse(x.spec.occurrences?.lastSeen ?? String(x.metadata?.creationTimestamp ?? '')) || 0;
  return at(a) !== at(b) ? at(a) > at(b) : String(a.metadata?.name) > String(b.metadata?.name);
}

/**
 * What the Node is told of an Abnormal, in a condition or an Event: the line (or the plugin's output)
 * that made it, and the Abnormal to look at; at most MAX_MESSAGE characters.
 */
export function nodeMessageOf(abnormal: Abnormal): string {
  const plugin = abnormal.spec.context?.plugin as { output?: unknown } | undefined;
  const text = abnormal.spec.log?.logEntry ?? (typeof plugin?.output === 'string' ? plugin.output : '');
  const where = `Abnormal ${abnormal.metadata?.namespace ? `${abnormal.metadata.namespace}/` : ''}${abnormal.metadata?.name}`;
  const line = text.split('\n')[0]!.slice(0, MAX_MESSAGE - where.length - 3);
  return line ? `${line} (${where})` : where;
}

function same(a: NodeCondition | undefined, b: NodeCondition): boolean {
  return a !== undefined && a.status === b.status && a.reason === b.reason && a.message === b.message;
}
