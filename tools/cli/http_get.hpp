#pragma once
// A small blocking HTTP/1.1 GET client for the operator commands (`brook stat`, `sessions`,
// `topics`) that read brookd's HTTP side. One request per connection (`Connection: close`),
// plain http only, bounded by one deadline from connect to the last body byte. Any thread;
// nothing is shared between calls.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace brook::cli {

// Where brookd's HTTP side listens: HOST:PORT, [IPv6]:PORT, or either behind "http://"; a
// PORT alone is 127.0.0.1:PORT, as for brookd --http.
struct HttpAddress {
  std::string host;
  std::string port;
  std::string text() const;  // "http://HOST:PORT", for messages
};
// nullopt with `error` set when `text` is not one of the forms above (https:// included: the
// CLI speaks plain http only).
std::optional<HttpAddress> parse_http_address(std::string_view text, std::string& error);

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;                                          // de-chunked
  // The first header named `name` (lower case), or "".
  std::string_view header(std::string_view name) const;
};

// Reads one response as its bytes arrive: the status line, the headers, then a body framed by
// Content-Length, by Transfer-Encoding: chunked, or by the end of the stream. Feed it what
// recv() returned, and finish() at end of stream. Owned by one caller.
class HttpResponseReader {
 public:
  static constexpr std::size_t max_header_bytes = 64 * 1024;
  static constexpr std::size_t max_body_bytes = 256 * 1024 * 1024;

  // False once the response is malformed (see error()); done() when it is complete.
  bool feed(std::string_view bytes);
  // At end of stream: completes a body that runs to the end, else reports the truncation.
  bool finish();
  bool done() const noexcept { return state_ == State::done; }
  const std::string& error() const noexcept { return error_; }
  HttpResponse& response() noexcept { return response_; }

 private:
  enum class State { head, body_length, body_to_eof, chunk_size, chunk_data, chunk_trailer, done, failed };
  bool fail(std::string why);
  bool parse_head(std::string_view head);
  bool step();  // consumes what it can of buffer_; false on a malformed response

  State state_ = State::head;
  std::string buffer_;  // bytes not consumed yet
  std::size_t remaining_ = 0;  // of the body (body_length) or the chunk (chunk_data)
  HttpResponse response_;
  std::string error_;
};

struct HttpGetOptions {
  std::string user_password;  // "USER:PASSWORD" sent as Basic authorization; "" for none
  std::chrono::milliseconds timeout{5000};  // connect to last byte
};

// The answer, whatever its status, or why there is none: "cannot connect to http://H:P:
// Connection refused", "no answer from http://H:P within 5 s", "malformed response from ...".
struct HttpGetResult {
  std::optional<HttpResponse> response;
  std::string error;
};

// GET `path` (starting with '/', query included) from `address`.
HttpGetResult http_get(const HttpAddress& address, std::string_view path, const HttpGetOptions& options);

// "a%2Fb": `text` percent-encoded for a query value (unreserved characters kept).
std::string url_encode(std::string_view text);

}  // namespace brook::cli
