// The shape of one attention layer's work, as the kernels see it: batch, tokens,
// widths, heads, modules and the mask. Kernels know this and nothing of models.
#pragma once

namespace attnrank {

enum class AttentionMask {
  kFull,    // every query sees every key
  kPrefix,  // every query sees keys [0, key_limit) only (the N points of `nearest`)
  kCausal,  // query i sees keys j <= i
};

enum class AttentionKind {
  kSoftmax,  // trainable
  kHardmax,  // argmax one-hot (first maximum on ties); forward only, for the theory tools
};

struct AttentionShape {
  int batch = 1;       // B
  int tokens = 1;      // N (query and key positions)
  int width = 1;       // D: input and output width
  int heads = 1;       // H per module
  int rank = 1;        // r
  int value_rank = 1;  // r_v
  int modules = 1;     // c
  AttentionMask mask = AttentionMask::kFull;
  int key_limit = 0;  // kPrefix only
  AttentionKind kind = AttentionKind::kSoftmax;

  int head_block() const { return 2 * rank + value_rank; }
  int qkv_width() const { return modules * heads * head_block(); }
  int context_width() const { return modules * heads * value_rank; }
  // Elements from one token's qkv (context) row to the next in the activation buffers:
  // the width, plus 16 where the width is a multiple of 256. A head reads a short piece
  // of each of its N rows; an L1 cache maps addresses 4 KB apart to the same set, so rows
  // 4 KB apart all land in one set and rows 1 or 2 KB apart in two to four, and they
  // evict each other (Zen 5, reference configuration 5, qkv rows 48 KB apart: attention
  // forward 6% and backward 12% slower per FLOP than at c = 63). 16 elements keep the
  // rows 64-byte aligned. The padding is never read or written.
  int qkv_stride() const { return padded_row(qkv_width()); }
  int context_stride() const { return padded_row(context_width()); }
  static int padded_row(int row_width) { return row_width % 256 == 0 ? row_width + 16 : row_width; }
  // Number of keys visible to query i.
  int visible_keys(int query) const {
    switch (mask) {
      case AttentionMask::kPrefix:
        return key_limit;
      case AttentionMask::kCausal:
        return query + 1;
      case AttentionMask::kFull:
        break;
    }
    return tokens;
  }
};

}  // namespace attnrank
