#include "brook/codec/messages.hpp"

#include <flatbuffers/flatbuffers.h>

#include "brook_generated.h"

namespace brook::codec {

namespace fb = brook::wire;

namespace {

std::string_view view(const flatbuffers::String* s) {
  return s ? std::string_view{s->data(), s->size()} : std::string_view{};
}

std::span<const std::byte> bytes_of(const flatbuffers::Vector<std::uint8_t>* v) {
  if (!v) return {};
  return {reinterpret_cast<const std::byte*>(v->data()), v->size()};
}

bool valid_type(fb::TopicType t) { return static_cast<std::uint8_t>(t) < topic_type_count; }

Decoded fail(DecodeError e) { return Decoded{e, {}}; }

Decoded decode_update(std::span<const std::byte> frame) {
  if (frame.size() < update_head_bytes) return fail(DecodeError::bad_header);
  const std::byte* p = frame.data();
  auto encoding = static_cast<std::uint8_t>(p[28]);
  if (encoding > static_cast<std::uint8_t>(UpdateEncoding::delta)) return fail(DecodeError::bad_value);
  UpdateMsg u{load_le<std::uint64_t>(p + 8), load_le<std::uint64_t>(p + 16),
              load_le<std::uint32_t>(p + 24), static_cast<UpdateEncoding>(encoding),
              frame.subspan(update_head_bytes)};
  return Decoded{DecodeError::none, u};
}

Decoded decode_shared_update(std::span<const std::byte> frame) {
  if (frame.size() != shared_update_bytes) return fail(DecodeError::bad_header);
  Decoded head = decode_update(frame.first(update_head_bytes));
  if (!head.ok()) return head;
  const std::byte* p = frame.data();
  SharedUpdateMsg m{std::get<UpdateMsg>(head.message), load_le<std::uint64_t>(p + 32),
                    load_le<std::uint32_t>(p + 40), load_le<std::uint16_t>(p + 44)};
  return Decoded{DecodeError::none, m};
}

Decoded decode_publish(std::span<const std::byte> frame) {
  if (frame.size() < publish_head_bytes) return fail(DecodeError::bad_header);
  const std::byte* p = frame.data();
  auto path_bytes = load_le<std::uint16_t>(p + 12);
  auto type = static_cast<std::uint8_t>(p[14]);
  if (publish_head_bytes + path_bytes > frame.size()) return fail(DecodeError::bad_header);
  if ((type >= topic_type_count && type != topic_type_unspecified) || path_bytes > max_path_bytes)
    return fail(DecodeError::bad_value);
  PublishMsg m{load_le<std::uint32_t>(p + 8),
               {reinterpret_cast<const char*>(p + publish_head_bytes), path_bytes},
               type < topic_type_count ? std::optional<TopicType>(static_cast<TopicType>(type))
                                       : std::nullopt,
               frame.subspan(publish_head_bytes + path_bytes)};
  return Decoded{DecodeError::none, m};
}

Decoded decode_control(const fb::Message* msg) {
  // The Verifier accepts a union type without its value: refuse it before anything reads it.
  if (msg->body_type() != fb::Body::NONE && !msg->body()) return fail(DecodeError::verify_failed);
  switch (msg->body_type()) {
    case fb::Body::Connect: {
      auto b = msg->body_as_Connect();
      return {DecodeError::none,
              ConnectMsg{b->protocol_version(), view(b->client_name()), view(b->principal()),
                         bytes_of(b->credentials()), b->session_number(), bytes_of(b->token()),
                         b->last_received(), b->reconnect_timeout_ms(), b->new_if_missing(),
                         b->resend_from(), b->transient_session()}};
    }
    case fb::Body::Connected: {
      auto b = msg->body_as_Connected();
      return {DecodeError::none,
              ConnectedMsg{view(b->session_id()), b->max_frame_bytes(), bytes_of(b->token()),
                           b->resumed(), b->resync(), b->last_received(),
                           b->reconnect_timeout_ms(), b->ping_interval_ms(),
                           b->next_sequence(), b->restored(), b->journal()}};
    }
    case fb::Body::Subscribe: {
      auto b = msg->body_as_Subscribe();
      std::optional<std::uint64_t> since;
      if (b->has_since()) since = b->since();
      SubscribeMsg m{b->request_id(), view(b->selector()), b->history(), since, b->resume(), {}};
      if (auto positions = b->positions()) {
        m.positions.reserve(positions->size());
        for (const auto* p : *positions) m.positions.push_back({view(p->path()), p->epoch(), p->seq()});
      }
      return {DecodeError::none, std::move(m)};
    }
    case fb::Body::ResumeSubscriptions: {
      ResumeSubscriptionsMsg m;
      if (auto positions = msg->body_as_ResumeSubscriptions()->positions()) {
        m.positions.reserve(positions->size());
        for (const auto* p : *positions) m.positions.push_back({view(p->path()), p->epoch(), p->seq()});
      }
      return {DecodeError::none, std::move(m)};
    }
    case fb::Body::Subscribed: {
      auto b = msg->body_as_Subscribed();
      return {DecodeError::none, SubscribedMsg{b->request_id(), view(b->selector())}};
    }
    case fb::Body::Unsubscribe: {
      auto b = msg->body_as_Unsubscribe();
      return {DecodeError::none, UnsubscribeMsg{b->request_id(), view(b->selector())}};
    }
    case fb::Body::Unsubscribed: {
      auto b = msg->body_as_Unsubscribed();
      return {DecodeError::none, UnsubscribedMsg{b->request_id(), view(b->selector())}};
    }
    case fb::Body::CreateTopic: {
      auto b = msg->body_as_CreateTopic();
      if (!valid_type(b->type())) return fail(DecodeError::bad_value);
      TopicProperties properties{.type = static_cast<TopicType>(b->type()),
                                 .conflate = b->conflate(),
                                 .deltas = b->deltas(),
                                 .retain = !b->dont_retain(),
                                 .history = b->history(),
                                 .history_bytes = b->history_bytes(),
                                 .history_age_ms = b->history_age_ms(),
                                 .durable = !b->transient()};
      return {DecodeError::none, CreateTopicMsg{b->request_id(), view(b->path()), properties}};
    }
    case fb::Body::Ack:
      return {DecodeError::none, AckMsg{msg->body_as_Ack()->request_id()}};
    case fb::Body::TopicAdd: {
      auto b = msg->body_as_TopicAdd();
      if (!valid_type(b->type())) return fail(DecodeError::bad_value);
      return {DecodeError::none,
              TopicAddMsg{b->alias(), view(b->path()), static_cast<TopicType>(b->type()), b->epoch()}};
    }
    case fb::Body::Ping: {
      auto b = msg->body_as_Ping();
      return {DecodeError::none, PingMsg{b->id(), b->sent_ns()}};
    }
    case fb::Body::Pong: {
      auto b = msg->body_as_Pong();
      return {DecodeError::none, PongMsg{b->id(), b->sent_ns()}};
    }
    case fb::Body::Close:
      return {DecodeError::none, CloseMsg{view(msg->body_as_Close()->reason())}};
    case fb::Body::Error: {
      auto b = msg->body_as_Error();
      return {DecodeError::none, ErrorMsg{static_cast<ErrorCode>(b->code()), b->request_id(),
                                          view(b->message())}};
    }
    case fb::Body::Resync:
      return {DecodeError::none, ResyncMsg{view(msg->body_as_Resync()->reason())}};
    case fb::Body::Refresh:
      return {DecodeError::none, RefreshMsg{msg->body_as_Refresh()->alias()}};
    case fb::Body::FlowControl:
      return {DecodeError::none, FlowControlMsg{msg->body_as_FlowControl()->held()}};
    case fb::Body::AddHandler: {
      auto b = msg->body_as_AddHandler();
      return {DecodeError::none, AddHandlerMsg{b->request_id(), view(b->path()), b->sticky()}};
    }
    case fb::Body::RemoveHandler: {
      auto b = msg->body_as_RemoveHandler();
      return {DecodeError::none, RemoveHandlerMsg{b->request_id(), view(b->path())}};
    }
    case fb::Body::Request: {
      auto b = msg->body_as_Request();
      if (!valid_type(b->type())) return fail(DecodeError::bad_value);
      return {DecodeError::none,
              RequestMsg{b->request_id(), view(b->path()), static_cast<TopicType>(b->type()),
                         bytes_of(b->payload()), b->timeout_ms()}};
    }
    case fb::Body::HandleRequest: {
      auto b = msg->body_as_HandleRequest();
      if (!valid_type(b->type())) return fail(DecodeError::bad_value);
      return {DecodeError::none,
              HandleRequestMsg{b->id(), view(b->path()), view(b->requester()),
                               static_cast<TopicType>(b->type()), bytes_of(b->payload())}};
    }
    case fb::Body::Response: {
      auto b = msg->body_as_Response();
      if (!valid_type(b->type())) return fail(DecodeError::bad_value);
      return {DecodeError::none,
              ResponseMsg{b->id(), b->failed(), view(b->message()),
                          static_cast<TopicType>(b->type()), bytes_of(b->payload())}};
    }
    case fb::Body::RequestResult: {
      auto b = msg->body_as_RequestResult();
      if (!valid_type(b->type())) return fail(DecodeError::bad_value);
      return {DecodeError::none,
              RequestResultMsg{b->request_id(), static_cast<ErrorCode>(b->code()),
                               view(b->message()), static_cast<TopicType>(b->type()),
                               bytes_of(b->payload())}};
    }
    case fb::Body::Received:
      return {DecodeError::none, ReceivedMsg{msg->body_as_Received()->last_received()}};
    case fb::Body::NONE:
      break;
  }
  return fail(DecodeError::unknown_kind);
}

}  // namespace

std::string_view to_string(DecodeError error) {
  switch (error) {
    case DecodeError::none: return "ok";
    case DecodeError::truncated: return "truncated frame";
    case DecodeError::bad_header: return "inconsistent frame header";
    case DecodeError::unknown_kind: return "unknown frame kind";
    case DecodeError::verify_failed: return "control frame failed verification";
    case DecodeError::bad_value: return "field out of range";
  }
  return "unknown";
}

Decoded FrameDecoder::decode(std::span<const std::byte> frame) {
  if (frame.size() < frame_header_bytes) return fail(DecodeError::truncated);
  auto size = load_le<std::uint32_t>(frame.data());
  if (size != frame.size()) return fail(size > frame.size() ? DecodeError::truncated
                                                            : DecodeError::bad_header);
  auto kind = static_cast<FrameKind>(load_le<std::uint16_t>(frame.data() + 4));
  switch (kind) {
    case FrameKind::update: return decode_update(frame);
    case FrameKind::publish: return decode_publish(frame);
    case FrameKind::shared_update: return decode_shared_update(frame);
    case FrameKind::control: break;
    default: return fail(DecodeError::unknown_kind);
  }
  auto body = frame.subspan(frame_header_bytes);
  auto* data = reinterpret_cast<const std::uint8_t*>(body.data());
  if (!body.empty() && reinterpret_cast<std::uintptr_t>(data) % alignof(std::uint64_t) != 0) {
    // FlatBuffers reads scalars in place; a control frame at an odd offset of a receive
    // buffer is copied once so that those reads are aligned.
    scratch_.resize((body.size() + 7) / 8);
    std::memcpy(scratch_.data(), data, body.size());
    data = reinterpret_cast<const std::uint8_t*>(scratch_.data());
  }
  flatbuffers::Verifier verifier(data, body.size(), /*max_depth=*/16, /*max_tables=*/64);
  if (!fb::VerifyMessageBuffer(verifier))  // also checks the "BRK1" identifier
    return fail(DecodeError::verify_failed);
  return decode_control(fb::GetMessage(data));
}

FrameEncoder::FrameEncoder() : fbb_(new flatbuffers::FlatBufferBuilder(256)) {}
FrameEncoder::~FrameEncoder() { delete fbb_; }

std::span<const std::byte> FrameEncoder::finish(std::uint32_t root) {
  fbb_->Finish(flatbuffers::Offset<fb::Message>(root), fb::MessageIdentifier());
  // The builder grows towards the front, so the frame header is pushed last.
  std::byte header[frame_header_bytes];
  write_frame_header(header, static_cast<std::uint32_t>(fbb_->GetSize() + frame_header_bytes),
                     FrameKind::control);
  fbb_->PushBytes(reinterpret_cast<const std::uint8_t*>(header), frame_header_bytes);
  return {reinterpret_cast<const std::byte*>(fbb_->GetBufferPointer()), fbb_->GetSize()};
}

#define BROOK_FINISH(type, make)                                                \
  do {                                                                          \
    auto body = make;                                                           \
    return finish(fb::CreateMessage(*fbb_, fb::Body::type, body.Union()).o);    \
  } while (0)

std::span<const std::byte> FrameEncoder::connect(std::string_view client_name,
                                                 std::string_view principal,
                                                 std::span<const std::byte> credentials) {
  ConnectMsg m;  // the rest (session, token, resume point) at their defaults: a new session
  m.client_name = client_name;
  m.principal = principal;
  m.credentials = credentials;
  return connect(m);
}

std::span<const std::byte> FrameEncoder::connect(const ConnectMsg& m) {
  fbb_->Clear();
  auto name = fbb_->CreateString(m.client_name.data(), m.client_name.size());
  auto who = fbb_->CreateString(m.principal.data(), m.principal.size());
  auto creds = fbb_->CreateVector(reinterpret_cast<const std::uint8_t*>(m.credentials.data()),
                                  m.credentials.size());
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> token;
  if (!m.token.empty())
    token = fbb_->CreateVector(reinterpret_cast<const std::uint8_t*>(m.token.data()), m.token.size());
  BROOK_FINISH(Connect, fb::CreateConnect(*fbb_, m.protocol_version, name, who, creds,
                                          m.session_number, token, m.last_received,
                                          m.reconnect_timeout_ms, m.new_if_missing, m.resend_from,
                                          m.transient_session));
}

std::span<const std::byte> FrameEncoder::connected(std::string_view session_id,
                                                   std::uint32_t max_frame_bytes) {
  ConnectedMsg m;
  m.session_id = session_id;
  m.max_frame_bytes = max_frame_bytes;
  return connected(m);
}

std::span<const std::byte> FrameEncoder::connected(const ConnectedMsg& m) {
  fbb_->Clear();
  auto id = fbb_->CreateString(m.session_id.data(), m.session_id.size());
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> token;
  if (!m.token.empty())
    token = fbb_->CreateVector(reinterpret_cast<const std::uint8_t*>(m.token.data()), m.token.size());
  BROOK_FINISH(Connected, fb::CreateConnected(*fbb_, id, m.max_frame_bytes, token, m.resumed,
                                              m.resync, m.last_received, m.reconnect_timeout_ms,
                                              m.ping_interval_ms, m.next_sequence, m.restored,
                                              m.journal));
}

std::span<const std::byte> FrameEncoder::subscribe(std::uint32_t request_id,
                                                   std::string_view selector,
                                                   std::uint32_t history,
                                                   std::optional<std::uint64_t> since) {
  fbb_->Clear();
  auto s = fbb_->CreateString(selector.data(), selector.size());
  BROOK_FINISH(Subscribe, fb::CreateSubscribe(*fbb_, request_id, s, history, since.value_or(0),
                                              since.has_value()));
}

namespace {
flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::TopicPosition>>> position_list(
    flatbuffers::FlatBufferBuilder& fbb, std::span<const TopicPosition> positions) {
  std::vector<flatbuffers::Offset<fb::TopicPosition>> entries;
  entries.reserve(positions.size());
  for (const TopicPosition& p : positions)
    entries.push_back(fb::CreateTopicPosition(fbb, fbb.CreateString(p.path.data(), p.path.size()), p.epoch, p.seq));
  return fbb.CreateVector(entries);
}
}  // namespace

std::span<const std::byte> FrameEncoder::subscribe_resuming(std::uint32_t request_id,
                                                            std::string_view selector,
                                                            std::span<const TopicPosition> positions) {
  fbb_->Clear();
  auto list = position_list(*fbb_, positions);
  auto s = fbb_->CreateString(selector.data(), selector.size());
  BROOK_FINISH(Subscribe, fb::CreateSubscribe(*fbb_, request_id, s, 0, 0, false, true, list));
}

std::span<const std::byte> FrameEncoder::resume_subscriptions(std::span<const TopicPosition> positions) {
  fbb_->Clear();
  auto list = position_list(*fbb_, positions);
  BROOK_FINISH(ResumeSubscriptions, fb::CreateResumeSubscriptions(*fbb_, list));
}

std::span<const std::byte> FrameEncoder::subscribed(std::uint32_t request_id,
                                                    std::string_view selector) {
  fbb_->Clear();
  auto s = fbb_->CreateString(selector.data(), selector.size());
  BROOK_FINISH(Subscribed, fb::CreateSubscribed(*fbb_, request_id, s));
}

std::span<const std::byte> FrameEncoder::unsubscribe(std::uint32_t request_id,
                                                     std::string_view selector) {
  fbb_->Clear();
  auto s = fbb_->CreateString(selector.data(), selector.size());
  BROOK_FINISH(Unsubscribe, fb::CreateUnsubscribe(*fbb_, request_id, s));
}

std::span<const std::byte> FrameEncoder::unsubscribed(std::uint32_t request_id,
                                                      std::string_view selector) {
  fbb_->Clear();
  auto s = fbb_->CreateString(selector.data(), selector.size());
  BROOK_FINISH(Unsubscribed, fb::CreateUnsubscribed(*fbb_, request_id, s));
}

std::span<const std::byte> FrameEncoder::create_topic(std::uint32_t request_id,
                                                      std::string_view path,
                                                      const TopicProperties& properties) {
  fbb_->Clear();
  auto p = fbb_->CreateString(path.data(), path.size());
  BROOK_FINISH(CreateTopic,
               fb::CreateCreateTopic(*fbb_, request_id, p, static_cast<fb::TopicType>(properties.type),
                                     properties.conflate, properties.deltas, !properties.retain,
                                     properties.history, properties.history_bytes,
                                     properties.history_age_ms, !properties.durable));
}

std::span<const std::byte> FrameEncoder::refresh(std::uint32_t alias) {
  fbb_->Clear();
  BROOK_FINISH(Refresh, fb::CreateRefresh(*fbb_, alias));
}

namespace {
flatbuffers::Offset<flatbuffers::String> text(flatbuffers::FlatBufferBuilder& fbb, std::string_view s) {
  return fbb.CreateString(s.data(), s.size());
}
flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> blob(flatbuffers::FlatBufferBuilder& fbb,
                                                           std::span<const std::byte> b) {
  return fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
}
}  // namespace

std::span<const std::byte> FrameEncoder::add_handler(std::uint32_t request_id,
                                                     std::string_view path, bool sticky) {
  fbb_->Clear();
  auto p = text(*fbb_, path);
  BROOK_FINISH(AddHandler, fb::CreateAddHandler(*fbb_, request_id, p, sticky));
}

std::span<const std::byte> FrameEncoder::remove_handler(std::uint32_t request_id,
                                                        std::string_view path) {
  fbb_->Clear();
  auto p = text(*fbb_, path);
  BROOK_FINISH(RemoveHandler, fb::CreateRemoveHandler(*fbb_, request_id, p));
}

std::span<const std::byte> FrameEncoder::request(const RequestMsg& m) {
  fbb_->Clear();
  auto p = text(*fbb_, m.path);
  auto payload = blob(*fbb_, m.payload);
  BROOK_FINISH(Request, fb::CreateRequest(*fbb_, m.request_id, p, static_cast<fb::TopicType>(m.type),
                                          payload, m.timeout_ms));
}

std::span<const std::byte> FrameEncoder::handle_request(const HandleRequestMsg& m) {
  fbb_->Clear();
  auto p = text(*fbb_, m.path);
  auto who = text(*fbb_, m.requester);
  auto payload = blob(*fbb_, m.payload);
  BROOK_FINISH(HandleRequest, fb::CreateHandleRequest(*fbb_, m.id, p, who,
                                                      static_cast<fb::TopicType>(m.type), payload));
}

std::span<const std::byte> FrameEncoder::response(const ResponseMsg& m) {
  fbb_->Clear();
  auto why = text(*fbb_, m.message);
  auto payload = blob(*fbb_, m.payload);
  BROOK_FINISH(Response, fb::CreateResponse(*fbb_, m.id, m.failed, why,
                                            static_cast<fb::TopicType>(m.type), payload));
}

std::span<const std::byte> FrameEncoder::request_result(const RequestResultMsg& m) {
  fbb_->Clear();
  auto why = text(*fbb_, m.message);
  auto payload = blob(*fbb_, m.payload);
  BROOK_FINISH(RequestResult,
               fb::CreateRequestResult(*fbb_, m.request_id, static_cast<fb::ErrorCode>(m.code), why,
                                       static_cast<fb::TopicType>(m.type), payload));
}

std::span<const std::byte> FrameEncoder::resync(std::string_view reason) {
  fbb_->Clear();
  auto r = fbb_->CreateString(reason.data(), reason.size());
  BROOK_FINISH(Resync, fb::CreateResync(*fbb_, r));
}

std::span<const std::byte> FrameEncoder::flow_control(bool held) {
  fbb_->Clear();
  BROOK_FINISH(FlowControl, fb::CreateFlowControl(*fbb_, held));
}

std::span<const std::byte> FrameEncoder::ack(std::uint32_t request_id) {
  fbb_->Clear();
  BROOK_FINISH(Ack, fb::CreateAck(*fbb_, request_id));
}

std::span<const std::byte> FrameEncoder::topic_add(std::uint32_t alias, std::string_view path,
                                                   TopicType type, std::uint64_t epoch) {
  fbb_->Clear();
  auto p = fbb_->CreateString(path.data(), path.size());
  BROOK_FINISH(TopicAdd, fb::CreateTopicAdd(*fbb_, alias, p, static_cast<fb::TopicType>(type), epoch));
}

std::span<const std::byte> FrameEncoder::ping(std::uint64_t id, std::uint64_t sent_ns) {
  fbb_->Clear();
  BROOK_FINISH(Ping, fb::CreatePing(*fbb_, id, sent_ns));
}

std::span<const std::byte> FrameEncoder::pong(std::uint64_t id, std::uint64_t sent_ns) {
  fbb_->Clear();
  BROOK_FINISH(Pong, fb::CreatePong(*fbb_, id, sent_ns));
}

std::span<const std::byte> FrameEncoder::received(std::uint64_t last_received) {
  fbb_->Clear();
  BROOK_FINISH(Received, fb::CreateReceived(*fbb_, last_received));
}

std::span<const std::byte> FrameEncoder::close(std::string_view reason) {
  fbb_->Clear();
  auto r = fbb_->CreateString(reason.data(), reason.size());
  BROOK_FINISH(Close, fb::CreateClose(*fbb_, r));
}

std::span<const std::byte> FrameEncoder::error(ErrorCode code, std::uint32_t request_id,
                                               std::string_view message) {
  fbb_->Clear();
  auto m = fbb_->CreateString(message.data(), message.size());
  BROOK_FINISH(Error,
               fb::CreateError(*fbb_, static_cast<fb::ErrorCode>(code), request_id, m));
}

#undef BROOK_FINISH

}  // namespace brook::codec
