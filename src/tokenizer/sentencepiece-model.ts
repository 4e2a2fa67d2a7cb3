// SentencePiece's own tokenizer.model (a protobuf ModelProto), for BPE models (Llama 1/2, TinyLlama):
//
//   ModelProto     1: repeated SentencePiece { 1: piece string, 2: score float, 3: type enum }
//                  2: TrainerSpec { 3: model_type (1 unigram, 2 bpe), 35: byte_fallback,
//                                   40: unk_id, 41: bos_id, 42: eos_id, 43: pad_id }
//                  3: NormalizerSpec { 3: add_dummy_prefix }
//
// The piece types are SentencePiece's enum, which TokenType copies (1 normal .. 6 byte). Unigram
// models (T5 and others) need a different algorithm and are refused.

import type { SpmTokenizerData } from './data.ts';
import { TokenType } from './data.ts';
import { TokenizerError, TruncatedFileError, UnsupportedError } from '../engine/errors.ts';

const utf8 = new TextDecoder('utf-8');

class Proto {
  pos: number;
  constructor(readonly buf: Uint8Array, readonly where: string, start = 0, readonly end = buf.length) { this.pos = start; }

  varint(): bigint {
    let v = 0n, shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new TruncatedFileError(this.where, `ends inside a number at byte ${this.pos}`);
      const b = this.buf[this.pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
      if (shift > 63n) throw new TokenizerError(this.where, `has a malformed number at byte ${this.pos}`);
    }
  }

  /** A small varint (lengths, tags, enums) as a number. */
  small(what: string): number {
    const v = this.varint();
    if (v > 0x7fffffffn) throw new TokenizerError(this.where, `${what} is ${v}, too large, at byte ${this.pos}`);
    return Number(v);
  }

  /** The [start, end) of a length-delimited field, checked against what remains. */
  bytes(): [number, number] {
    const len = this.small('a field length');
    if (len > this.end - this.pos) {
      throw new TruncatedFileError(this.where, `a field declares ${len} bytes at byte ${this.pos} but ${this.end - this.pos} remain`);
    }
    this.pos += len;
    return [this.pos - len, this.pos];
  }

  f32(): number {
    if (this.pos + 4 > this.end) throw new TruncatedFileError(this.where, `ends inside a float at byte ${this.pos}`);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new TokenizerError(this.where, `has protobuf wire type ${wire} at byte ${this.pos}, not a SentencePiece model`);
    if (this.pos > this.end) throw new TruncatedFileError(this.where, `ends inside a field`);
  }

  /** Calls `field` for each field of the message; it returns false to have the field skipped. */
  fields(field: (num: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const tag = this.small('a field tag');
      const num = tag >>> 3, wire = tag & 7;
      if (!field(num, wire)) this.skip(wire);
    }
  }
}

export function tokenizerDataFromSentencePieceModel(bytes: Uint8Array, where: string): SpmTokenizerData {
  const top = new Proto(bytes, where);
  const tokens: string[] = [], scores: number[] = [], types: number[] = [];
  let modelType = 1, byteFallback = false, addDummyPrefix = true;
  let unkId = 0, bosId = 1, eosId = 2, padId = -1;
  const int32 = (p: Proto): number => Number(BigInt.asIntN(32, p.varint()));
  top.fields((num, wire) => {
    if (wire !== 2 || num < 1 || num > 3) return false;
    const [a, b] = top.bytes();
    const p = new Proto(bytes, where, a, b);
    if (num === 1) {
      let piece = '', score = 0, type = TokenType.Normal;
      p.fields((f, w) => {
        if (f === 1 && w === 2) { const [s, e] = p.bytes(); piece = utf8.decode(bytes.subarray(s, e)); return true; }
        if (f === 2 && w === 5) { score = p.f32(); return true; }
        if (f === 3 && w === 0) { type = p.small('a piece type'); return true; }
        return false;
      });
      if (type < TokenType.Normal || type > TokenType.Byte) {
        throw new TokenizerError(`${where}: piece ${tokens.length}`, `has type ${type}, not a SentencePiece piece type`);
      }
      tokens.push(piece); scores.push(score); types.push(type);
    } else if (num === 2) {
      p.fields((f, w) => {
        if (w !== 0) return false;
        if (f === 3) modelType = p.small('model_type');
        else if (f === 35) byteFallback = p.varint() !== 0n;
        else if (f === 40) unkId = int32(p);
        else if (f === 41) bosId = int32(p);
        else if (f === 42) eosId = int32(p);
        else if (f === 43) padId = int32(p);
        else return false;
        return true;
      });
    } else {
      p.fields((f, w) => {
        if (f === 3 && w === 0) { addDummyPrefix = p.varint() !== 0n; return true; }
        return false;
      });
    }
    return true;
  });
  if (tokens.length === 0) throw new TokenizerError(where, 'has no pieces; it is not a SentencePiece tokenizer.model');
  if (modelType !== 2) {
    throw new UnsupportedError(where, `is a SentencePiece ${modelType === 1 ? 'unigram' : `type ${modelType}`} model; glassbox implements SentencePiece BPE (Llama 1/2)`,
      'Use a GGUF or tokenizer.json of a Llama-family model');
  }
  void byteFallback; // byte pieces carry TokenType.Byte either way
  const n = tokens.length;
  const idOrNull = (x: number): number | null => (x >= 0 && x < n ? x : null);
  return {
    kind: 'spm',
    tokens,
    types: Uint8Array.from(types),
    scores: Float32Array.from(scores),
    addSpacePrefix: addDummyPrefix,
    bosId: idOrNull(bosId),
    eosId: idOrNull(eosId),
    eogIds: [],
    unkId: idOrNull(unkId),
    padId: idOrNull(padId),
    addBos: bosId >= 0 && bosId < n,
    addEos: false,
    chatTemplate: null,
  };
}
