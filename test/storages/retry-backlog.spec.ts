import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Heap } from '../../lib/core/heap.js';
import { RetryBacklog } from '../../lib/storages/retry-backlog.js';

interface Rec {
  readonly id: number;
}

type Op =
  | { readonly kind: 'add'; readonly visibleAt: number; readonly ids: readonly number[] }
  | { readonly kind: 'promote'; readonly now: number }
  | { readonly kind: 'take'; readonly count: number };

/** The obvious model: every record with its time; due ones handed out by id. */
class Model {
  private readonly held: { id: number; visibleAt: number; due: boolean }[] = [];
  add(visibleAt: number, ids: readonly number[]): void {
    for (const id of ids) this.held.push({ id, visibleAt, due: false });
  }
  promote(now: number): void {
    for (const r of this.held) if (r.visibleAt <= now) r.due = true;
  }
  take(): number | undefined {
    const due = this.held.filter((r) => r.due).sort((a, b) => a.id - b.id);
    const first = due[0];
    if (!first) return undefined;
    this.held.splice(this.held.indexOf(first), 1);
    return first.id;
  }
  get size(): number {
    return this.held.length;
  }
  get ids(): number[] {
    return this.held.map((r) => r.id).sort((a, b) => a - b);
  }
}

describe('RetryBacklog', () => {
  it('hands out due records lowest id first, hides the others until their time, like a sorted list', () => {
    let nextId = 0;
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        visibleAt: fc.integer({ min: 0, max: 50 }),
        ids: fc.integer({ min: 0, max: 6 }).map((n) => {
          // Ids are unique; a group's may come in any order (lanes, retries ahead of fresh).
          const ids = Array.from({ length: n }, () => (nextId += 1 + (nextId % 3)));
          return ids.reverse();
        }),
      }),
      fc.record({ kind: fc.constant('promote' as const), now: fc.integer({ min: 0, max: 60 }) }),
      fc.record({ kind: fc.constant('take' as const), count: fc.integer({ min: 1, max: 8 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const backlog = new RetryBacklog<Rec>();
        const model = new Model();
        // Ids unique per run: shift the generator's ids by run.
        const seen = new Set<number>();
        for (const step of ops) {
          if (step.kind === 'add') {
            const ids = step.ids.filter((id) => !seen.has(id));
            for (const id of ids) seen.add(id);
            backlog.add(
              step.visibleAt,
              ids.map((id) => ({ id })),
            );
            model.add(step.visibleAt, ids);
          } else if (step.kind === 'promote') {
            backlog.promote(step.now);
            model.promote(step.now);
          } else {
            for (let i = 0; i < step.count; i++) {
              const expected = model.take();
              expect(backlog.peek()?.id).toBe(expected);
              expect(backlog.shift()?.id).toBe(expected);
            }
          }
          expect(backlog.size).toBe(model.size);
          const held: number[] = [];
          backlog.forEach((r) => held.push(r.id));
          expect(held.sort((a, b) => a - b)).toEqual(model.ids);
        }
      }),
    );
  });
});

describe('Heap', () => {
  it('pops in order whatever was pushed, with the top re-sifted after a change', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1000, max: 1000 })), fc.nat(), (values, bump) => {
        const heap = new Heap<{ v: number }>((a, b) => a.v < b.v);
        for (const v of values) heap.push({ v });
        const expected = [...values].sort((a, b) => a - b);
        const top = heap.peek();
        if (top) {
          // Grow the top's key and tell the heap.
          expected[expected.indexOf(top.v)] = top.v + bump;
          expected.sort((a, b) => a - b);
          top.v += bump;
          heap.topChanged();
        }
        const popped: number[] = [];
        for (let item = heap.pop(); item; item = heap.pop()) popped.push(item.v);
        expect(popped).toEqual(expected);
        expect(heap.size).toBe(0);
      }),
    );
  });
});
