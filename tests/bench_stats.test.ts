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
  settleInPasses,
  sharingNames,
  sureCount,
} from "../bench/_stats.ts";

/** Uniform draws in [0, 1) from a fixed seed (a linear congruential one). */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

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

  it("settles misses short of a sure verdict before comparisons within noise", async () => {
    // Each comparison is decided after `after` more repetitions of its
    // group; `short` ones lie on one side of their goal already.
    const item = (name: string, after: number, short: boolean) => ({
      name,
      after,
      short,
      reps: 0,
    });
    type Item = ReturnType<typeof item>;
    const close = item("deno:h2c within noise", 10, false);
    const cheap = item("bun:h1 missed on 3", 2, true);
    const both = [
      item("bun:h2c missed on 3", 2, true),
      item("bun:h2c close", 4, false),
    ];
    const groups: Item[][] = [[close], [cheap], both];
    const ran: string[] = [];
    let allowance = 12; // repetitions the run has time for
    await settleInPasses(
      groups,
      (i) => i.reps < i.after,
      (i) => i.short,
      async (group, more) => {
        while (more() && allowance > 0) {
          allowance--;
          ran.push(group[0].name);
          for (const i of group) i.reps++;
          await Promise.resolve();
        }
      },
    );
    assert.deepEqual(ran, [
      // First pass: only the groups holding a short miss, each until none is.
      "bun:h1 missed on 3",
      "bun:h1 missed on 3",
      "bun:h2c missed on 3",
      "bun:h2c missed on 3",
      // Second pass, in the groups' order: what is still open.
      ...Array(8).fill("deno:h2c within noise"),
    ]);
    assert.equal(cheap.reps, 2);
    assert.equal(both[0].reps, 2);
    assert.equal(both[1].reps, 2); // its group came after the close one
    assert.equal(close.reps, 8); // left open when the allowance ran out
    // In the old order (one pass, the groups in turn) the close comparison
    // would have taken 10 of the 12 and left both cheap misses undecided.
  });

  it("takes the whole range while the repetitions are few", () => {
    assert.deepEqual(medianInterval([1.02, 0.91, 0.99]), [0.91, 1.02]);
    assert.deepEqual(medianInterval([5, 1, 4, 2, 3, 7, 6]), [1, 7]);
  });

  it("narrows to the sign test's interval as repetitions grow", () => {
    // Nine values: the 2nd to the 8th (96% sure); the 3rd to the 7th would
    // be 82%, under CONFIDENCE.
    assert.deepEqual(medianInterval([9, 1, 8, 2, 7, 3, 6, 4, 5]), [2, 8]);
    // Eleven: the 3rd to the 9th (93%); thirteen, the bench's most: the
    // 4th to the 10th (91%); fifteen, still the 4th (to the 12th).
    const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    assert.deepEqual(medianInterval(upTo(11)), [3, 9]);
    assert.deepEqual(medianInterval(upTo(13)), [4, 10]);
    assert.deepEqual(medianInterval(upTo(15)), [4, 12]);
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
    const random = seeded(42);
    const draw = () => 1 - 0.3 * random() ** 3; // median 1 − 0.3 / 8
    const trueMedian = 1 - 0.3 * 0.5 ** 3;
    for (
      const [n, claim] of [
        [3, 0.75],
        [5, 0.9375],
        [9, CONFIDENCE],
        [11, CONFIDENCE],
        [13, CONFIDENCE],
      ]
    ) {
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

  it("settles equal contenders more often with more repetitions, and seldom a slower one", () => {
    // Repetitions' ratios spread as this host's (docs/performance.md,
    // "Settling last, in the time left"): 5% standard deviation, one run in
    // twelve 35% low or 50% high; from a fixed seed.
    const random = seeded(7);
    const normal = () =>
      Math.sqrt(-2 * Math.log(1 - random())) *
      Math.cos(2 * Math.PI * random());
    const ratio = (truth: number) => {
      const r = truth * Math.exp(0.05 * normal());
      return random() < 1 / 12 ? r * (random() < 0.5 ? 0.65 : 1.5) : r;
    };
    const share = (truth: number, n: number, verdict: string) => {
      const trials = 3000;
      let count = 0;
      for (let t = 0; t < trials; t++) {
        const values = Array.from({ length: n }, () => ratio(truth));
        if (judge(values, 0.95, "higher").verdict === verdict) count++;
      }
      return count / trials;
    };
    const equal = [9, 11, 13].map((n) => share(1, n, "met"));
    assert.ok(
      equal[0] < equal[1] && equal[1] < equal[2] && equal[2] > 0.7,
      `equal contenders met at 9, 11, 13 repetitions: ${equal.join(", ")}`,
    );
    for (const n of [9, 11, 13]) {
      const slower = share(0.93, n, "met");
      assert.ok(slower < 0.01, `0.93× met at ${n}: ${slower}`);
      assert.equal(share(0.9, n, "met"), 0, `0.9× met at ${n}`);
      assert.equal(share(1, n, "missed"), 0, `1× missed at ${n}`);
    }
    // Three repetitions take their whole range (75% sure): a 0.93×
    // contender is met when all three land above the goal, a few runs in a
    // hundred.
    const three = share(0.93, 3, "met");
    assert.ok(three > 0 && three < 0.06, `0.93× met at 3: ${three}`);
  });
});
