// brook req: sends PAYLOAD, or each line of standard input, as a request to PATH's handler and
// prints each answer on its own line, in input order. Lines are pipelined (a bounded window,
// below the broker's per-session in-flight limit); a printer thread writes the answers as
// they come, so an interactive session sees each answer before typing the next line.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

#include "brook/client/client.hpp"
#include "commands.hpp"
#include "session_args.hpp"
#include "value_text.hpp"

namespace brook::cli {

namespace {

// "handler failed: oops" whether the library's message carries the code's name or not.
std::string describe_failure(const Status& status) {
  std::string code(brook::to_string(status.code));
  if (status.message.empty()) return code;
  if (status.message.starts_with(code)) return status.message;
  return code + ": " + status.message;
}

// Requests in flight, oldest first. The reader (main thread) appends and waits while the
// window is full; the printer thread takes the oldest, waits for its answer and prints it.
class Pipeline {
 public:
  explicit Pipeline(std::size_t window) : window_(window) {}

  void push(std::future<Response> answer) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return in_flight_ < window_; });
    ++in_flight_;
    queue_.push_back(std::move(answer));
    changed_.notify_all();
  }
  void finish_input() {
    std::lock_guard lock(mutex_);
    input_done_ = true;
    changed_.notify_all();
  }
  // The oldest request's answer; nullopt once the input is done and every answer was taken.
  std::optional<std::future<Response>> next() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !queue_.empty() || input_done_; });
    if (queue_.empty()) return std::nullopt;
    auto answer = std::move(queue_.front());
    queue_.pop_front();
    return answer;
  }
  // The answer taken by next() was printed: the reader may send another request.
  void settled() {
    std::lock_guard lock(mutex_);
    --in_flight_;
    changed_.notify_all();
  }
  bool nothing_queued() {
    std::lock_guard lock(mutex_);
    return queue_.empty();
  }

 private:
  const std::size_t window_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::future<Response>> queue_;
  std::size_t in_flight_ = 0;  // queued, plus the one the printer waits for
  bool input_done_ = false;
};

}  // namespace

Action add_req_command(CLI::App& app) {
  struct Args {
    SessionArgs session;
    std::string type;
    double timeout_s = 10;
    std::string path;
    std::optional<std::string> payload;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "req", "send PAYLOAD, or each line of standard input, as a request to PATH and print the answers");
  add_session_options(*cmd, args->session);
  cmd->add_option("--type", args->type,
                  "the payload's type: string (default), json, binary (base64), int64, double");
  cmd->add_option("--timeout", args->timeout_s, "seconds to wait for each answer (default 10; exit 1 after)")
      ->check(CLI::Range(0.001, 86400.0));
  cmd->add_option("path", args->path, "the endpoint, e.g. Pricing/Quote")->required();
  cmd->add_option("payload", args->payload, "the request (default: one request per line of stdin)");

  return [args]() -> int {
    std::optional<TopicType> type;
    if (!args->type.empty()) {
      type = brook::parse_topic_type(args->type);
      if (!type) {
        std::fprintf(stderr, "brook req: unknown type '%s'\n", args->type.c_str());
        return exit_usage;
      }
    }
    std::string error;
    ClientOptions options = client_options(args->session, "brook-req", true, error);
    if (!error.empty()) {
      std::fprintf(stderr, "brook req: %s\n", error.c_str());
      return exit_usage;
    }
    Client client;
    if (auto s = client.connect(options); !s) {
      std::fprintf(stderr, "brook req: %s\n", s.message.c_str());
      return connect_failure_exit_code(s);
    }
    client.on_disconnect([](const std::string& reason) {
      std::fprintf(stderr, "brook req: connection lost (%s): reconnecting\n", reason.c_str());
    });

    const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(args->timeout_s * 1000));
    // The client times requests out itself; this bound only guards against an answer that
    // never comes at all.
    const auto give_up_after = timeout + std::chrono::seconds(5);
    // The first failure's code. Set by the reader (invalid lines) and the printer; relaxed:
    // read only after the printer thread was joined.
    std::atomic<int> exit_code{exit_ok};
    auto failed = [&](int code) {
      int none = exit_ok;
      exit_code.compare_exchange_strong(none, code, std::memory_order_relaxed);
    };
    auto send = [&](std::string_view text) -> std::optional<std::future<Response>> {
      auto payload = value_from_text(type, text);
      if (!payload) {
        std::fprintf(stderr, "brook req: '%.*s' is not a valid %s value\n", int(text.size()), text.data(),
                     args->type.c_str());
        failed(exit_usage);
        return std::nullopt;
      }
      return client.send_request(args->path, *payload, timeout, type.value_or(TopicType::string));
    };
    auto print = [&](std::future<Response>& answer) {
      if (answer.wait_for(give_up_after) != std::future_status::ready) {
        std::fprintf(stderr, "brook req: timeout after %g s\n", args->timeout_s);
        failed(exit_timeout);
        return;
      }
      Response response = answer.get();
      if (response.status.code == ErrorCode::request_timeout) {
        std::fprintf(stderr, "brook req: timeout after %g s\n", args->timeout_s);
        failed(exit_timeout);
      } else if (!response.status) {
        std::fprintf(stderr, "brook req: %s\n", describe_failure(response.status).c_str());
        failed(exit_refused);
      } else {
        std::string line = value_to_text(response.type, response.payload);
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stdout);
      }
    };

    if (args->payload) {
      if (auto answer = send(*args->payload)) print(*answer);
    } else {
      // Below the broker's default per-session limit (requests.max_in_flight = 1024).
      Pipeline pipeline(256);
      std::thread printer([&] {
        while (auto answer = pipeline.next()) {
          // One write for many answers, but never hold one back while waiting for the next.
          if (answer->wait_for(std::chrono::seconds(0)) != std::future_status::ready) std::fflush(stdout);
          print(*answer);
          pipeline.settled();
          if (pipeline.nothing_queued()) std::fflush(stdout);
        }
      });
      std::string line;
      while (std::getline(std::cin, line))
        if (auto answer = send(line)) pipeline.push(std::move(*answer));
      pipeline.finish_input();
      printer.join();
    }
    std::fflush(stdout);
    client.close();
    return exit_code.load(std::memory_order_relaxed);
  };
}

}  // namespace brook::cli
