// A program that uses Brook as an application would: built outside this tree against an
// installed libbrook-client (find_package(Brook) or pkg-config brook), it publishes a price
// and prints it as its own subscription receives it.
//   brook_consumer tcp://127.0.0.1:9090
#include <brook/client/client.hpp>
#include <brook/version.hpp>

#include <chrono>
#include <cstdio>
#include <future>

int main(int argc, char** argv) {
  brook::Client client;
  if (auto status = client.connect({.url = argc > 1 ? argv[1] : brook::default_url()}); !status) {
    std::fprintf(stderr, "connect: %s\n", status.message.c_str());
    return 1;
  }
  std::promise<std::string> received;
  bool first = true;  // touched only on the client's thread, where handlers run
  client.subscribe("Prices/EURUSD", [&](const brook::Update& update) {
    if (first) received.set_value(std::string(update.text()));
    first = false;
  });
  client.publish("Prices/EURUSD", "1.0842");
  auto price = received.get_future();
  if (price.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return 1;
  std::printf("libbrook-client %s: Prices/EURUSD = %s\n", brook::library_version(), price.get().c_str());
  client.close();
  return 0;
}
