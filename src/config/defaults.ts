// Every default the config file can leave out, named once. The example config and the JSON Schema
// show these values; tests compare against them rather than repeating literals.

export const DEFAULT_LISTENER_HOST = "0.0.0.0";
export const DEFAULT_LISTENER_PORT = 8080;

export const DEFAULT_POOL_CONNECTIONS = 128;
/** How long a request may wait for a free pool connection before 503 (HAProxy's timeout queue idea). */
export const DEFAULT_POOL_QUEUE_TIMEOUT = "5s";
export const DEFAULT_CONNECT_TIMEOUT = "5s";
/** nginx proxy_read_timeout is 60s; the same bound applies to the first response byte here. */
export const DEFAULT_RESPONSE_HEADER_TIMEOUT = "60s";
/** Longest silence between two chunks of an upstream response body (nginx proxy_read_timeout). */
export const DEFAULT_READ_TIMEOUT = "60s";
/** How long an idle upstream keep-alive connection stays in the pool (below typical backend keep-alives). */
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT = "4s";

export const DEFAULT_ADMIN_HOST = "127.0.0.1";
export const DEFAULT_ADMIN_PORT = 9901;

export const DEFAULT_LOG_LEVEL = "info";

/** Node's own default, and what llhttp enforces before any handler runs. */
export const DEFAULT_MAX_HEADER_SIZE = "16KiB";
export const DEFAULT_MAX_BODY_SIZE = "10MiB";
/** Whole header block deadline (slowloris guard); answered with 408. */
export const DEFAULT_HEADER_TIMEOUT = "10s";
/** Whole request (headers and body) deadline; 0 disables it for long uploads. */
export const DEFAULT_REQUEST_TIMEOUT = "300s";
/** nginx client_body_timeout: longest silence between two chunks of a request body; 408 after it. */
export const DEFAULT_BODY_TIMEOUT = "60s";
/**
 * Bodies up to this size are read whole before a backend connection is taken (nginx buffers every
 * body; its client_body_buffer_size is 16k), so stalled or broken small bodies never hold one.
 */
export const DEFAULT_BODY_BUFFER_SIZE = "64KiB";
/** nginx keepalive_timeout. */
export const DEFAULT_CLIENT_KEEP_ALIVE_TIMEOUT = "75s";

export const DEFAULT_REQUEST_ID_HEADER = "X-Request-Id";
export const DEFAULT_REQUEST_ID_PRESERVE = "any";

export const DEFAULT_DRAIN_TIMEOUT = "30s";
export const DEFAULT_IDLE_TRIM_AFTER = "10s";
/** An idle keep-alive connection's HTTP parser is handed back after 5-10 s without a request. */
export const DEFAULT_PARK_IDLE_CONNECTIONS_AFTER = "5s";

export const DEFAULT_WS_HANDSHAKE_TIMEOUT = "10s";
export const DEFAULT_MAX_TUNNELS = 10_000;
