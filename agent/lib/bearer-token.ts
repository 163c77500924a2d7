// Checking a caller's bearer token: compared in constant time (a refusal takes as long whatever the
// guess), and read from where it is kept at most once per `ttlMs`, so a token rotated in its file or
// Secret takes effect within that time and a flood of unauthenticated requests costs no more reads.
import { createHash, timingSafeEqual } from 'node:crypto';

export class BearerToken {
  private cached?: { token: string; until: number };

  constructor(
    private readonly read: () => Promise<string>,
    private readonly ttlMs = 10_000,
  ) {}

  /**
   * Whether an Authorization header carries the token. Throws when the token itself cannot be read
   * (the caller answers 503: no one can be let in, and it is not the caller's fault).
   */
  async admits(authorization: string | undefined): Promise<boolean> {
    const token = await this.current();
    if (!token) throw new Error('the token is empty');
    // Digests have one length, so timingSafeEqual never sees two lengths and leaks none.
    const digest = (text: string) => createHash('sha256').update(text).digest();
    return timingSafeEqual(digest(authorization ?? ''), digest(`Bearer ${token}`));
  }

  private async current(): Promise<string> {
    const now = Date.now();
    if (this.cached && now < this.cached.until) return this.cached.token;
    const token = (await this.read()).trim();
    this.cached = { token, until: now + this.ttlMs };
    return token;
  }
}
