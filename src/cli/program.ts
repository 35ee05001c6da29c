/**
 * The `ioasid` command line on commander: its subcommands, and the rules every one of them keeps.
 * A bad flag, value or file is one line on stderr and exit status 2 (commander's own is 1);
 * `--help` prints to stdout and exits 0.
 */
import { Command, CommanderError } from 'commander';
import { registerBench } from './bench-command.js';
import type { CommandContext } from './context.js';
import { registerInspect } from './inspect-command.js';
import { registerProfile } from './profile-command.js';
import { registerReplay } from './replay-command.js';

/** The program's version, from package.json (machineInfo reads the same file). */
export interface ProgramInfo {
  version: string;
}

/** One line: commander's message without its 'error: ' prefix, its suggestion on the same line. */
function oneLine(message: string): string {
  return message
    .replace(/^error: /, '')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .join(' ');
}

/** Builds the program; actions report their exit status through `ctx.done`. */
export function buildProgram(ctx: CommandContext, info: ProgramInfo): Command {
  const program = new Command('ioasid');
  // Set before the subcommands are added: `.command()` copies them to each.
  program
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`ioasid: ${oneLine(s)}\n`),
    })
    .showSuggestionAfterError(true);
  program
    .description(
      'a simulator of Linux iommufd and emulated vIOMMUs (Intel VT-d, Arm SMMUv3): load tests, trace replays, ' +
        'profiles and a look into guest translation state',
    )
    .version(info.version, '-V, --version')
    .helpCommand('help [command]', 'show help for a command')
    .addHelpText(
      'after',
      '\nExit status: 0 success, 1 a failed correctness check or replay, 2 a bad flag, value or file.\n' +
        "Run 'ioasid <command> --help' for a command's flags.",
    );
  registerBench(program, ctx);
  registerReplay(program, ctx);
  registerProfile(program, ctx);
  registerInspect(program, ctx);
  return program;
}

/** Whether `e` is commander's way of saying it printed help or the version (exit 0). */
export function isHelpOrVersion(e: unknown): boolean {
  return (
    e instanceof CommanderError &&
    (e.code === 'commander.helpDisplayed' ||
      e.code === 'commander.version' ||
      (e.code === 'commander.help' && e.exitCode === 0))
  );
}
