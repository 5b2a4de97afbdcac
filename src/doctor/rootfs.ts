/**
 * Reading a system's files under a root ("/" or a fixture tree), with symlinks resolved inside
 * the root, and the systemd rules for finding configuration: the first main file by directory
 * priority, drop-ins merged by file name (a same-named file in a higher-priority directory masks
 * the others; an empty file or a link to /dev/null masks it for good), sorted by name.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';

/** A file as read: its path on the audited system and its text. */
export interface SysFile {
  /** The path as the audited system sees it ("/etc/systemd/networkd.conf"). */
  path: string;
  text: string;
}

/** systemd's directory priority for configuration: /etc, /run, /usr/local/lib, /usr/lib (first wins). */
export const SYSTEMD_CONFIG_PREFIXES = ['/etc', '/run', '/usr/local/lib', '/usr/lib'] as const;

const MAX_LINKS = 16;

/** Read-only access to files under a root; a missing file is `undefined`, any other error throws. */
export class RootFs {
  constructor(readonly root: string) {}

  /** The host path of a system path, following symlinks inside the root; undefined for a link to /dev/null. */
  #resolve(path: string): { host: string; devNull: boolean } {
    let sys = posix.normalize(path);
    for (let hops = 0; hops < MAX_LINKS; hops++) {
      // Resolve each component so a linked directory (/lib → usr/lib) stays inside the root too.
      const parts = sys.split('/').filter(Boolean);
      let resolved = '/';
      let relinked = false;
      for (let i = 0; i < parts.length; i++) {
        const next = posix.join(resolved, parts[i]!);
        let target: string | undefined;
        try {
          if (lstatSync(join(this.root, next)).isSymbolicLink()) target = readlinkSync(join(this.root, next));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return { host: join(this.root, sys), devNull: false };
          throw err;
        }
        if (target !== undefined) {
          const linked = posix.isAbsolute(target) ? target : posix.join(posix.dirname(next), target);
          if (posix.normalize(linked) === '/dev/null') return { host: '/dev/null', devNull: true };
          sys = posix.join(linked, ...parts.slice(i + 1));
          relinked = true;
          break;
        }
        resolved = next;
      }
      if (!relinked) return { host: join(this.root, sys), devNull: false };
    }
    throw new Error(`${path}: too many levels of symbolic links under ${this.root}`);
  }

  /** The file's text, or undefined when it does not exist (or is masked by a link to /dev/null). */
  read(path: string): SysFile | undefined {
    const { host, devNull } = this.#resolve(path);
    if (devNull) return { path, text: '' };
    try {
      return { path, text: readFileSync(host, 'utf8') };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw err;
    }
  }

  exists(path: string): boolean {
    const { host, devNull } = this.#resolve(path);
    if (devNull) return true;
    try {
      lstatSync(host);
      return true;
    } catch {
      return false;
    }
  }

  /** Whether the path is masked: a link to /dev/null or an empty file. */
  masked(path: string): boolean {
    const { devNull } = this.#resolve(path);
    if (devNull) return true;
    const file = this.read(path);
    return file !== undefined && file.text.length === 0;
  }

  /** Entry names of a directory, sorted; empty when it does not exist. */
  list(dir: string): string[] {
    const { host, devNull } = this.#resolve(dir);
    if (devNull) return [];
    try {
      return readdirSync(host).sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw err;
    }
  }

  /** The first of these paths that exists, read. */
  first(paths: readonly string[]): SysFile | undefined {
    for (const path of paths) {
      const file = this.read(path);
      if (file) return file;
    }
    return undefined;
  }

  /**
   * Files matching `accept` across directories (highest priority first), merged by name: the
   * highest-priority one of each name, sorted by name; masked ones (empty, /dev/null) dropped.
   */
  merged(dirs: readonly string[], accept: (name: string) => boolean): SysFile[] {
    const chosen = new Map<string, string>();
    for (const dir of dirs) {
      for (const name of this.list(dir)) {
        if (accept(name) && !chosen.has(name)) chosen.set(name, posix.join(dir, name));
      }
    }
    return [...chosen.keys()]
      .sort()
      .map((name) => chosen.get(name)!)
      .filter((path) => !this.masked(path))
      .map((path) => this.read(path))
      .filter((file): file is SysFile => file !== undefined);
  }
}

/** `/etc/systemd/networkd.conf.d`-style directories in priority order for a path under /etc (or /lib). */
export function systemdDirs(suffix: string): string[] {
  return SYSTEMD_CONFIG_PREFIXES.map((prefix) => posix.join(prefix, suffix));
}

/** One assignment in a unit-style (ini) file. */
export interface IniEntry {
  section: string;
  /** Index of the section occurrence in its file (two [Address] sections are 0 and 1). */
  sectionIndex: number;
  key: string;
  value: string;
  file: string;
  line: number;
  raw: string;
}

/** Parses a systemd unit-style file: [Section], Key=Value, # and ; comments, trailing-backslash continuation. */
export function parseIni(file: SysFile): IniEntry[] {
  const entries: IniEntry[] = [];
  const lines = file.text.split('\n');
  let section = '';
  const counts = new Map<string, number>();
  let sectionIndex = 0;
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!.trim();
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1) + ' ' + lines[++i]!.trim();
    }
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      sectionIndex = counts.get(section) ?? 0;
      counts.set(section, sectionIndex + 1);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    entries.push({ section, sectionIndex, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), file: file.path, line: start + 1, raw: lines[start]!.trim() });
  }
  return entries;
}

/** systemd's boolean words; undefined for anything else (systemd ignores such an assignment). */
export function parseBoolean(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (['1', 'yes', 'y', 'true', 't', 'on'].includes(v)) return true;
  if (['0', 'no', 'n', 'false', 'f', 'off'].includes(v)) return false;
  return undefined;
}

/** fnmatch-style glob (`*`, `?`, `[...]`) as used by systemd's Name= and sysctl.d keys. */
export function globMatch(pattern: string, text: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body.startsWith('!')) body = '^' + body.slice(1);
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(re + '$').test(text);
}

/** Where a file is, relative to its directory (for fix texts). */
export function dirOf(path: string): string {
  return dirname(path);
}

/** One line of a file as evidence. */
export function lineOf(entry: { file: string; line: number; raw: string }): { file: string; line: number; text: string } {
  return { file: entry.file, line: entry.line, text: entry.raw };
}
