// glassbox: the command line. One module per command; this file only dispatches and turns errors
// into one line on stderr with a non-zero exit code.

import { GlassboxError } from '../engine/errors.ts';

export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<void>;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  inspect: async () => (await import('./inspect.ts')).inspect,
  tokenize: async () => (await import('./tokenize.ts')).tokenize,
  synth: async () => (await import('./synth.ts')).synth,
  logits: async () => (await import('./logits.ts')).logits,
  generate: async () => (await import('./generate.ts')).generate,
  trace: async () => (await import('./trace.ts')).trace,
  bench: async () => (await import('./bench.ts')).bench,
};

/** Extra commands registered by later modules (logits, generate, trace, bench). */
export function registerCommand(name: string, load: () => Promise<Command>): void {
  COMMANDS[name] = load;
}

async function help(): Promise<string> {
  const lines = ['glassbox — look inside Llama-family language models', '', 'Commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    const c = await load();
    lines.push(`  ${c.usage}`, `      ${c.summary}`);
  }
  lines.push('', "Every command prints JSON with --json. 'glassbox COMMAND --help' for one command.");
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(await help());
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`glassbox: unknown command '${name}'. Commands: ${Object.keys(COMMANDS).join(', ')}`);
    return 2;
  }
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${command.usage}\n\n${command.summary}`);
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof GlassboxError) {
      console.error(`glassbox ${name}: ${e.message}`);
      return e.code === 'usage' ? 2 : 1;
    }
    console.error(`glassbox ${name}: internal error: ${(e as Error).stack ?? e}`);
    return 70;
  }
}
