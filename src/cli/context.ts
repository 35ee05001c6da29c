/** What a subcommand's action gets from the CLI: where to print, and how to report its exit status. */

/** The CLI's services for a subcommand. */
export interface CommandContext {
  /** The command line as typed (`ioasid bench --json`), for reports. */
  readonly commandLine: string;
  /** Writes a line (or lines) to stdout. */
  readonly out: (text: string) => void;
  /** Writes a line to stderr. */
  readonly err: (text: string) => void;
  /** Records the subcommand's exit status. */
  readonly done: (status: number) => void;
}
