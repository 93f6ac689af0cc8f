// nginx configuration syntax: directives with arguments ending in ";", blocks in "{ }", "#"
// comments, single- and double-quoted arguments with backslash escapes, ${var} inside words, and
// `include` (globs, relative to the main file's folder as nginx's conf prefix). Every directive keeps
// its file and line, so whatever the import does not carry over can be pointed at.
//
// Why not a parser from npm: the maintained ones (nginx-conf, @webantic/nginx-config-parser) edit or
// convert files but keep no line numbers and do not follow includes, and an import that says "not
// carried over" without the file:line is of little use. The grammar is small (ngx_conf_read_token).
import { globSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, matchesGlob, resolve } from "node:path";

export interface Directive {
  name: string;
  args: string[];
  file: string;
  line: number;
  /** The directives inside `{ }`, for block directives (http, server, location, upstream ...). */
  block?: Directive[];
}

/** A file that cannot be read or included. */
export class NginxReadError extends Error {}

export class NginxSyntaxError extends Error {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
  }
}

interface Token {
  text: string;
  line: number;
  /** ; { } as syntax (a quoted "{" is a word). */
  special: boolean;
}

function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === "\n") {
      line++;
      i++;
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
    } else if (c === "#") {
      while (i < n && text[i] !== "\n") i++;
    } else if (c === ";" || c === "{" || c === "}") {
      tokens.push({ text: c, line, special: true });
      i++;
    } else {
      // A word: quoted parts and bare characters up to whitespace or ; { } (but ${ } is a variable).
      const start = line;
      let word = "";
      while (i < n) {
        const d = text[i]!;
        if (d === '"' || d === "'") {
          const quoteLine = line;
          i++;
          while (i < n && text[i] !== d) {
            if (text[i] === "\\" && i + 1 < n) {
              const e = text[i + 1]!;
              word += e === "n" ? "\n" : e === "t" ? "\t" : e === "r" ? "\r" : e === d || e === "\\" ? e : `\\${e}`;
              i += 2;
              continue;
            }
            if (text[i] === "\n") line++;
            word += text[i];
            i++;
          }
          if (i >= n) throw new NginxSyntaxError(file, quoteLine, `unterminated ${d === '"' ? "double" : "single"} quote`);
          i++;
          continue;
        }
        if (d === "$" && text[i + 1] === "{") {
          const close = text.indexOf("}", i);
          if (close < 0) throw new NginxSyntaxError(file, line, 'unterminated "${" variable');
          word += text.slice(i, close + 1);
          i = close + 1;
          continue;
        }
        if (d === "\\" && i + 1 < n && text[i + 1] !== "\n") {
          word += text.slice(i, i + 2);
          i += 2;
          continue;
        }
        if (d === " " || d === "\t" || d === "\r" || d === "\n" || d === ";" || d === "{" || d === "}") break;
        word += d;
        i++;
      }
      tokens.push({ text: word, line: start, special: false });
    }
  }
  return tokens;
}

/** Parse one file's text (no includes followed). */
export function parseNginx(text: string, file: string): Directive[] {
  const tokens = tokenize(text, file);
  let pos = 0;
  const parseBlock = (depth: number, openLine: number): Directive[] => {
    const out: Directive[] = [];
    let words: Token[] = [];
    while (pos < tokens.length) {
      const t = tokens[pos++]!;
      if (!t.special) {
        words.push(t);
        continue;
      }
      if (t.text === "}") {
        if (words.length > 0) throw new NginxSyntaxError(file, words[0]!.line, `"${words[0]!.text}" is not terminated by ";"`);
        if (depth === 0) throw new NginxSyntaxError(file, t.line, 'unexpected "}"');
        return out;
      }
      if (words.length === 0) throw new NginxSyntaxError(file, t.line, `unexpected "${t.text}"`);
      const d: Directive = { name: words[0]!.text, args: words.slice(1).map((w) => w.text), file, line: words[0]!.line };
      if (t.text === "{") d.block = parseBlock(depth + 1, t.line);
      out.push(d);
      words = [];
    }
    if (words.length > 0) throw new NginxSyntaxError(file, words[0]!.line, `unexpected end of file: "${words[0]!.text}" is not terminated by ";"`);
    if (depth > 0) throw new NginxSyntaxError(file, openLine, 'unexpected end of file: the "{" opened here is never closed');
    return out;
  };
  return parseBlock(0, 1);
}

