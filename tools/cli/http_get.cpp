#include "http_get.hpp"

#include <netdb.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <utility>

namespace brook::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

std::string printable(std::string_view text, std::size_t at_most = 80) {
  std::string out;
  for (char ch : text.substr(0, at_most)) out += std::isprint(static_cast<unsigned char>(ch)) ? ch : '?';
  if (text.size() > at_most) out += "...";
  return out;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

std::string seconds_text(std::chrono::milliseconds timeout) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", static_cast<double>(timeout.count()) / 1000.0);
  return text;
}

// Closes the socket it holds when it goes out of scope.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&&) = delete;
  int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

// A non-blocking socket connected to one of `address`'s addresses before `deadline`, or the
// error to report.
Socket connect_to(const HttpAddress& address, Clock::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(address.host.c_str(), address.port.c_str(), &hints, &found); rc != 0) {
    error = "cannot connect to " + address.text() + ": " + ::gai_strerror(rc);
    return Socket{};
  }
  std::string why = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    Socket socket{::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)};
    if (socket.fd() < 0) {
      why = std::strerror(errno);
      continue;
    }
    int rc = ::connect(socket.fd(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{socket.fd(), POLLOUT, 0};
      do rc = ::poll(&p, 1, remaining_ms(deadline));
      while (rc < 0 && errno == EINTR);
      if (rc == 0) {
        why = "timed out";
        break;  // the deadline is spent: no time for the next address
      }
      int so_error = 0;
      socklen_t length = sizeof so_error;
      ::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &so_error, &length);
      errno = so_error;
      rc = so_error == 0 ? 0 : -1;
    }
    if (rc == 0) {
      ::freeaddrinfo(found);
      return socket;
    }
    why = std::strerror(errno);
  }
  ::freeaddrinfo(found);
  error = "cannot connect to " + address.text() + ": " + why;
  return Socket{};
}

std::string basic_credentials(std::string_view user_password) {
  std::string out(sodium_base64_ENCODED_LEN(user_password.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(user_password.data()),
                    user_password.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

}  // namespace

std::string HttpAddress::text() const {
  bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + port;
}

std::optional<HttpAddress> parse_http_address(std::string_view text, std::string& error) {
  std::string_view rest = text;
  if (rest.rfind("https://", 0) == 0) {
    error = "https is not supported by the brook CLI (plain http only): " + std::string(text);
    return std::nullopt;
  }
  if (rest.rfind("http://", 0) == 0) rest.remove_prefix(7);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  HttpAddress address;
  std::string_view port;
  if (all_digits(rest) || (rest.size() > 1 && rest.front() == ':' && all_digits(rest.substr(1)))) {
    address.host = "127.0.0.1";  // a port alone, as brookd --http takes it
    port = rest.front() == ':' ? rest.substr(1) : rest;
  } else if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      error = "not HOST:PORT or [IPv6]:PORT: " + std::string(text);
      return std::nullopt;
    }
    address.host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || rest.find(':') != colon) {
      error = "not HOST:PORT or [IPv6]:PORT: " + std::string(text);
      return std::nullopt;
    }
    address.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  unsigned number = 0;
  if (address.host.empty() || !all_digits(port) ||
      std::from_chars(port.data(), port.data() + port.size(), number).ec != std::errc{} || number == 0 ||
      number > 65535) {
    error = "not HOST:PORT or [IPv6]:PORT: " + std::string(text);
    return std::nullopt;
  }
  address.port = std::to_string(number);
  return address;
}

std::string_view HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (key == name) return value;
  return {};
}

bool HttpResponseReader::fail(std::string why) {
  state_ = State::failed;
  error_ = std::move(why);
  return false;
}

bool HttpResponseReader::parse_head(std::string_view head) {
  auto eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  // "HTTP/1.1 200 OK"
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12 || status_line[8] != ' ' ||
      !all_digits(status_line.substr(9, 3)) || (status_line.size() > 12 && status_line[12] != ' '))
    return fail("bad status line '" + printable(status_line) + "'");
  response_ = HttpResponse{};
  std::from_chars(status_line.data() + 9, status_line.data() + 12, response_.status);
  response_.reason = status_line.size() > 13 ? std::string(status_line.substr(13)) : "";
  std::string_view rest = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
  while (!rest.empty()) {
    auto end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail("bad header line '" + printable(line) + "'");
    response_.headers.emplace_back(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }

  if (response_.status >= 100 && response_.status < 200) {  // an interim answer: the real one follows
    state_ = State::head;
    return true;
  }
  if (response_.status == 204 || response_.status == 304) {
    state_ = State::done;
    return true;
  }
  std::string encoding = lower(response_.header("transfer-encoding"));
  if (!encoding.empty()) {
    // Chunked is the only coding a server may send without being asked (no TE header is sent).
    if (encoding != "chunked") return fail("unsupported Transfer-Encoding '" + printable(encoding) + "'");
    state_ = State::chunk_size;
    return true;
  }
  if (auto length = response_.header("content-length"); !length.empty()) {
    std::size_t bytes = 0;
    if (!all_digits(length) || std::from_chars(length.data(), length.data() + length.size(), bytes).ec != std::errc{})
      return fail("bad Content-Length '" + printable(length) + "'");
    if (bytes > max_body_bytes) return fail("body of " + std::to_string(bytes) + " bytes is over the limit");
    remaining_ = bytes;
    state_ = bytes == 0 ? State::done : State::body_length;
    return true;
  }
  state_ = State::body_to_eof;
  return true;
}

