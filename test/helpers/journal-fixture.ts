// A fixture of journald's stdout transport, for a daemon run by a test (no systemd runs here as PID 1,
// so no journald): each line the daemon writes becomes a journal entry of its unit, and a line longer
// than journald's LineMax (48 KiB by default) is cut into entries as journald cuts it, every piece but
// the last marked _LINE_BREAK=line-max. The entries are written into a real journal file by systemd's
// own systemd-journal-remote (from the export format), which journalctl then reads.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { uptime } from 'node:os';
import path from 'node:path';

const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';
/** journald.conf's LineMax default. */
export const LINE_MAX = 48 * 1024;

export class JournalFixture {
  private readonly remote;
  private partial = Buffer.alloc(0);
  private readonly bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');
  /** Entries written, and how many of them were pieces of a longer line. */
  entries = 0;
  pieces = 0;

  constructor(readonly directory: string, private readonly unit: string, private readonly pid: () => number | undefined) {
    this.remote = spawn(JOURNAL_REMOTE, [`--output=${path.join(directory, `${unit}.journal`)}`, '-'], { stdio: ['pipe', 'ignore', 'ignore'] });
  }

  /** What the daemon wrote to stdout or stderr. */
  write(chunk: Buffer): void {
    let data = Buffer.concat([this.partial, chunk]);
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10)) {
      this.line(data.subarray(0, nl));
      data = data.subarray(nl + 1);
    }
    this.partial = Buffer.from(data);
  }

  private line(line: Buffer): void {
    for (let at = 0; at < line.length || at === 0; at += LINE_MAX) {
      const piece = line.subarray(at, at + LINE_MAX);
      const last = at + LINE_MAX >= line.length;
      this.entry(piece, last ? {} : { _LINE_BREAK: 'line-max' });
      if (!last) this.pieces++;
      if (line.length === 0) break;
    }
  }

  private entry(message: Buffer, extra: Record<string, string>): void {
    const fields = {
      __REALTIME_TIMESTAMP: String(BigInt(Date.now()) * 1000n), __MONOTONIC_TIMESTAMP: String(Math.round(uptime() * 1e6)), _BOOT_ID: this.bootId,
      _SYSTEMD_UNIT: this.unit, SYSLOG_IDENTIFIER: this.unit.replace(/\.service$/, ''), _PID: String(this.pid() ?? 0), _TRANSPORT: 'stdout', PRIORITY: '6', ...extra,
    };
    const head = Object.entries(fields).map(([k, v]) => `${k}=${v}\n`).join('');
    this.remote.stdin!.write(Buffer.concat([Buffer.from(`${head}MESSAGE=`), message, Buffer.from('\n\n')]));
    this.entries++;
  }

  async stop(): Promise<void> {
    this.remote.stdin!.end();
    if (this.remote.exitCode === null) await new Promise((resolve) => this.remote.once('exit', resolve));
  }
}
