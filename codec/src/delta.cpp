#include "brook/codec/delta.hpp"

// The checksum is taken of every delta's value on both ends. A small value's is inlined: a few
// nanoseconds, as much again as a call into the shared library. A long value's goes to the
// library's dispatcher where it has one (Debian's x86-64 build), which uses AVX2 or AVX-512
// when the CPU has them instead of the SSE2 of a baseline build (a 1 KiB checksum was 15% of a
// broker's time). Same hash either way: XXH3 is defined independently of the vector width.
#define XXH_INLINE_ALL
#include <xxhash.h>

extern "C" XXH64_hash_t XXH3_64bits_dispatch(const void* input, size_t length) __attribute__((weak));

#include <algorithm>
#include <bit>
#include <cstring>

#include "brook/codec/frame.hpp"  // load_le, store_le

namespace brook::codec {

namespace {

using Bytes = std::span<const std::byte>;

// A match is found by its first 4 bytes; anything shorter never pays for its copy op.
constexpr std::size_t hash_bytes = 4;
// A prefix or suffix copy shorter than this costs at least as much as its bytes.
constexpr std::size_t min_edge_copy = 4;
// Old and new are taken to be still aligned (give or take max_shift bytes) up to this many
// bytes after the last long match: then short matches on the diagonal count, and a field
// rewritten in place, perhaps a little longer or shorter, is found without building the index.
// Beyond, only long matches count, on the diagonal or through the index; extending backward
// recovers the bytes passed over before one was found.
constexpr std::size_t aligned_bytes = 16;
constexpr std::size_t max_shift = 8;
// Shifted candidates are tried at every 8th byte of the literal only: a long match holds a
// whole 4-byte key at one of them, and extending backward finds where it starts.
constexpr std::size_t shift_every = 8;
// Off the diagonal, or out of alignment, nothing shorter counts: repeated structure
// (`","Market_` in JSON) matches briefly almost anywhere, and taking it would lose the
// alignment. The real match is met a few bytes on, through the bytes that set it apart, and
// extends back over the structure.
constexpr std::size_t long_match = 16;
static_assert(shift_every <= long_match - hash_bytes + 1, "a long match could slip between tries");
// Candidates tried per lookup, the latest first; the longest match wins.
constexpr int max_chain = 16;
// 2^17 buckets and slots of 4 bytes: 1 MiB at most. Bigger values are indexed sparsely.
constexpr unsigned min_table_bits = 8, max_table_bits = 17;
constexpr std::size_t max_slots = std::size_t{1} << max_table_bits;

std::size_t varint_size(std::uint64_t v) { return (std::bit_width(v | 1) + 6) / 7; }
std::uint64_t zigzag(std::int64_t n) {
  return (static_cast<std::uint64_t>(n) << 1) ^ static_cast<std::uint64_t>(n >> 63);
}
// The two's complement of the signed value, so that adding it wraps to the right offset.
std::uint64_t unzigzag(std::uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

std::uint32_t load4(const std::byte* p) { return load_le<std::uint32_t>(p); }

// Whether the 32 bytes at a and b are equal: one branch for four words.
bool equal32(const std::byte* a, const std::byte* b) {
  std::uint64_t diff = 0;
  for (int k = 0; k < 32; k += 8)
    diff |= load_le<std::uint64_t>(a + k) ^ load_le<std::uint64_t>(b + k);
  return diff == 0;
}

std::size_t common_prefix(const std::byte* a, const std::byte* b, std::size_t n) {
  std::size_t i = 0;
  while (i + 32 <= n && equal32(a + i, b + i)) i += 32;
  for (; i + 8 <= n; i += 8)
    if (auto x = load_le<std::uint64_t>(a + i) ^ load_le<std::uint64_t>(b + i))
      return i + static_cast<std::size_t>(std::countr_zero(x)) / 8;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Equal bytes right before a_end and b_end, at most n.
std::size_t common_suffix(const std::byte* a_end, const std::byte* b_end, std::size_t n) {
  std::size_t i = 0;
  while (i + 32 <= n && equal32(a_end - i - 32, b_end - i - 32)) i += 32;
  for (; i + 8 <= n; i += 8)
    if (auto x = load_le<std::uint64_t>(a_end - i - 8) ^ load_le<std::uint64_t>(b_end - i - 8))
      return i + static_cast<std::size_t>(std::countl_zero(x)) / 8;
  while (i < n && *(a_end - i - 1) == *(b_end - i - 1)) ++i;
  return i;
}

// Appends ops to the caller's buffer; every write checks the room left.
class OpWriter {
 public:
  explicit OpWriter(std::span<std::byte> out) : out_(out) {}

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return out_.size(); }
  std::size_t expected() const { return expected_; }

  bool checksum(std::uint64_t sum) {
    if (out_.size() < delta_checksum_bytes) return false;
    store_le(out_.data(), sum);
    size_ = delta_checksum_bytes;
    return true;
  }
  std::size_t copy_cost(std::size_t offset, std::size_t length) const {
    return varint_size(length << 1) + varint_size(zigzag(relative(offset)));
  }
  bool copy(std::size_t offset, std::size_t length) {
    if (!varint(length << 1) || !varint(zigzag(relative(offset)))) return false;
    expected_ = offset + length;
    return true;
  }
  bool insert(Bytes literal) {
    if (literal.empty()) return true;
    if (!varint(literal.size() << 1 | 1) || literal.size() > out_.size() - size_) return false;
    std::memcpy(out_.data() + size_, literal.data(), literal.size());
    size_ += literal.size();
    return true;
  }

 private:
  std::int64_t relative(std::size_t offset) const {
    return static_cast<std::int64_t>(offset - expected_);  // wraps to the negative distance
  }
  bool varint(std::uint64_t v) {
    if (varint_size(v) > out_.size() - size_) return false;
    for (; v >= 0x80; v >>= 7) out_[size_++] = static_cast<std::byte>(v | 0x80);
    out_[size_++] = static_cast<std::byte>(v);
    return true;
  }

  std::span<std::byte> out_;
  std::size_t size_ = 0;
  std::size_t expected_ = 0;
};

struct Match {
  std::size_t old_at = 0, new_at = 0, length = 0;
};

// Encodes new_mid (the part of the new value between the common prefix and suffix) as inserts
// and copies from anywhere in `old`. Looks near the diagonal first (the old bytes right after
// the last copy, skipping as many as the pending literal holds: an overwrite), then, once out
// of alignment, in a hash index of old[index_lo, index_hi) built at that moment, so that short
// in-place edits never pay for it. Each lookup tries a bounded number of candidates and
// the chosen match is jumped over, so the time is linear in the sizes whatever the input.
class MiddleMatcher {
 public:
  MiddleMatcher(Bytes old, std::size_t index_lo, std::size_t index_hi, Bytes new_mid,
                std::vector<std::uint32_t>& heads, std::vector<std::uint32_t>& chain, OpWriter& w)
      : old_(old), lo_(index_lo), hi_(index_hi), new_(new_mid), heads_(heads), chain_(chain),
        w_(w) {}

  bool run() {
    std::size_t literal = 0, i = 0;
    std::size_t aligned_at = 0;  // end of the last long match (the prefix counts as one)
    while (i + hash_bytes <= new_.size()) {
      if (w_.size() + (i - literal) > w_.capacity()) return false;  // the literal alone won't fit
      Match m = find(i, literal, i - aligned_at < aligned_bytes);
      if (m.length == 0) {
        ++i;
        continue;
      }
      if (!w_.insert(new_.subspan(literal, m.new_at - literal)) || !w_.copy(m.old_at, m.length))
        return false;
      i = literal = m.new_at + m.length;
      if (m.length >= long_match) aligned_at = i;
    }
    return w_.insert(new_.subspan(literal));
  }

 private:
  Match find(std::size_t i, std::size_t literal, bool aligned) {
    const std::uint32_t key = load4(new_.data() + i);
    Match best;
    auto consider = [&](std::size_t old_at, std::size_t min_length) {
      if (old_at + hash_bytes > old_.size() || load4(old_.data() + old_at) != key) return;
      Match m = extend(old_at, i, literal, min_length);
      if (m.length > best.length ||
          (m.length && m.length == best.length &&
           w_.copy_cost(m.old_at, m.length) < w_.copy_cost(best.old_at, best.length)))
        best = m;
    };

    const std::size_t diagonal = w_.expected() + (i - literal);
    if (aligned) {
      consider(diagonal, 0);
      if ((i - literal) % shift_every == 0)
        for (std::size_t at = diagonal - std::min(diagonal, max_shift);
             at <= diagonal + max_shift; ++at)
          if (at != diagonal) consider(at, long_match);
      return best;
    }
    consider(diagonal, long_match);
    if (!indexed_) build_index();
    if (bits_ == 0) return best;
    std::uint32_t slot = heads_[hash(key)];
    for (int n = 0; slot != 0 && n < max_chain; ++n, slot = chain_[slot - 1])
      consider(lo_ + (slot - 1) * step_, long_match);
    return best;
  }

  // Grows a 4-byte match forward and back into the pending literal; keeps it if it is at least
  // min_length long and shorter as a copy than as literal bytes (counting the literal header
  // the copy splits off).
  Match extend(std::size_t old_at, std::size_t new_at, std::size_t literal,
               std::size_t min_length) const {
    std::size_t length =
        common_prefix(old_.data() + old_at, new_.data() + new_at,
                      std::min(old_.size() - old_at, new_.size() - new_at));
    while (new_at > literal && old_at > 0 && old_[old_at - 1] == new_[new_at - 1]) {
      --old_at, --new_at;
      ++length;
    }
    if (length < min_length || length < w_.copy_cost(old_at, length) + 2) return {};
    return {old_at, new_at, length};
  }

  void build_index() {
    indexed_ = true;
    if (hi_ < lo_ + hash_bytes) return;
    const std::size_t n = hi_ - lo_ - hash_bytes + 1;  // positions with 4 bytes after them
    // Every position while there is room; beyond, every step-th, which still finds any common
    // run of step + 3 bytes.
    step_ = (n + max_slots - 1) / max_slots;
    const std::size_t slots = (n - 1) / step_ + 1;
    bits_ = std::clamp<unsigned>(static_cast<unsigned>(std::bit_width(slots - 1)), min_table_bits,
                                 max_table_bits);
    const std::size_t buckets = std::size_t{1} << bits_;
    if (heads_.size() < buckets) heads_.resize(buckets);
    if (chain_.size() < slots) chain_.resize(slots);
    std::fill_n(heads_.begin(), buckets, 0);
    for (std::size_t k = 0; k < slots; ++k) {
      std::uint32_t& head = heads_[hash(load4(old_.data() + lo_ + k * step_))];
      chain_[k] = head;
      head = static_cast<std::uint32_t>(k + 1);
    }
  }

  std::size_t hash(std::uint32_t key) const { return (key * 0x9E3779B1u) >> (32 - bits_); }

  Bytes old_;
  std::size_t lo_, hi_;
  Bytes new_;
  std::vector<std::uint32_t>& heads_;
  std::vector<std::uint32_t>& chain_;
  OpWriter& w_;
  bool indexed_ = false;
  unsigned bits_ = 0;  // 0 while there is no index
  std::size_t step_ = 1;
};

// Reads ops; every read checks the bytes left.
class OpReader {
 public:
  explicit OpReader(Bytes delta) : delta_(delta), at_(delta_checksum_bytes) {}

  bool done() const { return at_ == delta_.size(); }
  std::size_t left() const { return delta_.size() - at_; }

  bool varint(std::uint64_t& v) {
    v = 0;
    for (unsigned shift = 0; shift <= 63; shift += 7) {
      if (at_ == delta_.size()) return false;
      const auto b = static_cast<std::uint8_t>(delta_[at_++]);
      if (shift == 63 && b > 1) return false;  // an 11th byte or bits beyond 64
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) return true;
    }
    return false;  // not reached: the 10th byte either ends the varint or is refused
  }
  Bytes take(std::size_t n) {
    Bytes b = delta_.subspan(at_, n);
    at_ += n;
    return b;
  }

 private:
  Bytes delta_;
  std::size_t at_;
};

void append(std::vector<std::byte>& out, Bytes b) { out.insert(out.end(), b.begin(), b.end()); }

}  // namespace

std::uint64_t value_checksum(std::span<const std::byte> value) noexcept {
  if (value.size() > XXH3_MIDSIZE_MAX && XXH3_64bits_dispatch != nullptr)
    return XXH3_64bits_dispatch(value.data(), value.size());
  return XXH3_64bits(value.data(), value.size());
}

std::size_t DeltaEncoder::encode(std::span<const std::byte> old_value,
                                 std::span<const std::byte> new_value, std::span<std::byte> out) {
  OpWriter w(out);
  if (!w.checksum(value_checksum(new_value))) return 0;

  // Byte-exact common ends first: most updates change a few fields in place.
  const std::size_t shorter = std::min(old_value.size(), new_value.size());
  std::size_t prefix = common_prefix(old_value.data(), new_value.data(), shorter);
  std::size_t suffix = common_suffix(old_value.data() + old_value.size(),
                                     new_value.data() + new_value.size(), shorter - prefix);
  if (prefix < min_edge_copy) prefix = 0;
  if (suffix < min_edge_copy) suffix = 0;

  if (prefix && !w.copy(0, prefix)) return 0;
  const std::size_t old_end = old_value.size() - suffix;
  MiddleMatcher middle(old_value, prefix, old_end,
                       new_value.subspan(prefix, new_value.size() - prefix - suffix), heads_,
                       chain_, w);
  if (!middle.run()) return 0;
  if (suffix && !w.copy(old_end, suffix)) return 0;
  return w.size();
}

std::string_view to_string(DeltaError e) {
  switch (e) {
    case DeltaError::none: return "none";
    case DeltaError::malformed: return "malformed delta";
    case DeltaError::copy_out_of_range: return "delta copies outside the old value";
    case DeltaError::too_large: return "delta result too large";
    case DeltaError::checksum_mismatch: return "delta result checksum mismatch";
  }
  return "unknown delta error";
}

DeltaError apply_delta(std::span<const std::byte> old_value, std::span<const std::byte> delta,
                       std::vector<std::byte>& out, std::size_t max_bytes) {
  out.clear();
  auto refuse = [&](DeltaError e) {
    out.clear();
    return e;
  };
  if (delta.size() < delta_checksum_bytes) return DeltaError::malformed;
  const auto checksum = load_le<std::uint64_t>(delta.data());

  OpReader r(delta);
  std::uint64_t expected = 0;  // at most old_value.size(): adding a positive offset cannot wrap
  while (!r.done()) {
    std::uint64_t head = 0;
    if (!r.varint(head)) return refuse(DeltaError::malformed);
    const std::uint64_t length = head >> 1;
    if (length == 0) return refuse(DeltaError::malformed);
    if (head & 1) {
      if (length > r.left()) return refuse(DeltaError::malformed);
      if (length > max_bytes - out.size()) return refuse(DeltaError::too_large);
      append(out, r.take(length));
      continue;
    }
    std::uint64_t relative = 0;
    if (!r.varint(relative)) return refuse(DeltaError::malformed);
    // A negative offset before 0 wraps to above 2^63 and fails the range check.
    const std::uint64_t offset = expected + unzigzag(relative);
    if (offset > old_value.size() || length > old_value.size() - offset)
      return refuse(DeltaError::copy_out_of_range);
    if (length > max_bytes - out.size()) return refuse(DeltaError::too_large);
    append(out, old_value.subspan(offset, length));
    expected = offset + length;
  }
  if (value_checksum(out) != checksum) return refuse(DeltaError::checksum_mismatch);
  return DeltaError::none;
}

}  // namespace brook::codec
