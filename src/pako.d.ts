// pako 1.x ships no types: the streaming inflate that src/io/image.ts uses to
// inflate PNG data into a buffer of the size the header allows, and no more.
declare module 'pako' {
  export class Inflate {
    constructor(options?: { chunkSize?: number; raw?: boolean });
    /** Called with each chunk of output; a throw here stops the inflate and propagates out of push. */
    onData(chunk: Uint8Array): void;
    onEnd(status: number): void;
    /** Feeds input; `true` = the last of it. Returns false on a stream error (then `err`/`msg` say which). */
    push(data: Uint8Array, mode: boolean): boolean;
    err: number;
    msg: string;
    /** Whether the zlib stream reached its end marker. */
    ended: boolean;
  }
  const pako: { Inflate: typeof Inflate };
  export default pako;
}
