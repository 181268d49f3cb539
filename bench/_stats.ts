// The bench's statistics (bench/run.ts): medians, the repetitions' paired
// ratios and differences, and the verdict of a target on them.

/** The median of the finite values; NaN when there is none. */
export function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The ratio of two contenders of one comparison: the median, over the
 * repetitions, of each repetition's own ratio (a / b, both measured in that
 * repetition, seconds apart). A slow spell of the shared host that covers
 * a repetition slows both sides of its ratio alike; the ratio of the two
 * medians could take a's from a slow repetition and b's from a quick one
 * (measured: lockstep p50s of 101, 93, 51 µs against 99, 63, 57 µs gave
 * 1.48× as a ratio of medians, from repetitions whose own ratios were
 * 1.02, 1.48 and 0.89).
 */
export function ratio(a: number[], b: number[]): number {
  return median(ratios(a, b));
}

/** Each repetition's own ratio a / b, both measured in it. */
export function ratios(a: number[], b: number[]): number[] {
  const each: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) each.push(a[i] / b[i]);
  return each;
}

/** Each repetition's own difference a − b, both measured in it. */
export function differences(a: number[], b: number[]): number[] {
  const each: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) each.push(a[i] - b[i]);
  return each;
}

/**
 * How sure the interval of a verdict must be to hold the median of the
 * repetitions' own values (see medianInterval).
 */
export const CONFIDENCE = 0.9;

/**
 * An interval that holds the true median of the distribution `values` come
 * from at least CONFIDENCE of the time, whatever that distribution: the
 * sign test's, between the k-th smallest and the k-th largest value, k as
 * large as CONFIDENCE allows. When even the whole range falls short of it,
 * the whole range (3 values: 75%; 4: 88%; 5 to 7: 94-98%; 9: the 2nd to the
 * 8th, 96%).
 */
export function medianInterval(values: number[]): [number, number] {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return [NaN, NaN];
  const choose = (i: number) => {
    let c = 1;
    for (let j = 1; j <= i; j++) c = c * (n - j + 1) / j;
    return c;
  };
  // The true median lies below the k-th smallest value when fewer than k
  // values fall below it: P(Binomial(n, 1/2) < k), and as likely above the
  // k-th largest.
  const coverage = (k: number) => {
    let below = 0;
    for (let i = 0; i < k; i++) below += choose(i);
    return 1 - 2 * below / 2 ** n;
  };
  let k = 1;
  while (2 * (k + 1) <= n + 1 && coverage(k + 1) >= CONFIDENCE) k++;
  return [v[k - 1], v[n - k]];
}

/**
 * Whether `n` values are enough for their whole range to hold the true
 * median CONFIDENCE of the time (at 90%: 5 and more, 94%; 4: 88%; 3: 75%):
 * below that, even a verdict whose values all fall on one side of the
 * goal is less sure than CONFIDENCE (two equal contenders' three
 * repetitions all land on the same side of 1× one run in four).
 */
export function sureCount(n: number): boolean {
  return n > 0 && 1 - 2 / 2 ** n >= CONFIDENCE;
}

/**
 * A target's verdict. "met" or "missed" only when the interval of the
 * repetitions' own values (medianInterval) lies wholly on one side of the
 * goal; "within noise" when it holds the goal: this run cannot tell the
 * two apart, and says so, instead of letting the noise of the shared host
 * decide (a median alone went either way from run to run for the rows
 * near their line: docs/performance.md, "Verdicts within noise").
 */
export type Verdict = "met" | "missed" | "within noise";

/**
 * Judges the repetitions' own values of a comparison (ratios or
 * differences, each measured within one repetition) against `goal`: their
 * median, the verdict and its interval.
 */
export function judge(
  values: number[],
  goal: number,
  better: "higher" | "lower",
): { value: number; verdict: Verdict; interval: [number, number] } {
  const value = median(values);
  const interval = medianInterval(values);
  const good = (x: number) => better === "higher" ? x >= goal : x <= goal;
  const [lo, hi] = interval;
  const verdict: Verdict = !Number.isFinite(value)
    ? "missed"
    : good(lo) && good(hi)
    ? "met"
    : !good(lo) && !good(hi)
    ? "missed"
    : "within noise";
  return { value, verdict, interval };
}

/**
 * `items` in groups: each item with every other item that shares one of
 * its `names`, directly or through others (the comparisons that must be
 * repeated together to stay paired, because they share a contender). The
 * groups keep no particular order; nor do the items in them.
 */
export function sharingNames<T extends { names: string[] }>(
  items: T[],
): T[][] {
  const groups: T[][] = [];
  for (const item of items) {
    const sharing = groups.filter((group) =>
      group.some((other) => other.names.some((n) => item.names.includes(n)))
    );
    for (const group of sharing) groups.splice(groups.indexOf(group), 1);
    groups.push([...sharing.flat(), item]);
  }
  return groups;
}

/**
 * Repeats the groups of comparisons (sharingNames) in two passes: first
 * every group that holds a comparison `short` of a sure verdict (its
 * repetitions all on one side of the goal, but fewer than sureCount asks),
 * each until none is left short; then every group that holds one still
 * `open`, each until none is. `repeat` runs repetitions of a group while
 * `more()` holds and its own limits (count, time) allow. A short
 * comparison needs a repetition or two, a comparison within noise up to
 * every one the allowance has: in one order, a close comparison early in
 * the list spent a whole allowance and left cheap verdicts undecided.
 */
export async function settleInPasses<T>(
  groups: T[][],
  open: (item: T) => boolean,
  short: (item: T) => boolean,
  repeat: (group: T[], more: () => boolean) => Promise<void>,
): Promise<void> {
  const passes = [(item: T) => open(item) && short(item), open];
  for (const wanted of passes) {
    for (const group of groups) {
      if (group.some(wanted)) await repeat(group, () => group.some(wanted));
    }
  }
}
