// Date.prototype.toISOString, from the UTC fields alone. V8's own (Node 24) sets up ICU's time-zone
// data the first time it runs, although an ISO string is UTC and needs no time zone: 1 MiB more of the
// node binary resident for the rest of the process (measured, kube store idle: the agent holding the
// event watcher's lease, which writes its times with toISOString, 64.8 against 63.8 MiB; docs/design.md).
// Every status write, lease and event formats a time this way, and JSON.stringify(date) calls
// toISOString too — in our code and in our dependencies — so the agent replaces the method once, as it
// starts (import this module first), rather than chasing every caller.
//
// The result is V8's, character for character (a property test compares them over the whole range of
// dates), including the six-digit signed years outside 0..9999 and the RangeError of an invalid date.

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** `date` as V8's toISOString writes it, without touching time zones. */
export function utcIsoString(date: Date): string {
  const time = date.getTime();
  if (Number.isNaN(time)) throw new RangeError('Invalid time value');
  const year = date.getUTCFullYear();
  const yyyy = year >= 0 && year <= 9999 ? pad(year, 4) : `${year < 0 ? '-' : '+'}${pad(Math.abs(year), 6)}`;
  return `${yyyy}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}T${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}.${pad(date.getUTCMilliseconds(), 3)}Z`;
}

Object.defineProperty(Date.prototype, 'toISOString', {
  value: function toISOString(this: Date) {
    return utcIsoString(this); // a receiver that is not a Date throws TypeError, as the built-in does
  },
  writable: true,
  configurable: true,
  enumerable: false, // as the built-in
});
