// Dates written in UTC without V8's time-zone machinery. On Node 24, the first date V8 writes or reads
// in local time — and its own toISOString, although an ISO string is UTC — sets up ICU's time-zone data:
// 1 MiB more of the node binary resident for the rest of the process (measured, kube store idle: 64.8
// against 63.8 MiB; docs/design.md). The agent has no need of local time for what it writes, so:
//   - Date.prototype.toISOString is replaced, once, as the agent starts (import this module first).
//     Every status write, lease and event writes a time this way, and JSON.stringify(date) calls it too,
//     in our code and in our dependencies: replacing the method covers them all. The result is V8's,
//     character for character (a property test compares them over the whole range of dates), with
//     the six-digit signed years outside 0..9999 and the RangeError of an invalid date;
//   - httpDate() writes the Date header of the agent's HTTP server, whose every reply (the kubelet's
//     probes) would otherwise have Node read the local time (Date.prototype.getMilliseconds).

const pad = (n: number, width: number) => String(n).padStart(width, '0');

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `date` as an HTTP Date header (RFC 9110's IMF-fixdate), e.g. "Tue, 01 Dec 2026 19:47:11 GMT". */
export function httpDate(date: Date): string {
  return `${DAYS[date.getUTCDay()]}, ${pad(date.getUTCDate(), 2)} ${MONTHS[date.getUTCMonth()]} ${pad(date.getUTCFullYear(), 4)} ` +
    `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)} GMT`;
}

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
