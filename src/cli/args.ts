// Argument parsing shared by every command: node:util's parseArgs with the errors turned into
// UsageError, and typed getters that name the flag when a value is wrong.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../engine/errors.ts';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

export function parse(command: string, argv: string[], options: Options): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...options }, allowPositionals: true, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (e) {
    throw new UsageError(`glassbox ${command}`, (e as Error).message.replace(/\. To specify.*$/s, ''), `Run 'glassbox ${command} --help'`);
  }
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function num(p: Parsed, name: string, fallback: number, { min = -Infinity, max = Infinity, integer = false } = {}): number {
  const v = str(p, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new UsageError(`--${name}`, `'${v}' is not ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
  }
  return n;
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** A comma-separated list of token ids: "1,2,3". */
export function ids(p: Parsed, name: string): number[] | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const out = v.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (out.length === 0 || out.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw new UsageError(`--${name}`, `'${v}' is not a comma-separated list of token ids`);
  }
  return out;
}

export function onePositional(p: Parsed, command: string, what = 'MODEL'): string {
  if (p.positionals.length !== 1) {
    throw new UsageError(`glassbox ${command}`, `expects one ${what}, got ${p.positionals.length}`, `Run 'glassbox ${command} --help'`);
  }
  return p.positionals[0]!;
}