bool HttpResponseReader::step() {
  std::size_t used = 0;  // of buffer_, erased once at the end
  auto available = [&] { return std::string_view(buffer_).substr(used); };
  bool progress = true;
  while (progress && state_ != State::done && state_ != State::failed) {
    progress = false;
    switch (state_) {
      case State::head: {
        auto end = available().find("\r\n\r\n");
        if (end == std::string_view::npos) {
          if (available().size() > max_header_bytes) return fail("headers longer than 64 KiB");
          break;
        }
        if (!parse_head(available().substr(0, end))) return false;
        used += end + 4;
        progress = true;
        break;
      }
      case State::body_length: {
        std::size_t take = std::min(remaining_, available().size());
        response_.body.append(available().substr(0, take));
        used += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::done;
        break;
      }
      case State::body_to_eof:
        if (response_.body.size() + available().size() > max_body_bytes) return fail("body over the limit");
        response_.body.append(available());
        used = buffer_.size();
        break;
      case State::chunk_size: {
        auto end = available().find("\r\n");
        if (end == std::string_view::npos) {
          if (available().size() > 1024) return fail("chunk size line longer than 1 KiB");
          break;
        }
        std::string_view line = available().substr(0, end);
        std::string_view digits = trim(line.substr(0, line.find(';')));  // extensions ignored
        std::size_t size = 0;
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size, 16);
        if (digits.empty() || ec != std::errc{} || ptr != digits.data() + digits.size())
          return fail("bad chunk size '" + printable(line) + "'");
        if (size > max_body_bytes - response_.body.size()) return fail("body over the limit");
        used += end + 2;
        remaining_ = size;
        state_ = size == 0 ? State::chunk_trailer : State::chunk_data;
        progress = true;
        break;
      }
      case State::chunk_data: {
        std::size_t take = std::min(remaining_, available().size());
        response_.body.append(available().substr(0, take));
        used += take;
        remaining_ -= take;
        if (remaining_ == 0 && available().size() >= 2) {
          if (available().substr(0, 2) != "\r\n") return fail("chunk not followed by CRLF");
          used += 2;
          state_ = State::chunk_size;
          progress = true;
        }
        break;
      }
      case State::chunk_trailer: {
        auto end = available().find("\r\n");
        if (end == std::string_view::npos) {
          if (available().size() > max_header_bytes) return fail("trailer longer than 64 KiB");
          break;
        }
        if (end == 0) state_ = State::done;  // trailer fields, if any, are skipped
        used += end + 2;
        progress = true;
        break;
      }
      case State::done:
      case State::failed:
        break;
    }
  }
  buffer_.erase(0, used);
  return state_ != State::failed;
}

bool HttpResponseReader::feed(std::string_view bytes) {
  if (state_ == State::failed) return false;
  if (state_ == State::done) return true;  // bytes after the response are ignored
  buffer_.append(bytes);
  return step();
}

bool HttpResponseReader::finish() {
  switch (state_) {
    case State::done: return true;
    case State::failed: return false;
    case State::body_to_eof: state_ = State::done; return true;
    case State::head: return fail(buffer_.empty() ? "connection closed without an answer" : "connection closed inside the headers");
    default: return fail("connection closed inside the body");
  }
}

HttpGetResult http_get(const HttpAddress& address, std::string_view path, const HttpGetOptions& options) {
  const auto deadline = Clock::now() + options.timeout;
  HttpGetResult result;
  Socket socket = connect_to(address, deadline, result.error);
  if (socket.fd() < 0) return result;

  std::string request = "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + address.text().substr(7) +
                        "\r\nUser-Agent: brook-cli\r\nAccept: application/json, text/plain\r\nConnection: close\r\n";
  if (!options.user_password.empty())
    request += "Authorization: Basic " + basic_credentials(options.user_password) + "\r\n";
  request += "\r\n";

  const std::string timed_out = "no complete answer from " + address.text() + " within " + seconds_text(options.timeout);
  std::string_view unsent = request;
  while (!unsent.empty()) {
    ssize_t n = ::send(socket.fd(), unsent.data(), unsent.size(), MSG_NOSIGNAL);
    if (n > 0) {
      unsent.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{socket.fd(), POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) == 0) {
        result.error = timed_out;
        return result;
      }
    } else {
      result.error = "cannot send to " + address.text() + ": " + std::strerror(errno);
      return result;
    }
  }

  HttpResponseReader reader;
  char buffer[64 * 1024];
  while (!reader.done()) {
    ssize_t n = ::recv(socket.fd(), buffer, sizeof buffer, 0);
    if (n > 0) {
      if (!reader.feed(std::string_view(buffer, static_cast<std::size_t>(n)))) break;
    } else if (n == 0) {
      reader.finish();
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      pollfd p{socket.fd(), POLLIN, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) == 0) {
        result.error = timed_out;
        return result;
      }
    } else {
      result.error = "cannot read from " + address.text() + ": " + std::strerror(errno);
      return result;
    }
  }
  if (!reader.done()) {
    result.error = "malformed response from " + address.text() + ": " + reader.error();
    return result;
  }
  result.response = std::move(reader.response());
  return result;
}

std::string url_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    auto byte = static_cast<unsigned char>(ch);
    if (std::isalnum(byte) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 15];
    }
  }
  return out;
}

}  // namespace brook::cli
