// A config problem as a value: where (file, line, column, field path) and what was expected.

export interface ConfigErrorLocation {
  file: string;
  /** 1-based; 0 when the problem is the file itself (missing, unreadable). */
  line: number;
  column: number;
  /** Dotted field path such as `backends.new.timeouts.connect`; empty for file-level problems. */
  path: string;
}

export class ConfigError extends Error implements ConfigErrorLocation {
  readonly code = "SY_CONFIG_INVALID";
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly path: string;

  constructor(loc: ConfigErrorLocation, message: string) {
    super(message);
    this.name = "ConfigError";
    this.file = loc.file;
    this.line = loc.line;
    this.column = loc.column;
    this.path = loc.path;
  }

  /** `file:line:col: path: message`, the shape editors and CI annotate. */
  format(): string {
    const where = this.line > 0 ? `${this.file}:${this.line}:${this.column}` : this.file;
    return this.path ? `${where}: ${this.path}: ${this.message}` : `${where}: ${this.message}`;
  }
}

/** Thrown by loaders when a file has one or more problems; carries all of them. */
export class ConfigErrors extends Error {
  readonly code = "SY_CONFIG_INVALID";
  readonly errors: readonly ConfigError[];
  constructor(errors: readonly ConfigError[]) {
    super(errors.map((e) => e.format()).join("\n"));
    this.name = "ConfigErrors";
    this.errors = errors;
  }
}

/** `a.b[2].c` from a path array. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}
