// Go goroutine dumps: finding one in a log line, and reading it into goroutines and frames.
//
// A containerd shim answers SIGUSR1 by logging its stacks; containerd copies that into its own log as
// one logrus line, in text form
//   time="…" level=info msg="=== BEGIN goroutine stack dump ===\ngoroutine 1 [select]:\n…" pid=1234 …
// or, with containerd's JSON log format, {"msg":"=== BEGIN goroutine stack dump ===\n…","pid":1234,…}.

export const DUMP_BEGIN = '=== BEGIN goroutine stack dump ===';

/** A run of one state seen in /proc while a shim's dump was awaited. */
export type StateRun = { state: string; from: string; to: string };

/** What the goroutine-dump collector records per shim in status.context.goroutineDumps. */
export type ShimDump = {
  pid: number;
  startTicks: number;
  signalledAt: string;
  dump?: string;
  answeredInMs?: number;
  /** Set when no dump came: how long it was waited for. */
  noDumpWithinSeconds?: number;
  states: StateRun[];
  error?: string;
};

export type Frame = { func: string; file: string; line: number };
export type Goroutine = { id: number; state: string; minutes?: number; frames: Frame[]; createdBy?: string };

/** Go's strconv.Quote escapes, undone (logrus quotes msg with %q). */
export function goUnquote(quoted: string): string {
  const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'" };
  return quoted.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (_, esc: string) => {
    if (esc[0] === 'x' || esc[0] === 'u' || esc[0] === 'U') return String.fromCodePoint(parseInt(esc.slice(1), 16));
    if (/^[0-7]{3}$/.test(esc)) return String.fromCharCode(parseInt(esc, 8));
    return simple[esc] ?? esc;
  });
}

/** The dump in a log line, if the line is the dump of process `pid`. */
export function dumpInLogLine(line: string, pid: number): string | undefined {
  if (!line.includes(DUMP_BEGIN)) return undefined;
  if (line.trimStart().startsWith('{')) {
    try {
      const entry = JSON.parse(line) as { msg?: unknown; pid?: unknown };
      return String(entry.pid) === String(pid) && typeof entry.msg === 'string' ? entry.msg : undefined;
    } catch {
      return undefined;
    }
  }
  // logrus text: key=value pairs, values quoted when they hold spaces. The dump is msg; pid is a field
  // after it, so it is looked for outside the quoted message only.
  const msg = /(?:^|\s)msg="((?:[^"\\]|\\.)*)"/.exec(line);
  if (!msg) return undefined;
  const rest = line.slice(0, msg.index) + line.slice(msg.index + msg[0].length);
  if (!new RegExp(`(?:^|\\s)pid=${pid}(?:\\s|$)`).test(rest)) return undefined;
  return goUnquote(msg[1]!);
}

/** "goroutine 7 [chan send, 12 minutes]:" and its frames, for every goroutine in the dump. */
export function parseGoroutines(dump: string): Goroutine[] {
  const goroutines: Goroutine[] = [];
  let current: Goroutine | undefined;
  const lines = dump.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const header = /^goroutine (\d+) \[([^\]]*)\]:$/.exec(line);
    if (header) {
      const parts = header[2]!.split(', ');
      const minutes = parts.map((p) => /^(\d+) minutes$/.exec(p)).find(Boolean);
      current = { id: Number(header[1]), state: parts[0]!, ...(minutes ? { minutes: Number(minutes[1]) } : {}), frames: [] };
      goroutines.push(current);
      continue;
    }
    if (!current || line === '' || line.startsWith('\t')) continue;
    const where = /^\t(.*):(\d+)(?: \+0x[0-9a-f]+)?$/.exec(lines[i + 1] ?? '');
    if (line.startsWith('created by ')) {
      current.createdBy = line.slice('created by '.length).replace(/ in goroutine \d+$/, '');
    } else if (where) {
      // "pkg/path.(*Type).Method(0xc000…, …)" → "pkg/path.(*Type).Method"; "(...)" marks an inlined call.
      current.frames.push({ func: line.replace(/\((?:[^()]|\.\.\.)*\)$/, ''), file: where[1]!, line: Number(where[2]) });
    }
  }
  return goroutines;
}

/** The package path and the function of a frame: "a/b/shim.(*Monitor).Wait" → ["a/b/shim", "(*Monitor).Wait"]. */
export function splitFunc(func: string): [string, string] {
  const slash = func.lastIndexOf('/');
  const dot = func.indexOf('.', slash + 1);
  return dot < 0 ? [func, ''] : [func.slice(0, dot), func.slice(dot + 1)];
}

/**
 * A dump with its repeated goroutines folded: of goroutines in the same state whose stacks call the same
 * functions (a shim with 150 exec processes has 150 alike), the first is kept and the rest counted
 * in a line at the end. A dump too large to keep whole keeps every distinct stack this way.
 */
export function foldRepeatedGoroutines(dump: string): string {
  const [head, ...blocks] = dump.split(/\n\n(?=goroutine \d+ \[)/);
  const kept = new Map<string, { block: string; id: string; more: number }>();
  const out: string[] = [];
  for (const block of [head!, ...blocks]) {
    const header = /^goroutine (\d+) \[([^\],]*)/.exec(block);
    if (!header) {
      out.push(block);
      continue;
    }
    const calls = block.split('\n').filter((l) => l !== '' && !l.startsWith('\t') && !l.startsWith('goroutine ')).map((l) => l.replace(/\(.*\)$/, ''));
    const key = `${header[2]}\n${calls.join('\n')}`;
    const seen = kept.get(key);
    if (seen) {
      seen.more++;
      continue;
    }
    kept.set(key, { block, id: header[1]!, more: 0 });
    out.push(block);
  }
  const folded = [...kept.values()].filter((k) => k.more > 0).map((k) => `goroutine ${k.id} ×${k.more + 1}`);
  return folded.length > 0 ? `${out.join('\n\n')}\n\n… folded by nodemedic: goroutines alike in state and stack, the first of each kept above: ${folded.join(', ')}` : dump;
}