const DUMP_HEADER = /^# configuration file (.+):$/gm;

/**
 * `nginx -T` prints every file it read, each after "# configuration file PATH:". Returns the files
 * by path in the order printed (the main file first), or null when the text is not such a dump.
 */
export function splitDump(text: string): Map<string, string> | null {
  const marks = [...text.matchAll(DUMP_HEADER)];
  if (marks.length === 0) return null;
  const files = new Map<string, string>();
  for (const [k, m] of marks.entries()) {
    const from = m.index + m[0].length + 1;
    const to = k + 1 < marks.length ? marks[k + 1]!.index : text.length;
    files.set(m[1]!, text.slice(from, to));
  }
  return files;
}

export interface LoadedConfig {
  directives: Directive[];
  /** Every file read, main first. */
  files: string[];
}

/**
 * Read a configuration with its includes resolved in place. `source` is a file path, or the text of
 * `nginx -T` (from stdin) whose first file is the main one; a plain text read from stdin counts as one
 * file named `label`.
 */
export function loadNginx(source: { path: string } | { text: string; label: string }): LoadedConfig {
  let main: string;
  let read: (path: string) => string;
  let expand: (pattern: string) => string[];
  if ("path" in source) {
    main = resolve(source.path);
    read = (p) => readFileSync(p, "utf8");
    expand = (pattern) => (/[*?[]/.test(pattern) ? globSync(pattern).sort() : [pattern]);
  } else {
    const dump = splitDump(source.text);
    if (dump === null) {
      main = source.label;
      read = (p) => {
        if (p === source.label) return source.text;
        throw new NginxReadError(`${p}: not in the text read (pipe the output of nginx -T to follow includes)`);
      };
      expand = (pattern) => [pattern];
    } else {
      main = dump.keys().next().value!;
      read = (p) => {
        const text = dump.get(p);
        if (text === undefined) throw new NginxReadError(`${p}: not in the nginx -T output`);
        return text;
      };
      expand = (pattern) => (/[*?[]/.test(pattern) ? [...dump.keys()].filter((k) => matchesGlob(k, pattern)).sort() : [pattern]);
    }
  }
  const prefix = dirname(main);
  const files: string[] = [];
  const load = (path: string, stack: string[]): Directive[] => {
    if (stack.includes(path)) throw new NginxReadError(`${path}: included from itself (${[...stack, path].join(" -> ")})`);
    let text: string;
    try {
      text = read(path);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (err instanceof NginxReadError) throw err;
      throw new NginxReadError(e.code ? `${path}: cannot read (${e.code === "ENOENT" ? "no such file" : e.code})` : e.message, { cause: err });
    }
    if (!files.includes(path)) files.push(path);
    return splice(parseNginx(text, path), [...stack, path]);
  };
  const splice = (list: Directive[], stack: string[]): Directive[] => {
    const out: Directive[] = [];
    for (const d of list) {
      if (d.name === "include" && !d.block) {
        if (d.args.length !== 1) throw new NginxSyntaxError(d.file, d.line, "include takes one file or pattern");
        const pattern = isAbsolute(d.args[0]!) ? d.args[0]! : join(prefix, d.args[0]!);
        for (const p of expand(pattern)) {
          try {
            out.push(...load(p, stack));
          } catch (err) {
            if (!(err instanceof NginxReadError) || err.message.includes("(included from ")) throw err;
            throw new NginxReadError(`${err.message} (included from ${d.file}:${d.line})`);
          }
        }
        continue;
      }
      out.push(d.block ? { ...d, block: splice(d.block, stack) } : d);
    }
    return out;
  };
  return { directives: load(main, []), files };
}
