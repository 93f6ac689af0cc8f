// Value types shared by the config schemas: durations ("250ms", "30s", 0) and sizes ("16KiB", "1m").
import { z } from "zod";
import { parseDuration, parseSize } from "./units.ts";

const DURATION_PATTERN = /^(0|\d+(\.\d+)?(ms|s|m|h|d))$/;

const durationError = (iss: { input?: unknown }) => `expected a duration such as "250ms", "30s", "5m" or "0", got ${JSON.stringify(iss.input)}`;

export const duration = (description: string, fallback: string) =>
  z
    // A bare 0 in YAML is a number; it means "off" like the string "0".
    .union([z.literal(0), z.string().regex(DURATION_PATTERN, { error: durationError })], { error: durationError })
    .default(fallback)
    .transform((v) => (v === 0 ? 0 : parseDuration(v)!))
    .meta({ description: `${description} Default ${fallback}.` });

const SIZE_PATTERN = /^\d+(\.\d+)?\s*([bB]|[kKmMgG]|[kKmMgG][iI]?[bB])?$/;

const sizeError = (iss: { input?: unknown }) =>
  `expected a size in bytes or with a unit such as "16KiB", "10MiB", "1m", got ${JSON.stringify(iss.input)}`;

export const size = (description: string, fallback: string) =>
  z
    .union([z.int().nonnegative({ error: sizeError }), z.string().regex(SIZE_PATTERN, { error: sizeError })], { error: sizeError })
    .default(fallback)
    .transform((v) => parseSize(v)!)
    .meta({ description: `${description} Default ${fallback}.` });

