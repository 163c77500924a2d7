// node-problem-detector's custom-plugin monitors, run with NPD's contract: every `invoke_interval`
// each rule's plugin runs (`path` with `args`, at most `concurrency` of a monitor at once, killed at its
// `timeout`), and its exit status says how the node is: 0 OK, 1 a problem, anything else (or a
// timeout) unknown. Its output, trimmed and cut at `max_output_length`, is the message.
//
// Beyond NPD, a problem is a symptom like any other: the sink makes it an Abnormal, which the pipeline
// diagnoses, and a permanent rule's condition on the Node follows that Abnormal
// (pipeline/node-conditions.ts). When the plugin passes again, the symptom has ended: the sink records
// that on the Abnormal, which clears the condition. An unknown result changes nothing, and is logged
// when it begins and when it ends.
//
// Rules that run the same plugin with the same arguments (NPD's NTP monitor has a temporary and a
// permanent rule on one script) run it once per interval, and one symptom stands for them: the
// permanent rule's, so the condition is set.
//
// A plugin runs as root, so it must be a file only root could have written (agent/lib/trusted-file.ts);
// a relative path is taken from the agent's working directory, as NPD takes it from its own.
import path from 'node:path';
import type { Logger } from 'pino';
import { runCapped } from '../lib/run-capped.js';
import { openTrusted } from '../lib/trusted-file.js';
import type { PluginMonitorSpec, PluginRuleSpec } from './monitor-files.js';
import type { Symptom, SymptomSource } from './source.js';

/** What NPD reads of a plugin's output before cutting it at max_output_length. */
const MAX_READ = 64 * 1024;

type Status = 'ok' | 'problem' | 'unknown';
type Plugin = { path: string; args: string[]; timeoutMs: number; rules: PluginRuleSpec[]; last?: Status };

export class PluginMonitorSource implements SymptomSource {
  readonly name: string;
  /** Runs whose result was unknown (for the figures, and tests). */
  unknown = 0;
  private readonly plugins: Plugin[] = [];
  private timer?: NodeJS.Timeout;
  private readonly running = new Set<Promise<void>>();
  /** Plugins waiting for their turn, and those waiting or running (never queued twice). */
  private readonly queue: Plugin[] = [];
  private readonly busy = new Set<Plugin>();
  private readonly abort = new AbortController();
  private emit: (symptom: Symptom) => void = () => {};

  constructor(
    private readonly monitor: PluginMonitorSpec,
    private readonly opts: { log: Logger; workingDirectory?: string },
  ) {
    this.name = `${monitor.source} (custom plugins)`;
    for (const rule of monitor.rules) {
      const same = this.plugins.find((p) => p.path === rule.path && p.timeoutMs === rule.timeoutMs && p.args.join('\0') === rule.args.join('\0'));
      if (same) same.rules.push(rule);
      else this.plugins.push({ path: rule.path, args: rule.args, timeoutMs: rule.timeoutMs, rules: [rule] });
    }
  }

  async start(emit: (symptom: Symptom) => void): Promise<void> {
    this.emit = emit;
    this.round(); // NPD runs them at start too
    this.timer = setInterval(() => this.round(), this.monitor.intervalMs);
    this.opts.log.info({ source: this.name, plugins: this.plugins.length, intervalMs: this.monitor.intervalMs }, 'custom plugin monitor started');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.abort.abort();
    await Promise.all(this.running);
  }

  /**
   * One interval's runs: every plugin not running or waiting already joins the one queue, and at most
   * `concurrency` run at a time, across rounds (a plugin slower than the interval is never run twice
   * at once).
   */
  private round(): void {
    for (const plugin of this.plugins) if (!this.busy.has(plugin)) {
      this.busy.add(plugin);
      this.queue.push(plugin);
    }
    this.pump();
  }

  private pump(): void {
    while (this.running.size < this.monitor.concurrency && this.queue.length > 0 && !this.abort.signal.aborted) {
      const plugin = this.queue.shift()!;
      const run: Promise<void> = this.check(plugin).finally(() => {
        this.busy.delete(plugin);
        this.running.delete(run);
        this.pump();
      });
      this.running.add(run);
    }
  }

  private async check(plugin: Plugin): Promise<void> {
    const { status, output } = await this.run(plugin);
    if (this.abort.signal.aborted) return;
    const before = plugin.last;
    plugin.last = status;
    const rule = plugin.rules.find((r) => r.type === 'permanent') ?? plugin.rules[0]!;
    if (status === 'unknown') {
      this.unknown++;
      if (before !== 'unknown') this.opts.log.warn({ source: this.name, plugin: plugin.path, output }, 'custom plugin: the result is unknown (exit status not 0 or 1, or a timeout); the conditions stay as they are');
      return;
    }
    if (before === 'unknown') this.opts.log.info({ source: this.name, plugin: plugin.path, status }, 'custom plugin: a result again');
    const symptom: Symptom = {
      source: 'Custom',
      reason: rule.reason,
      detail: {
        context: {
          rule: { source: this.monitor.source, reason: rule.reason, type: rule.type, ...(rule.condition ? { condition: rule.condition } : {}) },
          plugin: { path: plugin.path, args: plugin.args, output },
        },
      },
      seenAt: new Date(),
    };
    // A pass after anything but a pass (the first one included: a fault the last run left open) ends the symptom.
    if (status === 'ok') {
      if (before !== 'ok') this.emit({ ...symptom, endedAt: new Date().toISOString() });
      return;
    }
    this.emit(symptom);
  }

  private async run(plugin: Plugin): Promise<{ status: Status; output: string }> {
    const cwd = this.opts.workingDirectory ?? process.cwd();
    const file = path.resolve(cwd, plugin.path);
    const opened = await openTrusted(file);
    if ('refused' in opened) return { status: 'unknown', output: opened.missing ? `${file} is not there` : `${file} is refused: it would run as root, and ${opened.refused}` };
    try {
      const result = await runCapped(opened.handle, {
        args: plugin.args, cwd, timeoutMs: plugin.timeoutMs, maxBytes: MAX_READ, signal: this.abort.signal,
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      });
      const output = result.stdout.trim().slice(0, this.monitor.maxOutputLength);
      if (result.timedOut) return { status: 'unknown', output: `timed out after ${plugin.timeoutMs / 1000} s` };
      if (result.error) return { status: 'unknown', output: result.error };
      return { status: result.code === 0 ? 'ok' : result.code === 1 ? 'problem' : 'unknown', output };
    } finally {
      await opened.handle.close();
    }
  }
}
