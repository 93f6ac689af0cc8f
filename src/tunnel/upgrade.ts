// Upgrade requests: the same checks and routing decision as plain HTTP, then an upstream handshake
// through undici (the chosen backend's pool and timeouts). Only a backend 101 that accepts the
// client's own handshake becomes a tunnel; any other answer is forwarded as a normal response.
import { ServerResponse, type IncomingMessage } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Socket } from "node:net";
import type { Dispatcher } from "undici";
import { ERRORS } from "../errors/codes.ts";
import type { Exchange } from "../forward/exchange.ts";
import { isRefused } from "../proxy/connection.ts";
import { HEADER_TIMEOUT_BACKSTOP_MS } from "../forward/exchange.ts";
import { route, type HandlerDeps, type ListenerInfo } from "../proxy/handler.ts";
import { buildClientHeaders } from "../proxy/response-headers.ts";
import { clientHandshakeProblem, requestedProtocol, upstreamAcceptProblem } from "./handshake.ts";
import type { TunnelRegistry } from "./registry.ts";
import { Tunnel, type TunnelClient } from "./tunnel.ts";

export interface UpgradeDeps extends HandlerDeps {
  readonly tunnels: TunnelRegistry;
}

export type UpgradeHandler = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

/** Whether node:http should treat a request as an upgrade (others are served as plain HTTP). */
export function isAcceptedUpgrade(req: IncomingMessage, protocols: readonly string[], enabled: boolean): boolean {
  const p = requestedProtocol(req.headers);
  return enabled && p !== undefined && protocols.includes(p);
}

export function createUpgradeHandler(deps: UpgradeDeps, listener: ListenerInfo): UpgradeHandler {
  return (req, socket, head) => handleUpgrade(deps, listener, req, socket, head);
}

