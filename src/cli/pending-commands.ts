/**
 * `ioasid profile` and `ioasid inspect`: their command lines and help are here, their work is not
 * yet (issue 7 items 6 and 7). Running one says so and exits with status 2.
 */
import type { Command } from 'commander';
import { SCENARIOS } from '../bench/index.js';
import type { CommandContext } from './context.js';
import { EXIT } from './usage.js';

/** Adds `profile` and `inspect` to `program`. */
export function registerPending(program: Command, ctx: CommandContext): void {
  program
    .command('profile')
    .description('(not implemented yet) flamegraphs of a bench scenario or a trace replay, one per thread')
    .argument('<scenario|trace>', `a bench scenario (${SCENARIOS.join(', ')}) or a trace file`)
    .action(() => {
      ctx.err('ioasid: profile is not implemented yet (issue 7 item 6); use npm run profile:threads meanwhile');
      ctx.done(EXIT.usage);
    });
  program
    .command('inspect')
    .description('(not implemented yet) walk a device and IOVA level by level; dump ranges, caches, queues')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      ctx.err('ioasid: inspect is not implemented yet (issue 7 item 7)');
      ctx.done(EXIT.usage);
    });
}
