import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Queue } from '../../lib/core/queue.js';

type Op =
  | { op: 'push'; value: number }
  | { op: 'shift' }
  | { op: 'set'; index: number; value: number }
  | { op: 'insert'; index: number; value: number };

describe('Queue', () => {
  it('behaves like an array used as a FIFO (with inserts), across many chunks', () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({ op: fc.constant('push' as const), value: fc.integer() }),
      },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('shift' as const) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant('set' as const),
          index: fc.nat(5000),
          value: fc.integer(),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant('insert' as const),
          index: fc.nat(5000),
          value: fc.integer(),
        }),
      },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), fc.nat(3000), (ops, bulk) => {
        const queue = new Queue<number>();
        const model: number[] = [];
        for (let i = 0; i < bulk; i++) {
          queue.push(i);
          model.push(i);
        }
        for (const o of ops) {
          if (o.op === 'push') {
            queue.push(o.value);
            model.push(o.value);
          } else if (o.op === 'shift') {
            expect(queue.shift()).toBe(model.shift());
          } else if (o.op === 'insert') {
            queue.insert(o.index, o.value);
            model.splice(Math.min(o.index, model.length), 0, o.value);
          } else {
            expect(queue.set(o.index, o.value)).toBe(o.index < model.length);
            if (o.index < model.length) model[o.index] = o.value;
          }
          expect(queue.length).toBe(model.length);
          expect(queue.peek()).toBe(model[0]);
        }
        for (let i = 0; i < model.length; i += 97) expect(queue.at(i)).toBe(model[i]);
        expect(queue.at(model.length)).toBeUndefined();
        const drained: number[] = [];
        while (queue.length > 0) drained.push(queue.shift() as number);
        expect(drained).toEqual(model);
      }),
      { numRuns: 200 },
    );
  });
});
