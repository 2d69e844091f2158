#pragma once
// Typed views of decoded frames and the encoder/decoder pair. Views point into the frame
// bytes (or the decoder's scratch copy) and are valid until the next decode on that decoder.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "brook/codec/frame.hpp"

namespace flatbuffers {
class FlatBufferBuilder;
}  // namespace flatbuffers

namespace brook::codec {

struct ConnectMsg {
  std::uint16_t protocol_version = wire_version;
  std::string_view client_name;
  std::string_view principal;
  std::span<const std::byte> credentials;
  std::int64_t session_number = 0;       // 0 new, > 0 named by the client, < 0 broker-numbered
  std::span<const std::byte> token;      // session_token_bytes to resume by token, else empty
  std::uint64_t last_received = 0;       // last session sequence the client received
  std::uint32_t reconnect_timeout_ms = 0;
  bool new_if_missing = false;  // with a token: open the named session anew if it is gone
  std::uint64_t resend_from = 0;  // its first frame the client still holds (0: unknown)
  bool transient_session = false;  // a named session the broker does not journal
};
struct ConnectedMsg {
  std::string_view session_id;
  std::uint32_t max_frame_bytes = 0;
  std::span<const std::byte> token;
  bool resumed = false;
  bool resync = false;
  std::uint64_t last_received = 0;       // client session frames the broker has taken
  std::uint32_t reconnect_timeout_ms = 0;
  std::uint32_t ping_interval_ms = 0;
  std::uint64_t next_sequence = 1;
  bool restored = false;  // brought back from the broker's journal: send ResumeSubscriptions
  bool journal = false;   // only Received confirms the client's frames (brook.fbs)
};
// Where a client is in a topic: the last sequence it holds, and the epoch it is from.
struct TopicPosition {
  std::string_view path;
  std::uint64_t epoch = 0;
  std::uint64_t seq = 0;
};
struct SubscribeMsg {
  std::uint32_t request_id;
  std::string_view selector;
  std::uint32_t history = 0;                // the last N updates of each topic first
  std::optional<std::uint64_t> since;       // or every update after this topic sequence
  bool resume = false;                      // or after each topic's position (brook.fbs)
  std::vector<TopicPosition> positions;
};
// Client -> broker, after a Connected that says `restored`: its place in each topic it holds.
struct ResumeSubscriptionsMsg {
  std::vector<TopicPosition> positions;
};
struct SubscribedMsg {
  std::uint32_t request_id;
  std::string_view selector;
};
struct UnsubscribeMsg {
  std::uint32_t request_id;
  std::string_view selector;
};
struct UnsubscribedMsg {
  std::uint32_t request_id;
  std::string_view selector;
};
struct CreateTopicMsg {
  std::uint32_t request_id;
  std::string_view path;
  TopicProperties properties;
};
struct RefreshMsg {
  std::uint32_t alias;
};
struct AddHandlerMsg {
  std::uint32_t request_id;
  std::string_view path;
  bool sticky = true;
};
struct RemoveHandlerMsg {
  std::uint32_t request_id;
  std::string_view path;
};
struct RequestMsg {
  std::uint32_t request_id;
  std::string_view path;
  TopicType type;
  std::span<const std::byte> payload;
  std::uint32_t timeout_ms = 0;
};
struct HandleRequestMsg {
  std::uint64_t id;
  std::string_view path;
  std::string_view requester;  // session id of the requester
  TopicType type;
  std::span<const std::byte> payload;
};
struct ResponseMsg {
  std::uint64_t id;
  bool failed = false;
  std::string_view message;  // why it failed
  TopicType type;
  std::span<const std::byte> payload;
};
struct RequestResultMsg {
  std::uint32_t request_id;
  ErrorCode code;  // none: payload is the handler's answer
  std::string_view message;
  TopicType type;
  std::span<const std::byte> payload;
};
struct ResyncMsg {
  std::string_view reason;
};
struct FlowControlMsg {
  bool held;
};
struct AckMsg {
  std::uint32_t request_id;
};
struct TopicAddMsg {
  std::uint32_t alias;
  std::string_view path;
  TopicType type;
  std::uint64_t epoch = 0;
};
struct PingMsg {
  std::uint64_t id;
  std::uint64_t sent_ns;
};
struct PongMsg {
  std::uint64_t id;
  std::uint64_t sent_ns;
};
struct CloseMsg {
  std::string_view reason;
};
struct ReceivedMsg {
  std::uint64_t last_received;
};
struct ErrorMsg {
  ErrorCode code;
  std::uint32_t request_id;
  std::string_view message;
};
struct PublishMsg {
  std::uint32_t request_id;
  std::string_view path;
  std::optional<TopicType> type;  // nullopt: the topic's own type
  std::span<const std::byte> value;
};
struct UpdateMsg {
  std::uint64_t session_seq;
  std::uint64_t topic_seq;
  std::uint32_t alias;
  UpdateEncoding encoding;
  std::span<const std::byte> value;  // the value, or a delta (encoding)
};

// An update whose value is in a broadcast segment (shared memory): `update.value` is empty
// until the reader resolves the reference.
struct SharedUpdateMsg {
  UpdateMsg update;
  std::uint64_t position;
  std::uint32_t value_bytes;
  std::uint16_t segment;
};

using Message = std::variant<ConnectMsg, ConnectedMsg, SubscribeMsg, SubscribedMsg, UnsubscribeMsg,
                             UnsubscribedMsg, CreateTopicMsg, AckMsg, TopicAddMsg, PingMsg, PongMsg,
                             CloseMsg, ErrorMsg, PublishMsg, UpdateMsg, ResyncMsg, RefreshMsg,
                             AddHandlerMsg, RemoveHandlerMsg, RequestMsg, HandleRequestMsg,
                             ResponseMsg, RequestResultMsg, SharedUpdateMsg, ReceivedMsg,
                             FlowControlMsg, ResumeSubscriptionsMsg>;

enum class DecodeError : std::uint8_t {
  none,
  truncated,      // fewer bytes than the header says
  bad_header,     // size below the minimum for its kind, or inconsistent lengths
  unknown_kind,   // frame kind or control body this version does not know
  verify_failed,  // FlatBuffers Verifier refused the control body
  bad_value,      // a field outside its range (topic type, path length)
};
std::string_view to_string(DecodeError error);

struct Decoded {
  DecodeError error = DecodeError::none;
  Message message{};
  bool ok() const noexcept { return error == DecodeError::none; }
};

// Decodes exactly one whole frame (as delimited by split_frame). Control bodies that are not
// 8-byte aligned are copied into an aligned scratch buffer before verification.
// One decoder per thread; not thread-safe.
class FrameDecoder {
 public:
  Decoded decode(std::span<const std::byte> frame);

