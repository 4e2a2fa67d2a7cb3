// Hugging Face tokenizer.json (+ tokenizer_config.json) -> TokenizerData.
//
// Two shapes of `model.type: "BPE"` are read:
//   - byte-level BPE (a ByteLevel pre-tokenizer or decoder): Llama 3, SmolLM, GPT-2. The
//     pre-tokenizer is recognised by its regex / structure and named as llama.cpp names it
//     ('llama-bpe', 'smollm', 'gpt2');
//   - SentencePiece converted to BPE (byte_fallback, '▁' via a Metaspace pre-tokenizer or a
//     Prepend/Replace normalizer): TinyLlama, Llama 2. It becomes an 'spm' vocabulary. Its scores
//     are derived from the merge list: the token a merge produces scores -rank (the first merge
//     that makes it), so "highest score" picks the same pair as "lowest merge rank"; tokens no
//     merge produces score below all of them. Converted SentencePiece files list every split of
//     every piece in score order, so this is SentencePiece's own order again.
// added_tokens become Control (special: true) or UserDefined tokens. BOS/EOS come from
// tokenizer_config.json, else from a TemplateProcessing post-processor.

import type { TokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { TokenizerError } from '../engine/errors.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Texts llama.cpp also treats as end of generation when a vocabulary has them as control tokens. */
export const EOG_TEXTS = ['<|eot_id|>', '<|eom_id|>', '<|end_of_text|>', '<|im_end|>', '<|endoftext|>', '<end_of_turn>', '<|end|>'];
/** The largest vocabulary accepted (ids are validated against it before allocating). */
const MAX_VOCAB = 1 << 22;

/** Every component of a (possibly Sequence) pre_tokenizer / normalizer / decoder / post_processor. */
function components(v: unknown): Obj[] {
  if (!isObj(v)) return [];
  const inner = v['pretokenizers'] ?? v['normalizers'] ?? v['decoders'] ?? v['processors'];
  return Array.isArray(inner) ? inner.flatMap(components) : [v];
}

function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v['content'] === 'string') return v['content'];
  return null;
}

