// The client example shown in README.md, compiled and run by readme_example_test.cpp. The
// lines between the markers must stay identical to the README's code block (a test checks).
// README-BEGIN
#include <brook/client/client.hpp>

#include <atomic>
#include <cstdio>
#include <future>
#include <string>

// Subscribes to every NFL odds topic, publishes one price and prints it when it comes back.
int run_readme_example(const std::string& url) {
  brook::Client client;
  if (auto status = client.connect({.url = url}); !status) {
    std::fprintf(stderr, "connect: %s\n", status.message.c_str());
    return 1;
  }
  std::promise<std::string> first_price;
  std::atomic<bool> seen{false};
  client.subscribe("Distribution/Football/NFL//", [&](const brook::Update& update) {
    // Runs on the client's thread: the current value first, then every change.
    if (!seen.exchange(true)) first_price.set_value(std::string(update.text()));
  });
  client.publish("Distribution/Football/NFL/Bills vs Jets/Odds",
                 R"({"Home_Spread":"-3.5","Home_Odds":"+120"})", brook::TopicType::json);
  std::printf("%s\n", first_price.get_future().get().c_str());
  client.close();
  return 0;
}
// README-END
