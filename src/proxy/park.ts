// Idle keep-alive client connections give their HTTP parser back. node:http keeps a parser (~7 KiB
// of C++ and JavaScript, the bulk of what an open connection costs: bench/README.md, "idle
// keep-alive connection") on every connection for as long as it is open, idle or not; 10,000 idle
// browsers cost 110 MiB. After `limits.park_idle_after` without a request, a connection is parked:
// node:http's listeners and parser come off the socket (the parser returns to node:http's free list,
// as when a connection closes), and the socket waits with five small listeners of ours. Its next
// bytes unpark it: they are put back, and node:http takes the socket as it takes a new connection
// (a parser from the free list; headers and request deadlines from then on) - the same hand-over
// the cleartext HTTP/2 sniffer does. While parked the keep-alive deadline node:http armed still
// runs (it closes the connection), an end or error from the client closes it, and a shutdown
// closes it with the other idle connections.
//
// This works on node:http's private parts (the parser on the socket, the listeners it adds, its
// connections list). Each is checked once when the parker starts; if one is missing (another Node
// version), parking is off and the start-up log says why - connections then keep their parser, as
// before.
import type http from "node:http";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import type { Logger } from "../observe/logger.ts";
import { isRefused } from "./connection.ts";

interface NodeParser {
  socket: Socket | null;
}
type HttpSocket = Socket & { parser?: NodeParser | null; _httpMessage?: object | null; _handle?: { _consumed?: boolean } | null; [kSeen]?: number };
type ConnectionsList = { idle(): NodeParser[] };

const { freeParser } = createRequire(import.meta.url)("_http_common") as { freeParser?: (parser: NodeParser, req: null, socket: Socket) => void };

/** The listeners node:http puts on a connection (connectionListenerInternal), by event and function name. */
const NODE_LISTENERS: readonly [string, string][] = [
  ["data", "bound socketOnData"],
  ["end", "bound socketOnEnd"],
  ["close", "bound socketOnClose"],
  ["drain", "bound socketOnDrain"],
  ["error", "socketOnError"],
  ["timeout", "socketOnTimeout"],
  ["resume", "onSocketResume"],
  ["pause", "onSocketPause"],
];

/** The bytes a connection had read when a sweep last saw it idle (none read since: parked on this sweep). */
const kSeen = Symbol("switchyard.parkSeen");

export class IdleParker {
  readonly #server: http.Server;
  /** node:http's own connection listener, taken before anything wraps it. */
  readonly #accept: (socket: Socket) => void;
  readonly #logger: Logger;
  #list: ConnectionsList | undefined;
  readonly #parked = new Set<Socket>();
  #timer: NodeJS.Timeout | null = null;
  /** Connections parked and woken since start (tests read them). */
  parks = 0;
  wakes = 0;

  /** null when this Node's node:http does not have what parking needs (`why` says what). */
  static create(server: http.Server, tls: boolean, afterMs: number, logger: Logger): IdleParker | null {
    const accept = server.listeners(tls ? "secureConnection" : "connection").find((f) => f.name === "connectionListener") as ((socket: Socket) => void) | undefined;
    const why = freeParser === undefined ? "_http_common.freeParser is missing" : accept === undefined ? "node:http's connection listener was not found" : null;
    if (why !== null) {
      logger.warn({ why }, "idle connections keep their parser (memory.park_idle_connections_after is off on this Node)");
      return null;
    }
    return new IdleParker(server, accept!, afterMs, logger);
  }

  private constructor(server: http.Server, accept: (socket: Socket) => void, afterMs: number, logger: Logger) {
    this.#server = server;
    this.#accept = accept;
    this.#logger = logger;
    this.setAfter(afterMs);
  }

  /** node:http's list of its connections (made when the server starts listening). */
  #connections(): ConnectionsList | undefined {
    if (this.#list === undefined) {
      const symbol = Object.getOwnPropertySymbols(this.#server).find((s) => s.description === "http.server.connections");
      this.#list = symbol === undefined ? undefined : (this.#server as unknown as Record<symbol, ConnectionsList | undefined>)[symbol];
      if (this.#list === undefined && this.#server.listening) {
        this.#logger.warn({ why: "node:http's connections list was not found" }, "idle connections keep their parser (memory.park_idle_connections_after is off on this Node)");
        this.stop();
      }
    }
    return this.#list;
  }

  get parked(): number {
    return this.#parked.size;
  }

  /** (Re)start sweeping every afterMs (0: off; parked connections stay parked until they wake). */
  setAfter(afterMs: number): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (afterMs > 0) {
      this.#timer = setInterval(() => this.sweep(), afterMs);
      this.#timer.unref();
    }
  }

  /**
   * Parks the connections that were idle at the last sweep and have had no request since (so idle
   * between one and two periods); remembers the others that are idle now.
   */
  sweep(): void {
    const list = this.#connections();
    if (list === undefined) return;
    for (const parser of list.idle()) {
      const socket = parser.socket as HttpSocket | null;
      if (socket === null || socket.parser !== parser || !this.#parkable(socket)) continue;
      // No byte read since the last sweep found it idle: no request came in between.
      const read = socket.bytesRead;
      if (socket[kSeen] === read) this.#park(socket, parser);
      else socket[kSeen] = read;
    }
  }

  /** Close every parked connection (shutdown: they are idle, as closeIdleConnections() closes). */
  closeAll(): void {
    for (const s of this.#parked) s.destroy();
    this.#parked.clear();
  }

  stop(): void {
    this.setAfter(0);
  }

  #parkable(s: HttpSocket): boolean {
    // Nothing in flight either way, nothing read and not parsed, a plain open connection we still trust.
    return !s.destroyed && s.writable && s.readable && !s._httpMessage && s.readableLength === 0 && s.writableLength === 0 && !isRefused(s) && s._handle != null;
  }

  #park(s: HttpSocket, parser: NodeParser): void {
    const found: [string, (...a: unknown[]) => void][] = [];
    for (const [event, name] of NODE_LISTENERS) {
      const fn = s.listeners(event).find((f) => f.name === name) as ((...a: unknown[]) => void) | undefined;
      if (fn === undefined) return; // not node:http's connection as we know it: leave it be
      found.push([event, fn]);
    }
    for (const [event, fn] of found) s.removeListener(event, fn);
    freeParser!(parser, null, s); // unconsumes the socket's handle: reads come to JavaScript again
    delete s[kSeen];
    this.#parked.add(s);
    this.parks++;
    const done = () => {
      s.off("data", wake);
      s.off("end", onEnd);
      s.off("error", onError);
      s.off("timeout", onTimeout);
      s.off("close", onClose);
      this.#parked.delete(s);
    };
    const wake = (chunk: Buffer) => {
      done();
      this.wakes++;
      // The keep-alive deadline node:http armed belongs to the idle time; the request's deadlines
      // (headers, request) are the new parser's.
      s.setTimeout(0);
      s.pause();
      s.unshift(chunk);
      // Let the new parser read the socket natively again, as on a fresh connection.
      if (s._handle) s._handle._consumed = false;
      this.#accept.call(this.#server, s);
      s.resume(); // the bytes put back reach the parser first, then the rest
    };
    const onEnd = () => {
      done();
      s.end();
    };
    const onError = () => {
      done();
      s.destroy();
    };
    const onTimeout = () => {
      done();
      s.destroy();
    };
    const onClose = () => done();
    s.on("data", wake);
    s.on("end", onEnd);
    s.on("error", onError);
    s.on("timeout", onTimeout);
    s.on("close", onClose);
    // Reads flow to `wake` (node:http had the handle; after unconsume the stream reads for us).
    s.resume();
  }
}