function handleUpgrade(deps: UpgradeDeps, listener: ListenerInfo, req: IncomingMessage, socket: Socket, head: Buffer): void {
  // A ServerResponse on the raw socket lets refusals and non-101 answers go out like any response.
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once("finish", () => socket.end());
  socket.on("error", () => socket.destroy());

  if (isRefused(socket)) {
    socket.destroy(); // pipelined behind a refused request: nothing from this connection is believed
    return;
  }
  tunnelThrough(deps, listener, req, res, {
    client: socket,
    head,
    handshakeProblem: () => clientHandshakeProblem(req.method, req.httpVersion, req.headers),
    clientKey: req.headers["sec-websocket-key"] as string | undefined,
    switchClient(block, upstreamHeaders) {
      let text = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${upstreamHeaders.upgrade}\r\nConnection: Upgrade\r\n`;
      for (let i = 0; i < block.length; i += 2) text += `${block[i]}: ${block[i + 1]}\r\n`;
      socket.write(`${text}\r\n`, "latin1");
    },
  });
}

/**
 * A WebSocket over HTTP/2 (RFC 8441 extended CONNECT, :protocol websocket) to the backend as an
 * ordinary HTTP/1.1 upgrade: the stream is the client's side of the tunnel, accepted with 200.
 * `clientKey` is the Sec-WebSocket-Key the proxy made up for the backend handshake.
 */
export function handleHttp2Upgrade(deps: UpgradeDeps, listener: ListenerInfo, req: Http2ServerRequest, res: Http2ServerResponse, clientKey: string): void {
  tunnelThrough(deps, listener, req as unknown as IncomingMessage, res as unknown as ServerResponse, {
    client: req.stream,
    head: Buffer.alloc(0),
    handshakeProblem: () => (req.headers["sec-websocket-version"] === "13" ? null : "Sec-WebSocket-Version must be 13"),
    clientKey,
    switchClient(block) {
      // HTTP/2 has no Sec-WebSocket-Accept (RFC 8441 5): the 200 is the acceptance.
      const headers: string[] = [];
      for (let i = 0; i < block.length; i += 2) if (block[i]!.toLowerCase() !== "sec-websocket-accept") headers.push(block[i]!, block[i + 1]!);
      res.writeHead(200, headers as unknown as Record<string, string>);
    },
  });
}

interface ClientSide {
  /** What carries the client's bytes once tunnelled: its socket, or its HTTP/2 stream. */
  client: TunnelClient;
  head: Buffer;
  handshakeProblem(): string | null;
  clientKey: string | undefined;
  /** Tell the client the backend accepted (101, or 200 on an HTTP/2 stream), with the answer's headers. */
  switchClient(block: string[], upstreamHeaders: Record<string, string | string[] | undefined>): void;
}

function tunnelThrough(deps: UpgradeDeps, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse, side: ClientSide): void {
  const routed = route(deps, listener, req, res);
  if (routed === null) return;
  const { ex, snap, path, backend, headers, decisionFacts } = routed;
  const ws = snap.config.websocket;
  const protocol = requestedProtocol(req.headers);
  const tunnels = deps.tunnels;

  if (!ws.enabled || protocol === undefined || !ws.protocols.includes(protocol)) {
    // Only reachable on a Node without shouldUpgradeCallback: it hands every Upgrade to us.
    tunnels.count("bad_handshake", null);
    return ex.fail("SY_BAD_REQUEST", `Upgrade ${protocol ?? "(none)"} is not accepted (websocket.protocols)`);
  }
  if (protocol === "websocket") {
    const problem = side.handshakeProblem();
    if (problem !== null) {
      tunnels.count("bad_handshake", null);
      return ex.fail("SY_BAD_REQUEST", problem);
    }
  }
  if (deps.state.draining) {
    tunnels.count("limit", backend.name);
    return ex.fail("SY_SHUTTING_DOWN");
  }
  if (!tunnels.tryReserve(backend.name, { total: ws.max_tunnels, perBackend: ws.max_tunnels_per_backend ?? ws.max_tunnels })) {
    tunnels.count("limit", backend.name);
    return ex.fail("SY_TUNNEL_LIMIT", `${tunnels.active.legacy + tunnels.active.new} tunnels open (websocket.max_tunnels ${ws.max_tunnels})`);
  }

  // The slot is given back as soon as the upgrade ends any other way than a tunnel: an answer sent
  // (refusal, 502, 504) or the client gone.
  let settled = false;
  const release = () => {
    if (settled) return;
    settled = true;
    tunnels.release(backend.name);
  };
  res.once("finish", release);
  res.once("close", release);
  const client = side.client;
  ex.upgrade = {
    onSwitch(controller: Dispatcher.DispatchController, statusCode: number, upstreamHeaders: Record<string, string | string[] | undefined>, upstream: Socket) {
      const problem = statusCode !== 101 ? `backend answered ${statusCode} to an upgrade` : upstreamAcceptProblem(protocol, side.clientKey, upstreamHeaders);
      if (problem !== null || ex.clientGone || client.destroyed) {
        upstream.destroy();
        tunnels.count("failed", backend.name);
        ex.fail("SY_UPSTREAM_BAD_RESPONSE", problem ?? "client left during the handshake");
        return;
      }
      const block = buildClientHeaders((controller.rawHeaders ?? []) as (Buffer | string)[], {
        requestIdHeader: snap.requestIdHeader,
        requestIdLower: snap.requestIdLower,
        requestId: ex.requestId,
        backendOrigin: null,
        publicOrigin: ex.publicOrigin,
        close: false,
        extra: ex.extraHeaders,
      });
      side.switchClient(block, upstreamHeaders);
      settled = true; // the slot now belongs to the tunnel, released when it closes
      tunnels.count("tunnelled", backend.name);
      const tunnel = new Tunnel(client, upstream, side.head, { backend: backend.name, feature: ex.decision?.feature ?? null, facts: decisionFacts, websocket: protocol === "websocket" }, ws.idle_timeout, (t) =>
        tunnels.done(t),
      );
      tunnels.add(tunnel);
      ex.tunnel = tunnel;
      ex.releaseClientSlot(); // tunnels have limits of their own
    },
    onRefused() {
      tunnels.count("refused_by_backend", backend.name);
    },
  };

  const opts = { path, method: "GET" as const, headers, body: null, upgrade: protocol, headersTimeout: ws.handshake_timeout + HEADER_TIMEOUT_BACKSTOP_MS, bodyTimeout: backend.readTimeoutMs };
  ex.send(deps.state.pools.forUpgrade(backend), opts, ws.handshake_timeout, false);
}

export const TUNNEL_LIMIT_STATUS = ERRORS.SY_TUNNEL_LIMIT.status;
