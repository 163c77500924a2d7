// Bytes arriving in chunks, turned into text: a character cut between two chunks is held back until
// its end arrives, and what is held is counted, so a reader's byte position (saved to resume at after
// a restart) is the bytes it read, never the length of the text it made of them: a byte that is not
// UTF-8 becomes U+FFFD, three bytes long.
export class Utf8Chunks {
  /** The first bytes of a character whose end has not arrived yet (at most 3). */
  private held: Buffer = Buffer.alloc(0);

  /** How many bytes read are not text yet. */
  get heldBytes(): number {
    return this.held.length;
  }

  decode(chunk: Buffer): string {
    const bytes = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    const cut = incompleteTail(bytes);
    this.held = cut === 0 ? Buffer.alloc(0) : Buffer.from(bytes.subarray(bytes.length - cut)); // a copy: the chunk is not kept
    return bytes.toString('utf8', 0, bytes.length - cut);
  }

  reset(): void {
    this.held = Buffer.alloc(0);
  }
}

/** How many bytes at the end are the start of a character that needs more (0–3). */
function incompleteTail(bytes: Buffer): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const byte = bytes[bytes.length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: the character started further back
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0; // only continuation bytes: not a character's start (decoded as U+FFFD)
}
