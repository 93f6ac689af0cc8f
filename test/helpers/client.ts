// A plain node:http client that lets tests send any header (undici refuses hop-by-hop ones).
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";

export interface ClientResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  trailers: NodeJS.Dict<string>;
  body: Buffer;
}

export interface ClientRequest {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders | string[];
  body?: string | Buffer | Readable;
  ca?: string | Buffer;
}

export function send(baseUrl: string, req: ClientRequest = {}): Promise<ClientResponse> {
  const url = new URL(baseUrl);
  const lib = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const r = lib.request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method ?? "GET",
        path: req.path ?? "/",
        headers: req.headers,
        agent: false,
        ...(req.ca && { ca: req.ca }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, trailers: res.trailers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    r.on("error", reject);
    const body = req.body;
    if (body === undefined) r.end();
    else if (typeof body === "string" || Buffer.isBuffer(body)) r.end(body);
    else body.pipe(r);
  });
}

export const json = (r: ClientResponse): Record<string, unknown> => JSON.parse(r.body.toString("utf8")) as Record<string, unknown>;
