// The bench's verdicts (bench/_stats.ts): a target is met or missed only
// when the interval around the median of its repetitions' own values lies
// on one side of the goal, and that interval holds the true median as
// often as it claims.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  CONFIDENCE,
  differences,
  judge,
  median,
  medianInterval,
  ratios,
  sharingNames,
  sureCount,
} from "../bench/_stats.ts";

describe("bench statistics", () => {
  it("pairs each repetition's values, and skips what did not run", () => {
    assert.deepEqual(ratios([2, 3, 8], [1, 3, 4, 9]), [2, 1, 2]);
    assert.deepEqual(differences([5, 7], [1, 9, 3]), [4, -2]);
    assert.equal(median([3, NaN, 1, 2]), 2);
    assert.ok(Number.isNaN(median([NaN])));
  });

  it("groups the comparisons that share a contender, through others too", () => {
    const check = (...names: string[]) => ({ names });
    const groups = sharingNames([
      check("ours-connect", "floor-h1"),
      check("ours-grpc", "floor-h2"),
      check("ours-web", "floor-h1-sums"),
      check("ours-web", "floor-h1"),
      check("bun:ours", "bun:floor"),
    ]);
    const named = groups.map((g) =>
      [...new Set(g.flatMap((c) => c.names))].sort().join(" ")
    ).sort();
    assert.deepEqual(named, [
      "bun:floor bun:ours",
      "floor-h1 floor-h1-sums ours-connect ours-web",
      "floor-h2 ours-grpc",
    ]);
    assert.equal(groups.flat().length, 5);
    assert.deepEqual(sharingNames([]), []);
  });

  it("takes the whole range while the repetitions are few", () => {
    assert.deepEqual(medianInterval([1.02, 0.91, 0.99]), [0.91, 1.02]);
    assert.deepEqual(medianInterval([5, 1, 4, 2, 3, 7, 6]), [1, 7]);
  });

  it("narrows to the sign test's interval as repetitions grow", () => {
    // Nine values: the 2nd to the 8th (96% sure); the 3rd to the 7th would
    // be 82%, under CONFIDENCE.
    assert.deepEqual(medianInterval([9, 1, 8, 2, 7, 3, 6, 4, 5]), [2, 8]);
    // Eleven: the 3rd to the 9th (93%).
    const eleven = Array.from({ length: 11 }, (_, i) => i + 1);
    assert.deepEqual(medianInterval(eleven), [3, 9]);
  });

  it("tells how many values a sure verdict needs", () => {
    // The whole range of n values misses the median with probability
    // 2 / 2^n: 25% at 3, 12.5% at 4, 6.25% at 5.
    assert.deepEqual([0, 3, 4, 5, 9].map(sureCount), [
      false,
      false,
      false,
      true,
      true,
    ]);
    // Where sureCount first holds, the interval still takes the whole
    // range: a verdict there rests on every value, and is that sure.
    assert.deepEqual(medianInterval([3, 1, 5, 2, 4]), [1, 5]);
  });

  it("says met or missed only when the interval lies on one side", () => {
    assert.equal(judge([0.97, 1.02, 0.99], 0.95, "higher").verdict, "met");
    assert.equal(judge([0.85, 0.9, 0.88], 0.95, "higher").verdict, "missed");
    const near = judge([0.93, 1.01, 0.98], 0.95, "higher");
    assert.equal(near.verdict, "within noise");
    assert.equal(near.value, 0.98);
    assert.deepEqual(near.interval, [0.93, 1.01]);
    // Lower is better: a latency ratio, a memory difference.
    assert.equal(judge([1.05, 1.1, 1.12], 1.15, "lower").verdict, "met");
    assert.equal(judge([1.2, 1.3, 1.25], 1.15, "lower").verdict, "missed");
    assert.equal(judge([5, 9, 12], 8, "lower").verdict, "within noise");
    // Nothing measured is a miss, not a pass.
    assert.equal(judge([NaN, NaN], 0.95, "higher").verdict, "missed");
    assert.equal(judge([], 0.95, "higher").verdict, "missed");
  });

  it("holds the true median as often as it claims", () => {
    // Skewed noise (a shared host: mostly near, sometimes far slower),
    // from a fixed seed. The interval's coverage must not fall below its
    // claim for the repetition counts the bench uses.
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const draw = () => 1 - 0.3 * random() ** 3; // median 1 − 0.3 / 8
    const trueMedian = 1 - 0.3 * 0.5 ** 3;
    for (const [n, claim] of [[3, 0.75], [5, 0.9375], [9, CONFIDENCE]]) {
      const trials = 4000;
      let held = 0;
      for (let t = 0; t < trials; t++) {
        const [lo, hi] = medianInterval(Array.from({ length: n }, draw));
        if (lo <= trueMedian && trueMedian <= hi) held++;
      }
      assert.ok(
        held / trials >= claim - 0.02,
        `${n} values: held ${held} of ${trials}, claimed ${claim}`,
      );
    }
  });
});