export function tokenizerDataFromHfJson(tokenizerJson: unknown, tokenizerConfig: unknown | null, where: string): TokenizerData {
  let j = tokenizerJson;
  if (typeof j === 'string') {
    try { j = JSON.parse(j); } catch (e) {
      throw new TokenizerError(where, `is not JSON (${(e as Error).message})`, 'Give the tokenizer.json that came with the model');
    }
  }
  if (!isObj(j)) throw new TokenizerError(where, 'is not a JSON object', 'Give the tokenizer.json that came with the model');
  const cfg = isObj(tokenizerConfig) ? tokenizerConfig : {};
  const model = j['model'];
  if (!isObj(model)) throw new TokenizerError(`${where}: model`, 'is missing or not an object');
  const type = model['type'] ?? (model['merges'] !== undefined ? 'BPE' : undefined);
  if (type !== 'BPE') {
    throw new TokenizerError(`${where}: model.type`, `is ${JSON.stringify(type)}; glassbox reads BPE tokenizers (Llama, SmolLM, GPT-2 families)`);
  }
  const vocab = model['vocab'];
  if (!isObj(vocab)) throw new TokenizerError(`${where}: model.vocab`, 'is missing or not an object');

  // ---- tokens: the vocabulary plus added tokens, by id
  const keys = Object.keys(vocab); // (Object.entries is 3x slower on a 128k-entry vocabulary)
  const added = j['added_tokens'] ?? [];
  if (!Array.isArray(added)) throw new TokenizerError(`${where}: added_tokens`, 'is not an array');
  // Ids must fit a vocabulary of (about) the size the file lists, checked before anything is allocated.
  const limit = Math.min(MAX_VOCAB, keys.length + added.length + 1024);
  const tokens: string[] = new Array<string>(limit);
  let maxId = -1;
  const putId = (id: unknown, s: string, field: string): number => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limit) {
      throw new TokenizerError(`${where}: ${field}`, `has the id ${JSON.stringify(id)}, not an integer in 0..${limit - 1}`);
    }
    tokens[id] = s;
    if (id > maxId) maxId = id;
    return id;
  };
  for (const s of keys) putId(vocab[s], s, `model.vocab[${JSON.stringify(s)}]`);
  const addedTypes = new Map<number, TokenType>();
  const addedIds = new Map<string, number>();
  added.forEach((a, i) => {
    const content = isObj(a) ? a['content'] : undefined;
    if (typeof content !== 'string') throw new TokenizerError(`${where}: added_tokens[${i}].content`, 'is missing or not a string');
    const id = putId((a as Obj)['id'], content, `added_tokens[${i}].id`);
    addedTypes.set(id, (a as Obj)['special'] === true ? TokenType.Control : TokenType.UserDefined);
    addedIds.set(content, id);
  });
  const n = maxId + 1;
  if (n === 0) throw new TokenizerError(`${where}: model.vocab`, 'is empty');
  tokens.length = n;
  const types = new Uint8Array(n).fill(TokenType.Normal);
  for (let id = 0; id < n; id++) {
    if (tokens[id] === undefined) { tokens[id] = `<unused_${id}>`; types[id] = TokenType.Unused; continue; }
    const t = addedTypes.get(id);
    if (t !== undefined) types[id] = t;
  }
  const idOf = (text: string): number | undefined => {
    const a = addedIds.get(text);
    if (a !== undefined) return a;
    const v = Object.hasOwn(vocab, text) ? vocab[text] : undefined;
    return typeof v === 'number' ? v : undefined;
  };

  // ---- merges: "a b" strings or [a, b] pairs
  const rawMerges = model['merges'] ?? [];
  if (!Array.isArray(rawMerges)) throw new TokenizerError(`${where}: model.merges`, 'is not an array');
  const merges: string[] = new Array(rawMerges.length);
  for (let i = 0; i < rawMerges.length; i++) {
    const m = rawMerges[i];
    if (typeof m === 'string') merges[i] = m;
    else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') merges[i] = `${m[0]} ${m[1]}`;
    else throw new TokenizerError(`${where}: model.merges[${i}]`, 'is neither "a b" nor ["a", "b"]');
  }

  // ---- which kind
  const pre = components(j['pre_tokenizer']);
  const all = [...pre, ...components(j['normalizer']), ...components(j['decoder']), ...components(j['post_processor'])];
  const byteLevel = all.some((c) => c['type'] === 'ByteLevel');
  const metaspace = all.some((c) => c['type'] === 'Metaspace' ||
    (c['type'] === 'Prepend' && c['prepend'] === '\u2581') ||
    (c['type'] === 'Replace' && JSON.stringify(c).includes('\u2581')));
  const unkText = typeof model['unk_token'] === 'string' ? model['unk_token'] : tokenText(cfg['unk_token']);
  const unkId = unkText !== null ? idOf(unkText) ?? null : null;

  // ---- special tokens and flags from tokenizer_config.json / the post-processor
  const lookup = (field: string): number | null => {
    const text = tokenText(cfg[field]);
    if (text === null) return null;
    const id = idOf(text);
    if (id === undefined) throw new TokenizerError(`tokenizer_config.json: ${field}`, `${JSON.stringify(text)} is not a token of ${where}`);
    return id;
  };
  const template = components(j['post_processor']).find((c) => c['type'] === 'TemplateProcessing');
  const single = template && Array.isArray(template['single']) ? template['single'] as unknown[] : null;
  const specialInTemplate = (before: boolean): number | null => {
    if (!single) return null;
    const a = single.findIndex((x) => isObj(x) && isObj(x['Sequence']));
    const part = before ? single.slice(0, Math.max(a, 0)) : single.slice(a + 1);
    for (const x of part) {
      const id = isObj(x) && isObj(x['SpecialToken']) ? idOf(String(x['SpecialToken']['id'])) : undefined;
      if (id !== undefined) return id;
    }
    return null;
  };
  const bosId = lookup('bos_token') ?? specialInTemplate(true);
  const eosId = lookup('eos_token') ?? specialInTemplate(false);
  let padId: number | null = null;
  try { padId = lookup('pad_token'); } catch { padId = null; } // a missing pad token does not matter
  const eogIds = EOG_TEXTS.map((s) => idOf(s)).filter((id): id is number => id !== undefined && types[id] === TokenType.Control);

  let chatTemplate: string | null = null;
  const ct = cfg['chat_template'];
  if (typeof ct === 'string') chatTemplate = ct;
  else if (Array.isArray(ct)) {
    const named = ct.filter(isObj);
    const pick = named.find((t) => t['name'] === 'default') ?? named[0];
    if (pick && typeof pick['template'] === 'string') chatTemplate = pick['template'];
  }
  const flag = (field: string): boolean | null => typeof cfg[field] === 'boolean' ? cfg[field] as boolean : null;

  if (byteLevel) {
    let preName: string;
    const split = pre.find((c) => c['type'] === 'Split');
    const regex = split && isObj(split['pattern']) ? split['pattern']['Regex'] : undefined;
    const byteLevelPre = pre.find((c) => c['type'] === 'ByteLevel');
    const digits = pre.find((c) => c['type'] === 'Digits');
    if (regex === LLAMA3_REGEX) preName = 'llama-bpe';
    else if (split === undefined && digits?.['individual_digits'] === true && byteLevelPre?.['use_regex'] !== false) preName = 'smollm';
    else if (split === undefined && digits === undefined && byteLevelPre && byteLevelPre['use_regex'] !== false) preName = 'gpt2';
    else {
      throw new TokenizerError(`${where}: pre_tokenizer`, j['pre_tokenizer'] == null ? 'is missing' : `is not one glassbox knows (${JSON.stringify(j['pre_tokenizer']).slice(0, 200)})`,
        'Supported: the Llama 3, SmolLM and GPT-2 pre-tokenizers');
    }
    return {
      kind: 'bpe', tokens, types, merges, pre: preName, ignoreMerges: model['ignore_merges'] === true,
      bosId, eosId, eogIds, unkId, padId,
      // Without an explicit setting, llama.cpp adds BOS for Llama 3 and not for other byte-level vocabularies.
      addBos: flag('add_bos_token') ?? (single ? specialInTemplate(true) !== null : preName === 'llama-bpe'),
      addEos: flag('add_eos_token') ?? (single ? specialInTemplate(false) !== null : false),
      chatTemplate,
    };
  }
  if (!metaspace && model['byte_fallback'] !== true) {
    throw new TokenizerError(where, 'is neither byte-level BPE nor SentencePiece-style BPE (no ByteLevel, Metaspace or byte_fallback)');
  }

  // SentencePiece-style: byte pieces, <unk>, scores from merge ranks.
  if (model['byte_fallback'] === true) {
    tokens.forEach((s, id) => { if (/^<0x[0-9A-F]{2}>$/.test(s) && !addedTypes.has(id)) types[id] = TokenType.Byte; });
  }
  if (unkId !== null) types[unkId] = TokenType.Unknown;
  const scores = new Float32Array(n);
  for (let id = 0; id < n; id++) scores[id] = -(merges.length + id);
  for (let rank = merges.length - 1; rank >= 0; rank--) {
    const id = idOf(merges[rank]!.replace(' ', ''));
    if (id !== undefined) scores[id] = -rank;
  }
  const addPrefix = all.some((c) => (c['type'] === 'Prepend' && c['prepend'] === '\u2581') ||
    (c['type'] === 'Metaspace' && c['add_prefix_space'] !== false && c['prepend_scheme'] !== 'never'));
  return {
    kind: 'spm', tokens, types, scores, addSpacePrefix: addPrefix,
    bosId, eosId, eogIds, unkId, padId,
    addBos: flag('add_bos_token') ?? (single ? specialInTemplate(true) !== null : bosId !== null),
    addEos: flag('add_eos_token') ?? (single ? specialInTemplate(false) !== null : false),
    chatTemplate,
  };
}