 private:
  std::vector<std::uint64_t> scratch_;
};

// Builds control frames. Each encode_* returns the whole frame (header included), valid until
// the next encode_* call on this encoder. One encoder per thread; not thread-safe.
class FrameEncoder {
 public:
  FrameEncoder();
  ~FrameEncoder();
  FrameEncoder(const FrameEncoder&) = delete;
  FrameEncoder& operator=(const FrameEncoder&) = delete;

  std::span<const std::byte> connect(std::string_view client_name, std::string_view principal,
                                     std::span<const std::byte> credentials);
  std::span<const std::byte> connected(std::string_view session_id, std::uint32_t max_frame_bytes);
  std::span<const std::byte> connect(const ConnectMsg& m);
  std::span<const std::byte> connected(const ConnectedMsg& m);
  std::span<const std::byte> subscribe(std::uint32_t request_id, std::string_view selector,
                                       std::uint32_t history = 0,
                                       std::optional<std::uint64_t> since = std::nullopt);
  // A resumed subscription (SubscribeMsg::resume) with the client's positions.
  std::span<const std::byte> subscribe_resuming(std::uint32_t request_id, std::string_view selector,
                                                std::span<const TopicPosition> positions);
  std::span<const std::byte> resume_subscriptions(std::span<const TopicPosition> positions);
  std::span<const std::byte> subscribed(std::uint32_t request_id, std::string_view selector);
  std::span<const std::byte> unsubscribe(std::uint32_t request_id, std::string_view selector);
  std::span<const std::byte> unsubscribed(std::uint32_t request_id, std::string_view selector);
  std::span<const std::byte> create_topic(std::uint32_t request_id, std::string_view path,
                                          const TopicProperties& properties);
  std::span<const std::byte> refresh(std::uint32_t alias);
  std::span<const std::byte> add_handler(std::uint32_t request_id, std::string_view path, bool sticky);
  std::span<const std::byte> remove_handler(std::uint32_t request_id, std::string_view path);
  std::span<const std::byte> request(const RequestMsg& m);
  std::span<const std::byte> handle_request(const HandleRequestMsg& m);
  std::span<const std::byte> response(const ResponseMsg& m);
  std::span<const std::byte> request_result(const RequestResultMsg& m);
  std::span<const std::byte> resync(std::string_view reason);
  std::span<const std::byte> flow_control(bool held);
  std::span<const std::byte> ack(std::uint32_t request_id);
  std::span<const std::byte> topic_add(std::uint32_t alias, std::string_view path, TopicType type,
                                       std::uint64_t epoch = 0);
  std::span<const std::byte> ping(std::uint64_t id, std::uint64_t sent_ns);
  std::span<const std::byte> pong(std::uint64_t id, std::uint64_t sent_ns);
  std::span<const std::byte> close(std::string_view reason);
  std::span<const std::byte> received(std::uint64_t last_received);
  std::span<const std::byte> error(ErrorCode code, std::uint32_t request_id,
                                   std::string_view message);

 private:
  std::span<const std::byte> finish(std::uint32_t root);
  flatbuffers::FlatBufferBuilder* fbb_;
};

}  // namespace brook::codec
