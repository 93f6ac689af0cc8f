// The shadow store's worker thread: owns the one writing connection, so inserts and retention (age and
// size pruning, WAL checkpoints, vacuum) never run on the proxy's event loop. Messages are handled in
// order; retention goes in small steps with the event loop turning in between, so batches of new
// records are never held back by a long delete.
import { parentPort, workerData } from "node:worker_threads";
import { StoreWriter, type CounterDelta, type PairRow, type StoreStats } from "./writer.ts";

export interface StoreWorkerData {
  path: string;
  maxBytes: number;
  maxAgeMs: number;
  /** How often retention runs (it also runs at start). */
  pruneIntervalMs: number;
}

export type ToWorker =
  | { type: "write"; rows: PairRow[]; counters: CounterDelta[] }
  | { type: "sync"; id: number }
  | { type: "close"; id: number };

export type FromWorker =
  | { type: "ack"; id: number; stats: StoreStats }
  | { type: "stats"; stats: StoreStats }
  | { type: "error"; message: string; lost: number };

const data = workerData as StoreWorkerData;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const writer = new StoreWriter(data.path, { maxBytes: data.maxBytes, maxAgeMs: data.maxAgeMs });

let pruning = false;
let closed = false;
/** Run retention one step per event-loop turn until there is nothing left to do. */
function prune(): void {
  if (pruning || closed) return;
  pruning = true;
  const step = () => {
    if (closed) return;
    let more = false;
    try {
      more = writer.pruneStep();
    } catch (err) {
      post({ type: "error", message: `shadow store retention failed: ${(err as Error).message}`, lost: 0 });
    }
    if (more) setImmediate(step);
    else {
      pruning = false;
      post({ type: "stats", stats: writer.stats() });
    }
  };
  setImmediate(step);
}
const timer = setInterval(prune, data.pruneIntervalMs);
prune();

port.on("message", (m: ToWorker) => {
  if (closed) return;
  if (m.type === "write") {
    try {
      writer.writeRows(m.rows, m.counters);
    } catch (err) {
      post({ type: "error", message: `shadow store write failed: ${(err as Error).message}`, lost: m.rows.length });
    }
  } else if (m.type === "sync") post({ type: "ack", id: m.id, stats: writer.stats() });
  else {
    closed = true;
    clearInterval(timer);
    const stats = writer.stats();
    writer.close();
    post({ type: "ack", id: m.id, stats });
    port.close();
  }
});
