/*
 * The house stays in order (docs/ARCHITECTURE.md rules 13 and 14):
 * - the rooms of src/ (one folder per capability, plus the neutral ones) import each other without
 *   a cycle — runtime imports only: `import type` and all-`type` named imports vanish at run time
 * - no source file grows past one idea (≈450 lines), demo data and migrations aside
 * Parsed with TypeScript's own parser, so multi-line and re-exporting imports count too.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');
const MAX_LINES = 450;
/** Data, not logic: long by nature. */
const LONG_BY_NATURE = new Set(['demo/patients.ts']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** The room of a file: its first folder under src/, or undefined for the composition root's files. */
const roomOf = (file: string): string | undefined => {
  const parts = relative(SRC, file).split('/');
  return parts.length > 1 ? parts[0] : undefined;
};

/** Relative module specifiers this file needs at run time. */
function runtimeImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      if (!typeOnly) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      if (!node.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.filter((s) => s.startsWith('.'));
}

/** room → rooms it imports at run time, with one example import per edge for the failure message. */
function roomGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of sourceFiles(SRC)) {
    const from = roomOf(file);
    if (!from) continue;
    for (const spec of runtimeImports(file)) {
      const to = roomOf(resolve(dirname(file), spec));
      if (!to || to === from) continue;
      if (!graph.has(from)) graph.set(from, new Map());
      const edges = graph.get(from)!;
      if (!edges.has(to)) edges.set(to, `${relative(SRC, file)} → ${spec}`);
    }
  }
  return graph;
}

/** Strongly connected components with more than one room (Tarjan): each is an import cycle. */
function cycles(graph: Map<string, Map<string, string>>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (v: string) => {
    indices.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!indices.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indices.get(w)!));
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) connect(v);
  return found;
}

describe('the rooms of src/', () => {
  it('import each other without a cycle', () => {
    const graph = roomGraph();
    const described = cycles(graph).map((rooms) =>
      rooms
        .flatMap((from) =>
          [...(graph.get(from) ?? [])].filter(([to]) => rooms.includes(to)).map(([, example]) => example),
        )
        .join('\n  '),
    );
    expect(described, `import cycles between rooms:\n  ${described.join('\n\n  ')}`).toEqual([]);
  });

  it('finds a cycle when there is one (the check itself works)', () => {
    const graph = new Map([
      ['a', new Map([['b', 'a/x.ts → ../b/y.ts']])],
      ['b', new Map([['c', 'b/y.ts → ../c/z.ts']])],
      ['c', new Map([['a', 'c/z.ts → ../a/x.ts']])],
      ['d', new Map([['a', 'd/w.ts → ../a/x.ts']])],
    ]);
    expect(cycles(graph)).toEqual([['a', 'b', 'c']]);
  });

  it(`keep each source file under ${MAX_LINES} lines (one idea a file)`, () => {
    const long = sourceFiles(SRC)
      .map((file) => ({ file: relative(SRC, file), lines: readFileSync(file, 'utf8').split('\n').length }))
      .filter((f) => f.lines > MAX_LINES && !LONG_BY_NATURE.has(f.file))
      .map((f) => `${f.file}: ${f.lines} lines`);
    expect(long).toEqual([]);
  });
});
