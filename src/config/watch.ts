// Watches the config file's directory, not the file: editors save by renaming a temp file over it and
// Kubernetes swaps a `..data` symlink, and both replace the inode a file watch would hold. Any event
// in the directory, debounced, runs `onChange`; the caller compares contents, so noise costs nothing.
import { watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";

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
  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, fire);
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
