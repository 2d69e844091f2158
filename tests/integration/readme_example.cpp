// The client example shown in README.md, compiled and run by readme_example_test.cpp. The
// lines between the markers must stay identical to the README's code block (a test checks).
// README-BEGIN
#include <brook/client/client.hpp>
#include <brook/client/json.hpp>

#include <cstdio>
#include <future>
#include <string>

// Subscribes to every NFL odds topic, publishes a price and then a change of it, and prints
// the change as the subscriber sees it: the old and the new value, whole, although the
// change travelled as a delta of a few bytes.
int run_readme_example(const std::string& url) {
  brook::Client client;
  if (auto status = client.connect({.url = url}); !status) {
    std::fprintf(stderr, "connect: %s\n", status.message.c_str());
    return 1;
  }
  std::promise<std::string> change;
  std::promise<brook::Status> subscribed;
  client.subscribe(
      "Distribution/Football/NFL//",
      [&](const brook::Update& update) {
        // Runs on the client's thread: the current value first, then every change.
        if (update.topic_seq != 2) return;
        auto before = brook::parse_json(update.old_value), after = brook::parse_json(update.value);
        change.set_value(before["Home_Odds"].get<std::string>() + " -> " +
                         after["Home_Odds"].get<std::string>());
      },
      [&](const brook::Status& status) { subscribed.set_value(status); });
  if (auto status = subscribed.get_future().get(); !status) return 1;
  const std::string odds = "Distribution/Football/NFL/Bills vs Jets/Odds";
  client.publish(odds, R"({"Home_Spread":"-3.5","Home_Odds":"+120"})", brook::TopicType::json);
  client.publish(odds, R"({"Home_Spread":"-3.5","Home_Odds":"+125"})");
  std::printf("%s\n", change.get_future().get().c_str());  // +120 -> +125
  client.close();
  return 0;
}
// README-END
