// Named errors. Every error glassbox raises on bad input is one of these: its message names the
// file (or field) and says what is wrong and what to do, so the UI and the CLI can show it as is.

export type ErrorCode =
  | 'format'        // a model or tokenizer file is malformed
  | 'truncated'     // a file ends before the data it declares
  | 'unsupported'   // a well-formed file that glassbox cannot run (unknown tensor type, architecture)
  | 'config'        // hyperparameters missing or contradicting the tensors
  | 'tokenizer'     // a tokenizer file is malformed or missing pieces
  | 'context'       // a prompt longer than the model's context
  | 'usage'         // a caller asked for something impossible (bad CLI flag, unknown hook)
  | 'network'       // a download failed
  | 'cancelled'     // a run or load was cancelled (a newer request replaced it, or the caller aborted)
  | 'worker'        // the engine's worker died and could not be brought back
  | 'integrity';    // a downloaded or cached file is not the one expected (size or SHA-256)

export class GlassboxError extends Error {
  readonly code: ErrorCode;
  /** The file, URL or field the problem is in, when there is one. */
  readonly where: string | undefined;
  constructor(code: ErrorCode, where: string | undefined, problem: string, hint?: string) {
    super(`${where ? `${where}: ` : ''}${problem}${hint ? `. ${hint}` : ''}`);
    this.code = code;
    this.where = where;
  }
}

/** The file's structure is wrong: bad magic, impossible sizes, invalid JSON, duplicate names. */
export class ModelFormatError extends GlassboxError {
  override name = 'ModelFormatError';
  constructor(where: string | undefined, problem: string, hint = 'The file is damaged or is not the format its name says; download it again or pick another file') {
    super('format', where, problem, hint);
  }
}

/** The file ends before the data it declares. */
export class TruncatedFileError extends GlassboxError {
  override name = 'TruncatedFileError';
  constructor(where: string | undefined, problem: string, hint = 'The file is incomplete; download it again') {
    super('truncated', where, problem, hint);
  }
}

/** Well-formed, but uses something glassbox does not implement. */
export class UnsupportedError extends GlassboxError {
  override name = 'UnsupportedError';
  constructor(where: string | undefined, problem: string, hint = 'Convert the model to a supported type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q8_K) with llama.cpp') {
    super('unsupported', where, problem, hint);
  }
}

/** Hyperparameters that are missing or disagree with the tensors. */
export class ConfigError extends GlassboxError {
  override name = 'ConfigError';
  constructor(where: string | undefined, problem: string, hint = 'Check that the config and the weights belong to the same model') {
    super('config', where, problem, hint);
  }
}

export class TokenizerError extends GlassboxError {
  override name = 'TokenizerError';
  constructor(where: string | undefined, problem: string, hint = 'Use the tokenizer file that came with the model') {
    super('tokenizer', where, problem, hint);
  }
}

export class ContextLengthError extends GlassboxError {
  override name = 'ContextLengthError';
  constructor(promptTokens: number, contextLength: number) {
    super('context', 'prompt', `the prompt is ${promptTokens} tokens but the model's context is ${contextLength} tokens`,
      'Shorten the prompt');
  }
}

export class UsageError extends GlassboxError {
  override name = 'UsageError';
  constructor(where: string | undefined, problem: string, hint?: string) {
    super('usage', where, problem, hint);
  }
}

/** A download or range request failed. */
export class NetworkError extends GlassboxError {
  override name = 'NetworkError';
  constructor(where: string | undefined, problem: string, hint = 'Check the connection and the URL, then try again') {
    super('network', where, problem, hint);
  }
}

/**
 * A request was cancelled before it finished: the caller aborted it, or a newer run for the same
 * slot (a prompt edit) replaced it. Not a failure: the engine stays usable, and the page simply
 * drops the answer it no longer wants.
 */
export class CancelledError extends GlassboxError {
  override name = 'CancelledError';
  /** The request that was cancelled. */
  readonly requestId: string;
  constructor(requestId: string, why = 'it was cancelled') {
    super('cancelled', `request ${requestId}`, why, 'Nothing to do: a newer request takes its place');
    this.requestId = requestId;
  }
}

/** The engine's worker died (crashed, out of memory, terminated) and could not be restarted. */
export class WorkerError extends GlassboxError {
  override name = 'WorkerError';
  constructor(where: string | undefined, problem: string, hint = 'Reload the page; if it happens again, pick a smaller model or close other tabs') {
    super('worker', where, problem, hint);
  }
}

/** A downloaded (or cached) file's size or SHA-256 is not the one the catalog or the caller declared. */
export class IntegrityError extends GlassboxError {
  override name = 'IntegrityError';
  constructor(where: string | undefined, problem: string, hint = 'The file on the server is not the one expected; it was not used or kept. Try again later, or check the URL and its checksum') {
    super('integrity', where, problem, hint);
  }
}
