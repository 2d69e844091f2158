#pragma once
// A request on its way from the requester's shard, through the endpoint's owner, to the
// handler's shard: what the handler's HandleRequest frame is made of, copied once out of the
// requester's receive buffer.
//   u16 path bytes | u16 requester bytes | u8 type | 3 pad | path | requester | payload
#include <cstring>
#include <span>
#include <string_view>

#include "brook/codec/frame.hpp"
#include "brook/runtime/shared_buffer.hpp"

namespace brook::runtime {

struct ForwardedRequest {
  std::string_view path;
  std::string_view requester;  // session id
  codec::TopicType type;
  std::span<const std::byte> payload;
};

inline constexpr std::size_t forwarded_request_head_bytes = 8;

inline SharedBuffer* forward_request(BufferPool& pool, const ForwardedRequest& r) {
  SharedBuffer* b = pool.allocate(forwarded_request_head_bytes + r.path.size() +
                                  r.requester.size() + r.payload.size());
  std::byte* p = b->data();
  codec::store_le(p, static_cast<std::uint16_t>(r.path.size()));
  codec::store_le(p + 2, static_cast<std::uint16_t>(r.requester.size()));
  p[4] = static_cast<std::byte>(r.type);
  p[5] = p[6] = p[7] = std::byte{0};
  p += forwarded_request_head_bytes;
  std::memcpy(p, r.path.data(), r.path.size());
  std::memcpy(p + r.path.size(), r.requester.data(), r.requester.size());
  if (!r.payload.empty())
    std::memcpy(p + r.path.size() + r.requester.size(), r.payload.data(), r.payload.size());
  b->set_size(static_cast<std::uint32_t>(forwarded_request_head_bytes + r.path.size() +
                                         r.requester.size() + r.payload.size()));
  return b;
}

// Only for buffers made by forward_request (they never come from outside the broker).
inline ForwardedRequest read_forwarded_request(const SharedBuffer* b) {
  const std::byte* p = b->data();
  auto path_bytes = codec::load_le<std::uint16_t>(p);
  auto requester_bytes = codec::load_le<std::uint16_t>(p + 2);
  const char* text = reinterpret_cast<const char*>(p + forwarded_request_head_bytes);
  std::size_t used = forwarded_request_head_bytes + path_bytes + requester_bytes;
  return {{text, path_bytes},
          {text + path_bytes, requester_bytes},
          static_cast<codec::TopicType>(p[4]),
          {p + used, b->size() - used}};
}

}  // namespace brook::runtime
