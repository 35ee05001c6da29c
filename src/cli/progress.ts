/**
 * A progress bar on stderr, shown only when stderr is a terminal: piped or redirected output
 * (and `--json` on stdout) stays clean.
 */
import cliProgress from 'cli-progress';

/** A progress bar, or nothing when stderr is not a TTY. */
export interface Progress {
  /** Moves the bar to `fraction` (0–1) with a label of what runs now. */
  update(fraction: number, label: string): void;
  /** Removes the bar. */
  stop(): void;
}

const NONE: Progress = { update: () => undefined, stop: () => undefined };
const STEPS = 1000;

/** A progress bar titled `title` on stderr, if stderr is a TTY. */
export function progressBar(title: string): Progress {
  if (process.stderr.isTTY !== true) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${title} [{bar}] {percentage}% | ETA {eta_formatted} | {label}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(STEPS, 0, { label: '' });
  return {
    update: (fraction, label) => bar.update(Math.round(Math.min(1, Math.max(0, fraction)) * STEPS), { label }),
    stop: () => bar.stop(),
  };
}
