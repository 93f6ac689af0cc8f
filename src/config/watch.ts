// Watches the config file's directory, not the file: editors save by renaming a temp file over it and
// Kubernetes swaps a `..data` symlink, and both replace the inode a file watch would hold. Events on
// the file's own name or on Kubernetes' `..data` links, debounced, run `onChange`; others (a store or
// a state file written beside the config, editor swap files) are ignored. The caller compares
// contents, so what noise remains costs one read.
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";

export interface ConfigWatcher {
  close(): void;
}

export function watchConfigDir(file: string, debounceMs: number, onChange: () => void): ConfigWatcher {
  let timer: NodeJS.Timeout | null = null;
  const fire = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, debounceMs);
  };
  const name = basename(file);
  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, (_event, filename) => {
    // Some platforms give no name: then every event counts.
    if (filename === null || filename === name || filename.startsWith("..data")) fire();
  });
  watcher.on("error", () => {
    // The directory went away (a volume remount): keep serving; SIGHUP still reloads.
  });
  return {
    close() {
      if (timer) clearTimeout(timer);
      watcher.close();
    },
  };
}
