// HTTP/2 frames written by hand, for requests a well-behaved client (node:http2, curl) refuses to
// send: uppercase names, connection-specific fields, CR/LF/NUL in values, Content-Length that
// disagrees with the DATA frames. Header blocks use HPACK literals without indexing (no Huffman),
// so any bytes go through. The answer is read back as frame types, with the :status of a response
// HEADERS frame when the server encoded it from the static table (200, 204, 206, 304, 400, 404, 500).
import tls from "node:tls";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
const STATIC_STATUS: Record<number, number> = { 0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500 };

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

function hpackLength(n: number): Buffer {
  if (n < 127) return Buffer.from([n]);
  const out = [127];
  let rest = n - 127;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing, new names: any bytes, as given. */
export function headerBlock(fields: [string, string][]): Buffer {
  return Buffer.concat(
    fields.flatMap(([name, value]) => {
      const n = Buffer.from(name, "latin1");
      const v = Buffer.from(value, "latin1");
      return [Buffer.from([0x00]), hpackLength(n.length), n, hpackLength(v.length), v];
    }),
  );
}

/** :status from the start of a header block: after any dynamic table size updates, an indexed static entry. */
function statusOf(block: Buffer): number | null {
  let i = 0;
  while (i < block.length && (block[i]! & 0xe0) === 0x20) {
    // Dynamic table size update: 001xxxxx, continued in 7-bit groups when the prefix is full.
    if ((block[i]! & 0x1f) === 0x1f) while (block[++i]! & 0x80);
    i++;
  }
  return STATIC_STATUS[block[i]!] ?? null;
}

export interface RawAnswer {
  /** Frames received on the stream and the connection (type, flags, stream), in order. */
  frames: { type: number; flags: number; stream: number; payload: Buffer }[];
  /** :status of the first response HEADERS on stream 1, when statically encoded. */
  status: number | null;
  reset: boolean;
  goaway: boolean;
}

/** Open a TLS connection choosing h2, send the preface and `frames` (stream 1), collect what comes back for `ms`. */
export function rawH2(port: number, frames: Buffer[], opts: { ca: Buffer | string; ms?: number }): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: opts.ca, ALPNProtocols: ["h2"], servername: "localhost" }, () => {
      if (socket.alpnProtocol !== "h2") return reject(new Error(`ALPN chose ${String(socket.alpnProtocol)}, not h2`));
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0), frame(FRAME.SETTINGS, 1, 0), ...frames]));
    });
    let buf = Buffer.alloc(0);
    const answer: RawAnswer = { frames: [], status: null, reset: false, goaway: false };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f = { type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        answer.frames.push(f);
        if (f.type === FRAME.HEADERS && f.stream === 1 && answer.status === null) answer.status = statusOf(f.payload);
        if (f.type === FRAME.RST_STREAM && f.stream === 1) answer.reset = true;
        if (f.type === FRAME.GOAWAY) answer.goaway = true;
      }
    });
    socket.on("error", () => {});
    const done = () => {
      socket.destroy();
      resolve(answer);
    };
    socket.on("close", done);
    setTimeout(done, opts.ms ?? 800);
  });
}

/** The request line of a GET as HTTP/2 pseudo-headers. */
export const pseudo = (authority: string, path = "/", method = "GET"): [string, string][] => [
  [":method", method],
  [":scheme", "https"],
  [":authority", authority],
  [":path", path],
];
