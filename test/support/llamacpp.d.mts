// Types for llamacpp.mjs (plain ESM so that test/run.mjs can use it without tsx).

export declare const LLAMACPP_VERSION: string;
export declare const LLAMACPP_DIR: string;
/** Installs node-llama-cpp (CPU binary only) into .cache/llamacpp when missing; resolves to the file: URL of its entry module. */
export declare function ensureLlamaCpp(): Promise<string>;
/** getLlama's options for glassbox: CPU only, prebuilt binary, no build, no download. */
export declare const LLAMA_OPTIONS: Readonly<Record<string, unknown>>;
/** ensureLlamaCpp, then getLlama({ ...LLAMA_OPTIONS, ...extra }); typed loosely (the package is not a dependency). */
export declare function loadLlama(extra?: Record<string, unknown>): Promise<any>;
