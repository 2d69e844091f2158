#pragma once
// The process's default client context: the loop that every Client made without a
// ClientContext (and without ClientOptions::own_thread) runs on, so that a process holding
// many sessions has one I/O thread however it made them. Made by the first connect() that
// needs it; it ends with its last session, and the next connect() makes another, so a
// process with no session open has no Brook thread.
//
// Threads: any but a loop's for leave(), any for join(). One lock, held only to choose the
// loop and add to it, or to wait for an ended loop's thread, serialises both.
//
// Process lifetime:
//  - static destruction: the state is never destroyed, so a Client destroyed after it would
//    have been (a static Client, or one a static owns) still finds it; an atexit hook waits
//    for a loop that has ended but whose thread nobody joined (its last Client was destroyed
//    from a callback on it), and leaves a loop that still has sessions running;
//  - fork(): the child has no loop thread, so the loop the parent had is forgotten in the
//    child, never destroyed there (its destructor would wait for a thread that is not
//    there): the child's first default Client makes a loop of its own. Clients made before
//    the fork are not usable in the child.
#include <functional>
#include <memory>

#include "client_loop.hpp"

namespace brook::client_detail::default_context {

// Adds `member` to the default loop, making one if there is none or the last one ended.
// `prepare` runs before each attempt with the loop it is about to join.
std::shared_ptr<ClientLoop> join(std::shared_ptr<LoopMember> member,
                                 const std::function<void(const std::shared_ptr<ClientLoop>&)>& prepare);

// After a session of `loop` has left it (its close() returned): when it was the last one, the
// loop ends now; waits for its thread, so that the last close() leaves no thread behind.
void leave(const std::shared_ptr<ClientLoop>& loop);

}  // namespace brook::client_detail::default_context
