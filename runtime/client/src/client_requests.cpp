// Requests: those this session sent, waiting for an answer or their deadline
// (pending_requests); the calls whose answer is a Status (`requests`); and the handlers it
// registered for requests others send, which answer through a Responder.
//
// Threads: Client's methods here run on the caller's thread: they encode the request or
// registration and submit it. The client thread keeps the tables, expires deadlines, and
// runs request handlers and response callbacks. A Responder answers from any thread,
// through the outbox.
#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "client_impl.hpp"

namespace brook {

using client_detail::Command;
using client_detail::failed_response;

bool Client::Impl::answer(std::uint32_t request_id, Status status) {
  answered(request_id);
  auto it = requests.find(request_id);
  if (it == requests.end()) return false;
  it->second->set_value(std::move(status));
  requests.erase(it);
  return true;
}

void Client::Impl::on_request_result(const codec::RequestResultMsg& m) {
  answered(m.request_id);
  auto it = pending_requests.find(m.request_id);
  if (it == pending_requests.end()) return;  // timed out here already
  PendingRequest r = std::move(it->second);
  pending_requests.erase(it);
  Response response;
  response.status = Status{m.code, m.code == ErrorCode::none ? std::string{} : std::string(m.message)};
  response.type = m.type;
  response.payload.assign(m.payload.begin(), m.payload.end());
  complete(r, std::move(response));
}

void Client::Impl::complete(PendingRequest& r, Response response) {
  if (r.callback) notify(r.callback, std::move(response));
  else if (r.promise) r.promise->set_value(std::move(response));
}

void Client::Impl::expire_requests(std::chrono::steady_clock::time_point now) {
  for (auto it = pending_requests.begin(); it != pending_requests.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    PendingRequest r = std::move(it->second);
    answer_confirms.erase(it->first);
    it = pending_requests.erase(it);
    complete(r, failed_response(ErrorCode::request_timeout, "timeout: no answer in time"));
  }
}

// One request's answer, shared by the copies of its Responder.
struct BROOK_LOCAL Responder::State {
  std::weak_ptr<Client::Impl> client;
  std::uint64_t id = 0;
  std::atomic<bool> answered{false};

  ~State() {
    if (!answered.exchange(true)) send(true, "no response: the handler dropped the request", TopicType::string, {});
  }

  void send(bool failed, std::string_view message, TopicType type, std::span<const std::byte> payload) {
    auto impl = client.lock();
    if (!impl) return;
    // Responders answer from any thread: each thread encodes with its own encoder.
    thread_local codec::FrameEncoder encoder;
    auto frame = encoder.response({id, failed, message, type, payload});
    const std::size_t limit = impl->broker_max_frame_bytes.load(std::memory_order_relaxed);
    if (frame.size() > limit)
      frame = encoder.response({id, true,
                                "the answer of " + std::to_string(payload.size()) +
                                    " bytes is larger than the broker takes (" +
                                    std::to_string(limit) + " bytes a frame)",
                                TopicType::string, {}});
    Command c;
    c.kind = Command::Kind::frame;
    c.frame.assign(frame.begin(), frame.end());
    impl->submit(std::move(c));
  }
};

void Responder::respond(std::span<const std::byte> payload, TopicType type) {
  if (state_ && !state_->answered.exchange(true)) state_->send(false, {}, type, payload);
}

void Responder::respond(std::string_view text, TopicType type) {
  respond(std::as_bytes(std::span(text)), type);
}

void Responder::fail(std::string_view message) {
  if (state_ && !state_->answered.exchange(true))
    state_->send(true, message, TopicType::string, {});
}

void Client::Impl::on_handle_request(const codec::HandleRequestMsg& m) {
  auto state = std::make_shared<Responder::State>();
  state->client = weak_from_this();
  state->id = m.id;
  auto it = request_handlers.find(std::string(m.path));
  if (it == request_handlers.end() || !it->second || abandoned) {
    // Unregistered here while the request was on its way.
    Responder(std::move(state)).fail("this session no longer handles '" + std::string(m.path) + "'");
    return;
  }
  it->second(Request{m.path, m.requester, m.type, m.payload}, Responder(std::move(state)));
}

std::future<Status> Client::add_request_handler(std::string_view path, RequestHandler handler,
                                                HandlerOptions options) {
  Command c;
  c.kind = Command::Kind::add_handler;
  c.request_id = impl_->next_request_id.fetch_add(1, std::memory_order_relaxed);
  c.text = path;
  c.request_handler = std::move(handler);
  thread_local codec::FrameEncoder encoder;
  auto frame = encoder.add_handler(c.request_id, path, options.sticky);
  c.frame.assign(frame.begin(), frame.end());
  c.sticky = options.sticky;
  c.status_promise = std::make_shared<std::promise<Status>>();
  auto result = c.status_promise->get_future();
  impl_->reserve_for(c, c.frame.size());
  impl_->submit(std::move(c));
  return result;
}

std::future<Status> Client::remove_request_handler(std::string_view path) {
  Command c;
  c.kind = Command::Kind::remove_handler;
  c.request_id = impl_->next_request_id.fetch_add(1, std::memory_order_relaxed);
  c.text = path;
  thread_local codec::FrameEncoder encoder;
  auto frame = encoder.remove_handler(c.request_id, path);
  c.frame.assign(frame.begin(), frame.end());
  c.status_promise = std::make_shared<std::promise<Status>>();
  auto result = c.status_promise->get_future();
  impl_->reserve_for(c, c.frame.size());
  impl_->submit(std::move(c));
  return result;
}

void Client::send_request(std::string_view path, std::span<const std::byte> payload,
                          std::chrono::milliseconds timeout, ResponseHandler on_response,
                          TopicType type) {
  Command c;
  c.kind = Command::Kind::request;
  c.request_id = impl_->next_request_id.fetch_add(1, std::memory_order_relaxed);
  c.deadline = std::chrono::steady_clock::now() + timeout;
  c.response_handler = std::move(on_response);
  thread_local codec::FrameEncoder encoder;
  auto frame = encoder.request({c.request_id, path, type, payload,
                                static_cast<std::uint32_t>(std::clamp<std::int64_t>(
                                    timeout.count(), 1, 0xffffffffLL))});
  const std::size_t limit = impl_->broker_max_frame_bytes.load(std::memory_order_relaxed);
  if (frame.size() > limit) {
    // Refused here, since the broker would close the connection over a frame this large;
    // the answer still comes on the client thread, like every other.
    c.text = "request payload of " + std::to_string(payload.size()) +
             " bytes is larger than the broker takes (" + std::to_string(limit) + " bytes a frame)";
  } else {
    c.frame.assign(frame.begin(), frame.end());
    impl_->reserve_for(c, c.frame.size());
  }
  impl_->submit(std::move(c));
}

std::future<Response> Client::send_request(std::string_view path, std::span<const std::byte> payload,
                                           std::chrono::milliseconds timeout, TopicType type) {
  auto promise = std::make_shared<std::promise<Response>>();
  auto result = promise->get_future();
  send_request(path, payload, timeout,
               [promise](Response r) { promise->set_value(std::move(r)); }, type);
  return result;
}

std::future<Response> Client::send_request(std::string_view path, std::string_view text,
                                           std::chrono::milliseconds timeout, TopicType type) {
  return send_request(path, std::as_bytes(std::span(text)), timeout, type);
}

}  // namespace brook
