// A log source: a reader of lines (kernel log, file, journal: agent/node) and a rule set; each match becomes a
// symptom. A rule with `collect` keeps the lines after its match (a kernel stack trace) and emits one
// symptom with all of them: after `maxLines`, at a line matching `until`, or after a second of quiet.
import type { Logger } from 'pino';
import { LIMITS } from '../api/crds.js';
import { fitText } from '../api/limits.js';
import type { LineReader } from '../node/line-reader.js';
import { LogMatcher, type CompiledRule, type RuleSet } from './rules.js';
import type { Symptom, SymptomSource } from './source.js';

const QUIET_MS = 1000;

type Collecting = { rule: CompiledRule; lines: string[]; timer: NodeJS.Timeout };

export class LogSource implements SymptomSource {
  readonly name: string;
  private readonly matcher: LogMatcher;
  private collecting: Collecting[] = [];
  private emit: (symptom: Symptom) => void = () => {};

  constructor(
    private readonly reader: LineReader,
    private readonly rules: RuleSet,
    private readonly log: Logger,
  ) {
    this.name = `${rules.source} (${reader.where})`;
    this.matcher = new LogMatcher(rules);
  }

  get lost(): number {
    return this.reader.lost ?? 0;
  }

  async start(emit: (symptom: Symptom) => void): Promise<void> {
    this.emit = emit;
    await this.reader.start((line) => this.onLine(line));
    this.log.info({ source: this.name, rules: this.rules.rules.length }, 'log source started');
  }

  async stop(): Promise<void> {
    await this.reader.stop();
    for (const c of this.collecting) this.finish(c); // a trace cut short is still a symptom
  }

  private onLine(line: string): void {
    const matches = this.matcher.push(line);
    for (const c of [...this.collecting]) {
      // Kernel reports do not nest: a line that starts a new one ends the traces being collected.
      if (matches.length > 0) {
        this.finish(c);
        continue;
      }
      c.lines.push(line);
      if (c.lines.length > (c.rule.collect?.maxLines ?? 0) || c.rule.until?.test(line)) this.finish(c);
      else c.timer.refresh();
    }
    for (const match of matches) {
      if (!match.rule.collect) {
        this.emitMatch(match.rule, match.text);
        continue;
      }
      const c: Collecting = { rule: match.rule, lines: [match.text], timer: setTimeout(() => this.finish(c), QUIET_MS) };
      this.collecting.push(c);
    }
  }

  private finish(c: Collecting): void {
    clearTimeout(c.timer);
    this.collecting = this.collecting.filter((other) => other !== c);
    this.emitMatch(c.rule, c.lines.join('\n'));
  }

  private emitMatch(rule: CompiledRule, text: string): void {
    this.emit({
      source: 'Log',
      reason: rule.reason,
      detail: {
        ...rule.abnormal,
        log: { filePath: this.reader.where, logEntry: fitText(text, LIMITS.logEntry) },
        context: { rule: { source: this.rules.source, reason: rule.reason, type: rule.type ?? 'temporary', ...(rule.condition ? { condition: rule.condition } : {}) } },
      },
      seenAt: new Date(),
    });
  }
}
