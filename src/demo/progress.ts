// One progress bar over a whole multi-stage run (the demo: base, every row, every seed), with the current stage
// and an ETA. Work is counted in "units" (about one training step of the demo's batch); stages report as they go.
// Not a TTY: a plain line every 10 s and at each stage start. Quiet: nothing.
import cliProgress from "cli-progress";

/** What a stage of a run reports: RunProgress, or a worker process's messages to the parent's RunProgress. */
export interface ProgressSink {
  stage(name: string): void;
  advance(units: number): void;
}

export class RunProgress implements ProgressSink {
  private bar?: cliProgress.SingleBar;
  private value = 0;
  private stageName = "";
  private lastPlain = 0;
  private readonly t0 = Date.now();

  constructor(
    private readonly total: number,
    private readonly quiet = false,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly label = "demo",
  ) {
    if (!quiet && stream.isTTY) {
      this.bar = new cliProgress.SingleBar(
        { format: `${label} |{bar}| {percentage}% | {stage} | elapsed {duration_formatted} | ETA {eta_formatted}`, stream, hideCursor: true, etaBuffer: 200, fps: 4 },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(Math.max(1, Math.round(total)), 0, { stage: "" });
    }
  }

  /** Names the stage now running. */
  stage(name: string): void {
    this.stageName = name;
    this.bar?.update(Math.round(this.value), { stage: name });
    this.plain(true);
  }

  /** Adds `units` of finished work (never past the total). */
  advance(units: number): void {
    this.value = Math.min(this.total, this.value + Math.max(0, units));
    this.bar?.update(Math.round(this.value), { stage: this.stageName });
    this.plain(false);
  }

  get done(): number {
    return this.value;
  }

  private plain(force: boolean): void {
    if (this.bar || this.quiet) return;
    const now = Date.now();
    if (!force && now - this.lastPlain < 10_000) return;
    this.lastPlain = now;
    const elapsed = (now - this.t0) / 1000;
    const eta = this.value > 0 ? (elapsed / this.value) * (this.total - this.value) : NaN;
    const pct = Math.floor((100 * this.value) / Math.max(1, this.total));
    this.stream.write(`${this.label} ${pct}% | ${this.stageName} | elapsed ${elapsed.toFixed(0)}s | ETA ${Number.isFinite(eta) ? eta.toFixed(0) + "s" : "-"}\n`);
  }

  stop(): void {
    this.value = this.total;
    this.bar?.update(Math.round(this.total), { stage: "done" });
    this.bar?.stop();
  }
}

/** A callback that turns a stage's own step counter (0..steps) into units of the run's bar. */
export function stepReporter(p: Pick<ProgressSink, "advance">, unitsPerStep: number): (step: number) => void {
  let last = 0;
  return (step: number) => {
    if (step > last) {
      p.advance((step - last) * unitsPerStep);
      last = step;
    }
  };
}
