/**
 * The house rules of DESIGN.md, checked on the import graph of src/: the detector is pure, the
 * alerts box pages from the detector's facts (never the datapath), remediation acts and never
 * pages, and the leaf modules import no box.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The box a file belongs to: its folder under src/, or the file's own name at the top. */
function boxOf(path: string): string {
  const rel = relative(SRC, path);
  return rel.includes('/') ? rel.split('/')[0]! : rel.replace(/\.ts$/, '');
}

/** box → the boxes it imports (relative imports only), and every external package per box. */
function importGraph(): { boxes: Map<string, Set<string>>; packages: Map<string, Set<string>> } {
  const boxes = new Map<string, Set<string>>();
  const packages = new Map<string, Set<string>>();
  for (const file of files(SRC)) {
    const box = boxOf(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)) {
      const spec = match[1]!;
      if (spec.startsWith('.')) {
        const target = boxOf(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        if (target !== box) (boxes.get(box) ?? boxes.set(box, new Set()).get(box)!).add(target);
      } else {
        (packages.get(box) ?? packages.set(box, new Set()).get(box)!).add(spec);
      }
    }
  }
  return { boxes, packages };
}

const { boxes, packages } = importGraph();
const importsOf = (box: string) => [...(boxes.get(box) ?? [])].sort();

describe('the import graph keeps the house rules', () => {
  it('the detector imports only the seam types: no box, no package', () => {
    expect(importsOf('detector')).toEqual(['types']);
    expect([...(packages.get('detector') ?? [])]).toEqual([]);
  });

  it('the alerts box never reads the datapath, and remediation never pages', () => {
    expect(importsOf('alerts')).not.toContain('datapath');
    expect(importsOf('remediation')).not.toContain('alerts');
  });

  it('the seam types and the leaf helpers import no box', () => {
    expect(importsOf('types')).toEqual([]);
    expect(importsOf('common').filter((box) => box !== 'types')).toEqual([]);
  });

  it('no box imports the agent wiring', () => {
    for (const [box, targets] of boxes) if (box !== 'cli') expect(targets.has('agent'), `${box} imports agent`).toBe(false);
  });

  it('prints the graph (for the release notes)', () => {
    const lines = [...boxes.keys()].sort().map((box) => `${box} → ${importsOf(box).join(', ')}`);
    console.log(lines.join('\n'));
    expect(lines.length).toBeGreaterThan(5);
  });
});
