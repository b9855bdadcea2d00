// The step registry's order: each step after every step it depends on. STEPS (index.ts) is the one
// list of steps; this module only checks its edges and orders it.
import { BinkubeError } from "../errors";
import type { StepDef } from "./types";

/** The registry's deps cannot be ordered: a step no module provides, a name twice, or a cycle. */
export class StepGraphError extends BinkubeError {}

/** A dep on the step itself ("previous-host": its instances roll) orders hosts, not steps. */
const edges = (s: StepDef) => s.deps.filter((d) => d.step !== s.name);

/**
 * The steps in a stable topological order: each after the steps it depends on, otherwise in the
 * order given (Kahn's algorithm, taking the earliest ready step each time), so a list already in
 * order comes back as it is and the plan's order stays what the list says.
 */
export function orderSteps(steps: readonly StepDef[]): StepDef[] {
  const names = new Set<string>();
  for (const s of steps) {
    if (names.has(s.name)) throw new StepGraphError(`two steps are named ${s.name}`, { fix: "give each step module a name of its own" });
    names.add(s.name);
  }
  for (const s of steps) {
    for (const d of edges(s)) {
      if (!names.has(d.step)) {
        throw new StepGraphError(`step ${s.name} depends on step ${d.step} (${d.why}), and no step is named ${d.step}`, {
          fix: `add ${d.step}'s module to STEPS (src/steps/index.ts), or drop the dep from ${s.name}`,
        });
      }
    }
  }
  const order: StepDef[] = [];
  const placed = new Set<string>();
  const waiting = [...steps];
  while (waiting.length > 0) {
    const ready = waiting.findIndex((s) => edges(s).every((d) => placed.has(d.step)));
    if (ready < 0) throw cycleError(waiting);
    const [next] = waiting.splice(ready, 1);
    order.push(next!);
    placed.add(next!.name);
  }
  return order;
}

/**
 * Every step left waits for another one left: follow first unplaced deps from the first of them
 * until a step repeats; the path from its first visit is a cycle.
 */
function cycleError(waiting: StepDef[]): StepGraphError {
  const byName = new Map(waiting.map((s) => [s.name, s]));
  const path: { step: StepDef; why: string }[] = [];
  let at = waiting[0]!;
  while (!path.some((p) => p.step === at)) {
    const dep = edges(at).find((d) => byName.has(d.step))!;
    path.push({ step: at, why: dep.why });
    at = byName.get(dep.step)!;
  }
  const cycle = path.slice(path.findIndex((p) => p.step === at));
  const text = cycle.map((p, i) => `${p.step.name} depends on ${(cycle[i + 1] ?? cycle[0]!).step.name} (${p.why})`).join(", ");
  return new StepGraphError(`the steps' deps form a cycle: ${text}`, {
    fix: `drop one of these deps: a step may depend only on steps that can finish before it starts`,
  });
}
