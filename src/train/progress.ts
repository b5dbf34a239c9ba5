// Progress bar with loss, tokens/s and ETA (cli-progress), or nothing in quiet mode / when not a TTY
// (then a plain line every few seconds, so logs of long runs still show life).
import cliProgress from "cli-progress";

export interface ProgressOptions {
  total: number;
  label: string;
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
}

export class Progress {
  private bar?: cliProgress.SingleBar;
  private lastPlain = 0;
  private readonly start = Date.now();
  private value = 0;

  constructor(private readonly o: ProgressOptions) {
    const stream = o.stream ?? process.stderr;
    if (!o.quiet && stream.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${o.label} |{bar}| {value}/{total} {unit} | loss {loss} | {rate} | ETA {eta_formatted}`,
          stream,
          hideCursor: true,
          etaBuffer: 20,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(o.total, 0, { loss: "-", rate: "-", unit: "steps" });
    }
  }

  update(value: number, fields: { loss?: number; tokensPerSecond?: number; unit?: string } = {}): void {
    this.value = value;
    const payload = {
      loss: fields.loss !== undefined ? fields.loss.toFixed(4) : "-",
      rate: fields.tokensPerSecond !== undefined ? `${Math.round(fields.tokensPerSecond)} tok/s` : "-",
      unit: fields.unit ?? "steps",
    };
    if (this.bar) {
      this.bar.update(value, payload);
      return;
    }
    if (this.o.quiet) return;
    const now = Date.now();
    if (now - this.lastPlain > 5000 || value >= this.o.total) {
      this.lastPlain = now;
      const elapsed = (now - this.start) / 1000;
      const eta = value > 0 ? (elapsed / value) * (this.o.total - value) : NaN;
      (this.o.stream ?? process.stderr).write(
        `${this.o.label} ${value}/${this.o.total} ${payload.unit} | loss ${payload.loss} | ${payload.rate} | ETA ${Number.isFinite(eta) ? eta.toFixed(0) + "s" : "-"}\n`,
      );
    }
  }

  stop(): void {
    this.bar?.stop();
  }

  get current(): number {
    return this.value;
  }
}
